"""Task loaders against the real data files: sizes, labels, cross-language alignment, leak-free splits, errors."""

from __future__ import annotations

import json
import re
import unicodedata
from functools import cache
from pathlib import Path

import pytest

from tests.helpers import unavailable
from xstilts.contracts.hashing import file_sha256
from xstilts.contracts.kinds import TaskKind
from xstilts.errors import XstiltsError
from xstilts.paths import DATA_DIR_ENV, resolve_data_dir
from xstilts.tasks import (
    TASKS,
    ZERO_SHOT,
    Example,
    check_no_leak,
    get_split,
    get_task,
    load_examples,
    present_languages,
    resolve_languages,
    sample,
    sample_items,
    split_files,
)
from xstilts.tasks.commands import describe
from xstilts.tasks.mining import read_mining_set
from xstilts.tasks.registry import PAWSX_LANGUAGES, XCOPA_LANGUAGES, XNLI_LANGUAGES, XQUAD_LANGUAGES

ALL_TASKS = ("xnli", "pawsx", "xcopa", "mnli", "qqp", "snli", "anli", "copa", "siqa", "cosmosqa")
RETRIEVAL_TASKS = ("tatoeba", "xnli_premises", "xquad_contexts", "bucc2018")
TAGGING_TASKS = ("panx", "udpos")
QA_TASKS = ("tydiqa_en", "tydiqa", "xquad", "mlqa")
# Splits whose sizes differ by language (tests/qa and tests/tagging check their items' shapes), as the data
# folder's README and the files state them; TyDiQA-GoldP dev is not in the data folder.
PER_LANGUAGE_ROWS = {
    ("panx", "train"): {"en": 20000},
    ("panx", "dev"): {
        **dict.fromkeys(["en", "ar", "bg", "de", "el", "es", "fr", "ja", "ko", "ru", "tr", "vi", "zh"], 10000),
        **dict.fromkeys(["hi", "sw", "ur"], 1000),
    },
    ("udpos", "train"): {"en": 21253},
    ("udpos", "dev"): {"en": 3974, "ar": 909, "bg": 1115, "de": 19233, "el": 403, "es": 3054, "fr": 2903,
                       "hi": 1659, "ja": 511, "ko": 3016, "ru": 8108, "tr": 988, "ur": 552, "vi": 800, "zh": 1000},
    ("tydiqa_en", "train"): {"en": 3696},
    ("xquad", "test"): dict.fromkeys(["en", "ar", "de", "el", "es", "hi", "ro", "ru", "th", "tr", "vi", "zh"], 1190),
    ("mlqa", "dev"): {"en": 1148, "ar": 517, "de": 512, "es": 500, "hi": 507, "vi": 511, "zh": 504},
    ("mlqa", "dev-question-en"): {"en": 1148, "ar": 517, "de": 512, "es": 500, "hi": 507, "vi": 511, "zh": 504},
}  # fmt: skip

# (task, split, languages, rows in each language), as the data folder's README states them.
EXPECTED_ROWS = [
    ("xnli", "dev", XNLI_LANGUAGES, 2490),
    ("xnli", "test", XNLI_LANGUAGES, 5010),
    ("pawsx", "dev", PAWSX_LANGUAGES, 2000),
    ("xcopa", "val", ("en", *XCOPA_LANGUAGES), 100),
    ("xcopa", "train", ("en",), 400),
    ("copa", "train", ("en",), 400),
    ("copa", "val", ("en",), 100),
    ("mnli", "train", ("en",), 8999),
    ("mnli", "dev", ("en",), 1000),
    ("qqp", "train", ("en",), 8999),
    ("qqp", "dev", ("en",), 1000),
    ("snli", "train", ("en",), 8999),
    ("snli", "dev", ("en",), 1000),
    ("anli", "dev", ("en",), 3198),
    ("siqa", "dev", ("en",), 1954),
    ("siqa", "test", ("en",), 2224),
    ("cosmosqa", "dev", ("en",), 2985),
    ("xnli_premises", "test", XNLI_LANGUAGES, 1670),
    ("xquad_contexts", "test", XQUAD_LANGUAGES, 240),
]
# Splits whose every declared language is in the data folder (Tatoeba and BUCC have their own tests below).
ALL_SPLITS = [
    (name, split)
    for name, task in TASKS.items()
    for split, spec in task.splits.items()
    if not spec.present_only and (name, split) not in PER_LANGUAGE_ROWS
]


@pytest.fixture(scope="module")
def load(data_dir):
    """``load(task, split, language)``: the examples, read once per module."""

    @cache
    def _load(task: str, split: str, language: str) -> tuple[Example, ...]:
        return tuple(load_examples(get_task(task), split, language, data_dir))

    return _load


def uids(examples) -> list[str]:
    return [e.uid for e in examples]


# --- registry and sizes -------------------------------------------------------------------------------------------


def test_registry_holds_the_classification_and_retrieval_tasks():
    assert tuple(TASKS) == ALL_TASKS + RETRIEVAL_TASKS + TAGGING_TASKS + QA_TASKS
    assert set(ZERO_SHOT) == {"xnli", "pawsx", "xcopa", "xquad", "mlqa", "tydiqa", "panx", "udpos"}
    for task in TASKS.values():
        assert task.eval_split in task.splits
        assert not task.train_split or task.train_split in task.splits
        if task.kind is TaskKind.EMBEDDING:  # no head, no labels, nothing to train on
            assert task.name in RETRIEVAL_TASKS and task.labels == () and task.train_split == ""
        elif task.kind is TaskKind.SPAN_QA:  # the answer is a span of the context: no labels
            assert task.name in QA_TASKS and task.labels == ()
        elif task.kind is TaskKind.TOKEN_CLASSIFICATION:
            assert task.name in TAGGING_TASKS and len(set(task.labels)) == task.num_labels >= 7
        else:
            assert len(set(task.labels)) == task.num_labels >= 2


def test_every_split_is_listed_with_its_row_counts():
    hashed_halves = {("pawsx", "zs-train"), ("pawsx", "zs-eval")}  # sizes checked in the leak tests below
    assert {(task, split) for task, split, _, _ in EXPECTED_ROWS} == set(ALL_SPLITS) - hashed_halves
    present = {(n, s) for n, t in TASKS.items() for s, spec in t.splits.items() if not spec.present_only}
    assert present == set(ALL_SPLITS) | set(PER_LANGUAGE_ROWS)


@pytest.mark.parametrize(("task", "split"), list(PER_LANGUAGE_ROWS), ids=[f"{t}-{s}" for t, s in PER_LANGUAGE_ROWS])
def test_row_counts_of_splits_that_differ_by_language(load, task, split):
    rows = PER_LANGUAGE_ROWS[task, split]
    assert set(get_split(get_task(task), split).languages) == set(rows)
    for language, count in rows.items():
        examples = load(task, split, language)
        assert len(examples) == count and len({e.uid for e in examples}) == count, f"{task} {split} {language}"


@pytest.mark.parametrize(
    ("task", "split", "languages", "rows"), EXPECTED_ROWS, ids=[f"{t}-{s}" for t, s, _, _ in EXPECTED_ROWS]
)
def test_row_counts(load, task, split, languages, rows):
    assert get_split(get_task(task), split).languages == languages
    for language in languages:
        examples = load(task, split, language)
        assert len(examples) == rows, f"{task} {split} {language}"
        assert len(set(uids(examples))) == rows, f"{task} {split} {language}: item ids must be unique"
        assert all(e.language == language for e in examples)


@pytest.mark.parametrize(("task", "split"), ALL_SPLITS, ids=[f"{t}-{s}" for t, s in ALL_SPLITS])
def test_labels_in_range_and_all_present(load, task, split):
    spec = get_task(task)
    for language in get_split(spec, split).languages:
        if spec.kind is TaskKind.EMBEDDING:  # a retrieval pair's label is its position
            assert [e.label for e in load(task, split, language)] == list(range(len(load(task, split, language))))
            continue
        labels = {e.label for e in load(task, split, language)}
        assert labels == set(range(spec.num_labels)), f"{task} {split} {language}: labels {sorted(labels)}"


@pytest.mark.parametrize(("task", "split"), ALL_SPLITS, ids=[f"{t}-{s}" for t, s in ALL_SPLITS])
def test_examples_have_the_shape_of_their_kind(load, task, split):
    spec = get_task(task)
    for language in get_split(spec, split).languages:
        for e in load(task, split, language):
            assert e.text_a.strip()
            if spec.kind is TaskKind.MULTIPLE_CHOICE:
                assert len(e.choices) == spec.num_labels, e.uid
                assert all(c.strip() for c in e.choices), e.uid
                assert e.text_b, e.uid  # the question
            else:
                assert e.choices == ()
                assert e.text_b and e.text_b.strip(), e.uid


def test_copa_questions_are_english_prompts_in_every_language(load):
    questions = {e.text_b for lang in ("en", *XCOPA_LANGUAGES) for e in load("xcopa", "val", lang)}
    assert questions == {"What was the cause?", "What happened as a result?"}


def read_listing(path: Path) -> dict[str, dict[str, str]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    header = lines[0].split("\t")
    return {r["staged_path"]: r for r in (dict(zip(header, line.split("\t"), strict=False)) for line in lines[1:])}


def test_file_hashes_match_the_data_folder_listings(data_dir):
    if not (data_dir / "PROVENANCE.tsv").is_file() or not (data_dir / "DERIVED.tsv").is_file():
        unavailable("the data folder has no PROVENANCE.tsv / DERIVED.tsv to compare with")
    provenance, derived = read_listing(data_dir / "PROVENANCE.tsv"), read_listing(data_dir / "DERIVED.tsv")
    labelled = split_files(get_task("xnli"), "dev", "de", data_dir)
    assert labelled == [data_dir / "xnli" / "labeled" / "dev-de.tsv"]
    assert file_sha256(labelled[0]) == derived["xnli/labeled/dev-de.tsv"]["sha256"]
    source = "pawsx/xtreme_format/dev-de.tsv"
    assert split_files(get_task("pawsx"), "dev", "de", data_dir) == [data_dir / source]
    assert file_sha256(data_dir / source) == provenance[source]["sha256"]


# --- XNLI: rows are parallel across languages --------------------------------------------------------------------


def numbers(text: str) -> set[str]:
    """Digit runs in ``text``, with any script's decimal digits mapped to ASCII."""
    ascii_digits = "".join(str(unicodedata.decimal(c)) if unicodedata.decimal(c, None) is not None else c for c in text)
    return set(re.findall(r"\d+", ascii_digits))


@pytest.mark.parametrize("split", ["dev", "test"])
def test_xnli_rows_are_aligned_across_languages(load, split):
    english = load("xnli", split, "en")
    for language in XNLI_LANGUAGES:
        other = load("xnli", split, language)
        assert uids(other) == uids(english), language
        assert [e.label for e in other] == [e.label for e in english], language


def number_agreement(english, other, field: str, next_item) -> tuple[float, float, int]:
    """How often a row's English numbers recur in ``other`` at the same row, and at the next item's row."""
    same = control = rows = 0
    for i, e in enumerate(english):
        found, j = numbers(getattr(e, field)), next_item(i)
        if found and j < len(english):
            rows += 1
            same += bool(found & numbers(getattr(other[i], field)))
            control += bool(found & numbers(getattr(other[j], field)))
    return same / max(rows, 1), control / max(rows, 1), rows


@pytest.mark.parametrize("split", ["dev", "test"])
def test_xnli_numbers_agree_at_the_same_row_not_at_neighbouring_rows(load, split):
    """Translations keep numbers: a row's numbers recur in the same row of every language, not the next item's."""
    english = load("xnli", split, "en")

    def next_premise(i: int) -> int:  # rows come in groups sharing a premise
        j = i
        while j < len(english) and english[j].text_a == english[i].text_a:
            j += 1
        return j

    for language in XNLI_LANGUAGES:
        other = load("xnli", split, language)
        same, control, rows = number_agreement(english, other, "text_a", next_premise)
        assert rows > 100 and same >= 0.8 and control <= 0.1, (language, "premises", same, control)
        same, control, rows = number_agreement(english, other, "text_b", lambda i: i + 1)
        assert rows > 100 and same >= 0.7 and control <= 0.3, (language, "hypotheses", same, control)


# --- leak-free splits and the zero-shot protocol -----------------------------------------------------------------


def test_pawsx_dev_rows_are_parallel(load):
    english = load("pawsx", "dev", "en")
    for language in PAWSX_LANGUAGES:
        other = load("pawsx", "dev", language)
        assert uids(other) == uids(english)
        same, control, rows = number_agreement(english, other, "text_a", lambda i: i + 1)
        assert rows > 500 and same >= 0.9 and control <= 0.05, (language, same, control)
        # PAWS-X relabelled a few translated pairs (e.g. German row 89, whose translation is just "NS").
        differ = sum(a.label != b.label for a, b in zip(english, other, strict=True))
        assert differ <= 0.02 * len(english), (language, differ)


def test_pawsx_zero_shot_halves_share_no_item(load):
    assert get_split(get_task("pawsx"), "zs-train").languages == ("en",)
    train = set(uids(load("pawsx", "zs-train", "en")))
    dev = set(uids(load("pawsx", "dev", "en")))
    evaluated = set(uids(load("pawsx", "zs-eval", "en")))
    assert train and evaluated
    assert not train & evaluated
    assert train | evaluated == dev
    for language in PAWSX_LANGUAGES:
        assert set(uids(load("pawsx", "zs-eval", language))) == evaluated, language
    # Neither half is a sliver: the hash split is close to even.
    assert 0.4 < len(train) / len(dev) < 0.6


def test_xcopa_val_items_are_copa_val_items(load):
    copa_val = uids(load("copa", "val", "en"))
    assert uids(load("xcopa", "val", "en")) == copa_val
    for language in XCOPA_LANGUAGES:
        other = load("xcopa", "val", language)
        assert uids(other) == copa_val, language
        assert [e.label for e in other] == [e.label for e in load("copa", "val", "en")], language
    assert not set(copa_val) & set(uids(load("copa", "train", "en")))


def test_leak_check_forbids_training_on_copa_val_for_xcopa(load):
    trained = uids(load("copa", "val", "en"))
    evaluated = [uid for lang in ("en", *XCOPA_LANGUAGES) for uid in uids(load("xcopa", "val", lang))]
    with pytest.raises(XstiltsError, match=r"xcopa: 100 evaluated items are translations of trained items"):
        check_no_leak(trained, evaluated, "xcopa")


def test_leak_check_catches_one_shared_item_and_names_it():
    with pytest.raises(XstiltsError, match=r"1 evaluated items .*pawsx-dev/7.*train on a different split"):
        check_no_leak(["pawsx-dev/1", "pawsx-dev/7"], ["pawsx-dev/7", "pawsx-dev/8"], "pawsx")


# TyDiQA-GoldP dev (present_only) is not in the data folder: no evaluation items to check here
PRESENT_TARGETS = sorted(t for t, p in ZERO_SHOT.items() if not get_split(get_task(t), p.eval_split).present_only)


@pytest.mark.parametrize("target", PRESENT_TARGETS)
def test_zero_shot_protocol_splits_do_not_leak(load, target):
    protocol = ZERO_SHOT[target]
    train_task = get_task(protocol.train_task)
    trained = [
        uid
        for lang in get_split(train_task, protocol.train_split).languages
        for uid in uids(load(protocol.train_task, protocol.train_split, lang))
    ]
    assert set(get_split(train_task, protocol.train_split).languages) == {"en"}
    evaluated = [
        uid
        for lang in get_split(get_task(target), protocol.eval_split).languages
        for uid in uids(load(target, protocol.eval_split, lang))
    ]
    assert trained and evaluated
    check_no_leak(trained, evaluated, target)  # raises on any shared item


# --- the XTREME download layout ----------------------------------------------------------------------------------


def write_lines(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def test_xtreme_download_layout_loads(load, data_dir, tmp_path):
    """A folder laid out like XTREME's downloads (xnli/dev-de.tsv, pawsx/dev-de.tsv, copa/val.jsonl) loads."""
    xnli = get_task("xnli")
    real = load("xnli", "dev", "de")[:7]
    write_lines(tmp_path / "xnli" / "dev-de.tsv", [f"{e.text_a}\t{e.text_b}\t{xnli.labels[e.label]}" for e in real])
    loaded = load_examples(xnli, "dev", "de", tmp_path)
    assert split_files(xnli, "dev", "de", tmp_path) == [tmp_path / "xnli" / "dev-de.tsv"]
    assert loaded == list(real)

    paws = load("pawsx", "dev", "de")[:5]
    write_lines(tmp_path / "pawsx" / "dev-de.tsv", [f"{e.text_a}\t{e.text_b}\t{e.label}" for e in paws])
    assert load_examples(get_task("pawsx"), "dev", "de", tmp_path) == list(paws)

    copa = load("copa", "val", "en")[:4]
    with split_files(get_task("copa"), "val", "en", data_dir)[0].open(encoding="utf-8") as f:
        raw = [f.readline().rstrip("\n") for _ in range(4)]
    write_lines(tmp_path / "copa" / "val.jsonl", raw)
    assert load_examples(get_task("copa"), "val", "en", tmp_path) == list(copa)
    assert [json.loads(line)["idx"] for line in raw] == [int(e.uid.split("/")[1]) for e in copa]


def test_xtreme_test_files_without_labels_fail_clearly(load, tmp_path):
    real = load("xnli", "test", "de")[:3]
    write_lines(tmp_path / "xnli" / "test-de.tsv", [f"{e.text_a}\t{e.text_b}" for e in real])
    with pytest.raises(XstiltsError, match=r"test-de\.tsv: row 1 has no label"):
        load_examples(get_task("xnli"), "test", "de", tmp_path)


def test_unknown_label_names_the_file_and_the_labels(tmp_path):
    write_lines(tmp_path / "xnli" / "dev-fr.tsv", ["a\tb\tentailment", "c\td\tcontradictory"])
    with pytest.raises(XstiltsError, match=r"dev-fr\.tsv: label 'contradictory' is not one of"):
        load_examples(get_task("xnli"), "dev", "fr", tmp_path)


def test_broken_json_lines_name_the_line(tmp_path):
    write_lines(tmp_path / "copa" / "val.jsonl", ['{"premise": "x"', ""])
    with pytest.raises(XstiltsError, match=r"val\.jsonl:1: not JSON"):
        load_examples(get_task("copa"), "val", "en", tmp_path)


# --- errors: one message naming what is missing and how to fix it -----------------------------------------------


def test_unknown_task():
    with pytest.raises(XstiltsError, match=r"unknown task 'xnly': known tasks are xnli, pawsx"):
        get_task("xnly")


def test_unknown_split():
    with pytest.raises(XstiltsError, match=r"task xnli has no split 'train': its splits are dev, test"):
        get_split(get_task("xnli"), "train")
    with pytest.raises(XstiltsError, match=r"no split 'validation'"):
        load_examples(get_task("copa"), "validation", "en", Path("."))


def test_languages_resolve_or_fail_naming_the_language():
    xnli = get_task("xnli")
    assert resolve_languages(xnli, "test", None) == XNLI_LANGUAGES
    assert resolve_languages(xnli, "test", "all") == XNLI_LANGUAGES
    assert resolve_languages(xnli, "test", "de,sw") == ("de", "sw")
    assert resolve_languages(xnli, "test", ["zh"]) == ("zh",)
    with pytest.raises(XstiltsError, match=r"task xnli split test has no language ja: it has en, ar"):
        resolve_languages(xnli, "test", "de,ja")
    with pytest.raises(XstiltsError, match=r"task pawsx split zs-train has no language de: it has en"):
        resolve_languages(get_task("pawsx"), "zs-train", "de")


def test_missing_file_names_the_path_and_the_setting(tmp_path):
    with pytest.raises(XstiltsError) as info:
        load_examples(get_task("xcopa"), "val", "qu", tmp_path)
    message = str(info.value)
    assert "xcopa val (qu) not found" in message
    assert str(tmp_path / "xcopa" / "qu" / "val.qu.jsonl") in message
    assert DATA_DIR_ENV in message and "--data-dir" in message
    assert "\n" not in message


def test_half_a_multi_file_split_is_missing(data_dir, tmp_path):
    """ANLI reads three files together; with one missing it fails rather than loading two rounds."""
    for name in ("ANLI_analysis_r1_dev.csv", "ANLI_analysis_r2_dev.csv"):
        (tmp_path / "anli").mkdir(exist_ok=True)
        (tmp_path / "anli" / name).write_bytes((data_dir / "anli" / name).read_bytes())
    with pytest.raises(XstiltsError, match=r"anli dev \(en\) not found"):
        load_examples(get_task("anli"), "dev", "en", tmp_path)


def test_data_dir_setting(monkeypatch, tmp_path):
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    assert resolve_data_dir(None) == tmp_path
    explicit = tmp_path / "explicit"
    explicit.mkdir()
    assert resolve_data_dir(explicit) == explicit
    with pytest.raises(XstiltsError, match=r"does not exist: pass --data-dir or set XSTILTS_DATA_DIR"):
        resolve_data_dir(tmp_path / "absent")
    monkeypatch.delenv(DATA_DIR_ENV)
    monkeypatch.chdir(tmp_path)  # no ../shared/data next to it
    with pytest.raises(XstiltsError, match=r"no data folder: pass --data-dir or set XSTILTS_DATA_DIR"):
        resolve_data_dir(None)


# --- sampling ----------------------------------------------------------------------------------------------------


def test_sample_is_seeded_and_keeps_order(load):
    examples = load("xnli", "test", "en")
    first = sample(examples, 50, seed=3)
    assert sample(examples, 50, seed=3) == first
    assert sample(examples, 50, seed=4) != first
    assert len(first) == 50 and len(set(uids(first))) == 50
    positions = [examples.index(e) for e in first]
    assert positions == sorted(positions)
    assert sample(examples, None, seed=3) == list(examples)
    assert sample(examples, len(examples) + 1, seed=3) == list(examples)


def test_sample_items_picks_the_same_items_in_every_language(load):
    by_language = {lang: list(load("xnli", "test", lang)) for lang in ("en", "de", "sw", "zh")}
    picked = sample_items(by_language, 40, seed=1)
    assert picked == sample_items(by_language, 40, seed=1)
    assert picked != sample_items(by_language, 40, seed=2)
    chosen = uids(picked["en"])
    assert len(chosen) == 40
    for language, examples in picked.items():
        assert uids(examples) == chosen, language
        assert all(e.language == language for e in examples)
    assert sample_items(by_language, None, seed=1) is by_language


# --- retrieval tasks: Tatoeba, the parallel proxies, BUCC -------------------------------------------------------

TATOEBA_HERE = ("ara", "cmn", "deu", "fra")


def test_tatoeba_reads_the_languages_present(load, data_dir):
    tatoeba = get_task("tatoeba")
    assert len(tatoeba.languages) == 36 and {"deu", "fra", "swh", "cmn", "pes"} <= set(tatoeba.languages)
    assert present_languages(tatoeba, "test", data_dir) == TATOEBA_HERE
    assert resolve_languages(tatoeba, "test", "all", data_dir) == TATOEBA_HERE
    for language in TATOEBA_HERE:
        examples = load("tatoeba", "test", language)
        assert len(examples) == 1000 and len(set(uids(examples))) == 1000
        assert [e.label for e in examples] == list(range(1000))
        assert all(e.text_a.strip() and e.text_b.strip() and e.language == language for e in examples)
        if language == "cmn":  # Chinese writes most numbers in words
            continue
        # the two files are line-aligned: numbers in an English sentence recur in its counterpart, not the next one
        same, control, rows = number_agreement(
            [Example(e.uid, "en", e.text_b, None, 0) for e in examples], examples, "text_a", lambda i: i + 1
        )
        assert rows >= 5 and same >= 0.6 and control <= 0.2, (language, same, control, rows)
    assert load("tatoeba", "test", "deu")[0].uid == "tatoeba-deu/0"  # items are not parallel across languages


def test_tatoeba_loads_any_language_in_the_layout_and_rejects_misaligned_files(tmp_path):
    tatoeba = get_task("tatoeba")
    write_lines(tmp_path / "tatoeba" / "laser_v1" / "tatoeba.xho-eng.xho", ["Molo.", "Enkosi."])
    write_lines(tmp_path / "tatoeba" / "laser_v1" / "tatoeba.xho-eng.eng", ["Hello.", "Thank you."])
    write_lines(tmp_path / "tatoeba" / "tatoeba.deu-eng.deu", ["Hallo.", "Danke.", "Ja."])  # XTREME's flat layout
    write_lines(tmp_path / "tatoeba" / "tatoeba.deu-eng.eng", ["Hello.", "Thanks."])
    assert present_languages(tatoeba, "test", tmp_path) == ("deu", "xho")  # declared ones first
    assert [(e.text_a, e.text_b, e.label) for e in load_examples(tatoeba, "test", "xho", tmp_path)] == [
        ("Molo.", "Hello.", 0),
        ("Enkosi.", "Thank you.", 1),
    ]
    with pytest.raises(XstiltsError, match=r"tatoeba\.deu-eng\.deu has 3 lines but .*tatoeba\.deu-eng\.eng has 2"):
        load_examples(tatoeba, "test", "deu", tmp_path)
    with pytest.raises(XstiltsError, match=r"no language swh: it has deu, xho"):
        resolve_languages(tatoeba, "test", "swh", tmp_path)


def test_xnli_premises_are_each_premise_once_with_its_english_premise(load):
    english = load("xnli_premises", "test", "en")
    assert len({e.text_a for e in english}) == len(english) == 1670  # deduplicated: one row per premise
    assert all(e.text_a == e.text_b for e in english)
    xnli_en = {e.text_a for e in load("xnli", "test", "en")}
    assert {e.text_a for e in english} == xnli_en
    german_rows = {e.text_a for e in load("xnli", "test", "de")}
    for language in XNLI_LANGUAGES:
        other = load("xnli_premises", "test", language)
        assert uids(other) == uids(english), language  # the same items in every language (the leak check's ids)
        assert [e.text_b for e in other] == [e.text_a for e in english], language
    assert {e.text_a for e in load("xnli_premises", "test", "de")} == german_rows


def test_xquad_contexts_are_parallel_paragraphs(load):
    english = load("xquad_contexts", "test", "en")
    for language in XQUAD_LANGUAGES:
        other = load("xquad_contexts", "test", language)
        assert uids(other) == uids(english), language
        assert len({e.text_a for e in other}) == 240, language
        same, control, rows = number_agreement(english, other, "text_a", lambda i: i + 1)
        assert rows > 100 and same >= 0.8 and control <= 0.3, (language, same, control)


def write_bucc(folder: Path, language: str = "de", split: str = "test", gold: list[str] | None = None) -> None:
    stem = folder / "bucc2018" / f"{language}-en.{split}"
    write_lines(stem.with_name(stem.name + f".{language}"), ["de-1\tHallo Welt.", "de-2\tGuten Morgen.", "de-3\tJa."])
    write_lines(stem.with_name(stem.name + ".en"), ["en-7\tGood morning.", "en-8\tHello world.", "en-9\tNo."])
    write_lines(stem.with_name(stem.name + ".gold"), gold if gold is not None else ["de-1\ten-8", "de-2\ten-7"])


def test_bucc_mining_set_loads_from_the_xtreme_layout(tmp_path):
    bucc = get_task("bucc2018")
    assert present_languages(bucc, "test", tmp_path) == ()
    write_bucc(tmp_path)
    assert present_languages(bucc, "test", tmp_path) == ("de",)
    paths = split_files(bucc, "test", "de", tmp_path)
    assert [p.name for p in paths] == ["de-en.test.de", "de-en.test.en", "de-en.test.gold"]
    mining = read_mining_set(paths, "de")
    assert mining.source == {"de-1": "Hallo Welt.", "de-2": "Guten Morgen.", "de-3": "Ja."}
    assert mining.target["en-9"] == "No."
    assert mining.gold == (("de-1", "en-8"), ("de-2", "en-7"))
    examples = load_examples(bucc, "test", "de", tmp_path)
    assert [(e.text_a, e.text_b, e.label) for e in examples] == [("Hallo Welt.", "Hello world.", 0),
                                                                 ("Guten Morgen.", "Good morning.", 1)]  # fmt: skip


@pytest.mark.parametrize(
    ("side", "lines", "message"),
    [
        ("de", ["de-1\tHallo Welt.", "de-2 Guten Morgen."], r"de-en\.test\.de:2: expected 'id<TAB>sentence'"),
        ("de", ["de-1\tHallo.", "de-1\tNochmal."], r"de-en\.test\.de:2: sentence id 'de-1' appears twice"),
        ("gold", ["de-1\ten-8", "", "de-2"], r"de-en\.test\.gold:3: expected 'xx_id<TAB>en_id'"),
        ("gold", ["de-1\ten-99"], r"de-en\.test\.gold:1: gold pair de-1/en-99 names a sentence id not in"),
    ],
)
def test_bucc_broken_lines_name_the_file_and_line(tmp_path, side, lines, message):
    write_bucc(tmp_path)
    write_lines(tmp_path / "bucc2018" / f"de-en.test.{side}", lines)
    with pytest.raises(XstiltsError, match=message):
        load_examples(get_task("bucc2018"), "test", "de", tmp_path)


def test_tasks_listing_counts_retrieval_rows(data_dir):
    tatoeba = describe("tatoeba", data_dir)
    assert tatoeba["kind"] == "embedding" and tatoeba["splits"]["test"]["rows"] == dict.fromkeys(TATOEBA_HERE, 1000)
    assert describe("bucc2018", data_dir)["splits"]["test"]["rows"] == {}  # no BUCC files in the data folder

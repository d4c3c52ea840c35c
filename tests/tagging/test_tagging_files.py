"""The PAN-X and UD-POS loaders: the real files, and malformed files failing with their file and line."""

from __future__ import annotations

import pytest

from xstilts.contracts.evaluation import load_evaluation_sample
from xstilts.errors import XstiltsError
from xstilts.tasks import get_task, load_examples
from xstilts.tasks.tagged import PANX_TAGS, UPOS_TAGS, tagged_words


@pytest.mark.parametrize(("name", "languages", "tags"), [("panx", 16, PANX_TAGS), ("udpos", 15, UPOS_TAGS)])
def test_real_files_load_with_their_tag_sets(data_dir, name, languages, tags):
    task = get_task(name)
    assert len(task.splits["dev"].languages) == languages and task.labels == tags
    train = load_examples(task, "train", "en", data_dir)
    assert len(train) > 10_000
    first = train[0]
    assert len(first.words) == len(first.tags) and first.text_a == " ".join(first.words)
    assert {t for e in train[:2000] for t in e.tags} <= set(tags)


def test_evaluation_sample_draws_each_language_separately(data_dir):
    """PAN-X dev sets are not translations of each other: each language gets its own seeded sentences."""
    drawn = load_evaluation_sample("panx", data_dir, ["en", "hi", "zh"], per_language=50, seed=3)
    assert {lang: len(ex) for lang, ex in drawn.examples.items()} == {"en": 50, "hi": 50, "zh": 50}
    positions = {lang: sorted(int(e.uid.rsplit("/", 1)[1]) for e in ex) for lang, ex in drawn.examples.items()}
    # drawn from each whole file (10,000 sentences), not from the 1,000 row numbers Hindi shares with them
    assert max(positions["zh"]) > 1000 and max(positions["hi"]) < 1000
    again = load_evaluation_sample("panx", data_dir, ["en", "hi", "zh"], per_language=50, seed=3)
    assert [e.uid for e in again.examples["zh"]] == [e.uid for e in drawn.examples["zh"]]


@pytest.mark.parametrize(
    ("lines", "line", "message"),
    [
        (["Paris\tB-LOC", "is\tO", "", "Berlin\tB-CITY"], 4, "tag 'B-CITY' is not one of"),
        (["Paris\tB-LOC", "is"], 2, "expected 'word<TAB>tag'"),
        (["Paris\tB-LOC\textra"], 1, "expected 'word<TAB>tag'"),
        (["\tO"], 1, "expected 'word<TAB>tag'"),
    ],
)
def test_malformed_line_names_file_and_line(tmp_path, lines, line, message):
    path = tmp_path / "dev-en.tsv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(XstiltsError, match=message) as error:
        tagged_words("panx-dev", PANX_TAGS)([path], "en")
    assert str(error.value).startswith(f"{path}:{line}: ")


def test_sentences_split_at_blank_lines(tmp_path):
    path = tmp_path / "dev-en.tsv"
    path.write_text("A\tB-PER\nB\tI-PER\n\n\nC\tO\n", encoding="utf-8")  # two blank lines, no trailing blank
    examples = tagged_words("panx-dev", PANX_TAGS)([path], "en")
    assert [(e.words, e.tags) for e in examples] == [(("A", "B"), ("B-PER", "I-PER")), (("C",), ("O",))]
    assert [e.uid for e in examples] == ["panx-dev-en/0", "panx-dev-en/1"]

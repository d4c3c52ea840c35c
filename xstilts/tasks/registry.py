"""The task registry: every task xstilts knows, where its files are, and how to read them."""

from __future__ import annotations

from functools import partial

from xstilts.contracts.kinds import TaskKind
from xstilts.tasks import parsers
from xstilts.tasks.parsers import NLI_LABELS, in_half
from xstilts.tasks.squad import squad
from xstilts.tasks.tagged import PANX_TAGS, UPOS_TAGS, tagged_words
from xstilts.tasks.types import Split, Task

XNLI_LANGUAGES = ("en", "ar", "bg", "de", "el", "es", "fr", "hi", "ru", "sw", "th", "tr", "ur", "vi", "zh")
PAWSX_LANGUAGES = ("en", "de", "es", "fr", "ja", "ko", "zh")
XCOPA_LANGUAGES = ("et", "ht", "id", "it", "qu", "sw", "ta", "th", "tr", "vi", "zh")
EN = ("en",)
# XTREME's 36 Tatoeba languages as the ISO 639-3 codes of LASER's file names; XTREME's codes, in order:
# af ar bn bg zh de el et eu fi fr he hi hu id it jv ja ka kk ko ml mr nl fa pt ru es sw ta te tl th tr ur vi
TATOEBA_LANGUAGES = (
    "afr", "ara", "ben", "bul", "cmn", "deu", "ell", "est", "eus", "fin", "fra", "heb",
    "hin", "hun", "ind", "ita", "jav", "jpn", "kat", "kaz", "kor", "mal", "mar", "nld",
    "pes", "por", "rus", "spa", "swh", "tam", "tel", "tgl", "tha", "tur", "urd", "vie",
)  # fmt: skip
XQUAD_LANGUAGES = ("en", "ar", "de", "el", "es", "hi", "ro", "ru", "th", "tr", "vi", "zh")
BUCC_LANGUAGES = ("de", "fr", "ru", "zh")
_TATOEBA_LAYOUTS = (
    "tatoeba/laser_v1/tatoeba.{lang}-eng.{lang}+tatoeba/laser_v1/tatoeba.{lang}-eng.eng",
    "tatoeba/tatoeba.{lang}-eng.{lang}+tatoeba/tatoeba.{lang}-eng.eng",
)


def _bucc_layout(split: str) -> tuple[str, ...]:
    return ("+".join(f"bucc2018/{{lang}}-en.{split}.{side}" for side in ("{lang}", "en", "gold")),)


# PAWS-X has no English training set here. Its dev rows are translations of the same English pairs, so the
# zero-shot protocol splits the items by a hash of their id: English items of half 0 train, every language's
# items of half 1 evaluate. No evaluated item is a translation of a trained one.
_PAWSX_DEV_LAYOUTS = ("pawsx/xtreme_format/dev-{lang}.tsv", "pawsx/dev-{lang}.tsv")


def _retrieval(name: str, splits: dict[str, Split], description: str, license: str) -> Task:
    """A retrieval task: no labels, nothing to train on, evaluated on its test split (the encoder is used as is)."""
    return Task(name, TaskKind.EMBEDDING, (), splits, "", "test", description, license)


PANX_LANGUAGES = ("en", "ar", "bg", "de", "el", "es", "fr", "hi", "ja", "ko", "ru", "sw", "tr", "ur", "vi", "zh")
UDPOS_LANGUAGES = ("en", "ar", "bg", "de", "el", "es", "fr", "hi", "ja", "ko", "ru", "tr", "ur", "vi", "zh")


def _tagging(name: str, tags: tuple[str, ...], languages: tuple[str, ...], description: str, license: str) -> Task:
    """A tagging task in the XTREME layout: English ``train``, ``dev`` in every language (not parallel)."""
    parse = {split: tagged_words(f"{name}-{split}", tags) for split in ("train", "dev")}
    layouts = {split: (f"{name}/xtreme_format/{split}-{{lang}}.tsv", f"{name}/{split}-{{lang}}.tsv") for split in parse}
    splits = {
        "train": Split(EN, layouts["train"], parse["train"], parallel=False),
        "dev": Split(languages, layouts["dev"], parse["dev"], parallel=False),
    }
    return Task(name, TaskKind.TOKEN_CLASSIFICATION, tags, splits, "train", "dev", description, license)


MLQA_LANGUAGES = ("en", "ar", "de", "es", "hi", "vi", "zh")
TYDIQA_LANGUAGES = ("en", "ar", "bn", "fi", "id", "ko", "ru", "sw", "te")
# TyDiQA-GoldP's own dev archive names its files by language name; XTREME's download splits them by code.
_TYDIQA_NAMES = {
    "en": "english", "ar": "arabic", "bn": "bengali", "fi": "finnish", "id": "indonesian",
    "ko": "korean", "ru": "russian", "sw": "swahili", "te": "telugu",
}  # fmt: skip


def _mlqa_layouts(question: str) -> tuple[str, ...]:
    """MLQA dev files with contexts in {lang} and questions in ``question``: staged here, or XTREME's layout."""
    name = f"dev-context-{{lang}}-question-{question}.json"
    return (f"mlqa/dev/{name}", f"mlqa/MLQA_V1/dev/{name}")


def _span_qa(name: str, splits: dict[str, Split], train: str, evaluate: str, description: str, license: str) -> Task:
    """An extractive QA task (SQuAD format): no labels, answers are spans of the context."""
    return Task(name, TaskKind.SPAN_QA, (), splits, train, evaluate, description, license)


def _pawsx_half(half: int):
    return partial(lambda h, example: in_half(example.uid, h), half)


TASKS: dict[str, Task] = {
    task.name: task
    for task in (
        Task(
            name="xnli",
            kind=TaskKind.PAIR,
            labels=NLI_LABELS,
            splits={
                "dev": Split(
                    XNLI_LANGUAGES,
                    ("xnli/labeled/dev-{lang}.tsv", "xnli/xtreme_format/dev-{lang}.tsv", "xnli/dev-{lang}.tsv"),
                    parsers.xnli("xnli-dev"),
                ),
                "test": Split(
                    XNLI_LANGUAGES, ("xnli/labeled/test-{lang}.tsv", "xnli/test-{lang}.tsv"), parsers.xnli("xnli-test")
                ),
            },
            train_split="",
            eval_split="test",
            description="Cross-lingual NLI: MNLI-style premise/hypothesis pairs translated into 14 languages",
            license="CC BY-NC 4.0",
        ),
        Task(
            name="pawsx",
            kind=TaskKind.PAIR,
            labels=("different", "paraphrase"),
            splits={
                "dev": Split(PAWSX_LANGUAGES, _PAWSX_DEV_LAYOUTS, parsers.pawsx("pawsx-dev")),
                "zs-train": Split(
                    EN,
                    _PAWSX_DEV_LAYOUTS,
                    parsers.pawsx("pawsx-dev"),
                    keep=_pawsx_half(0),
                    note="English dev items whose id hashes to half 0",
                ),
                "zs-eval": Split(
                    PAWSX_LANGUAGES,
                    _PAWSX_DEV_LAYOUTS,
                    parsers.pawsx("pawsx-dev"),
                    keep=_pawsx_half(1),
                    note="dev items of half 1, every language",
                ),
            },
            train_split="zs-train",
            eval_split="zs-eval",
            description="Cross-lingual paraphrase adversaries from word scrambling (PAWS translated)",
            license="free use with credit to Google",
        ),
        Task(
            name="xcopa",
            kind=TaskKind.MULTIPLE_CHOICE,
            labels=("choice1", "choice2"),
            splits={
                "train": Split(
                    EN, ("copa/xtreme_format/train-en.jsonl", "copa/train.jsonl"), parsers.copa("copa-train")
                ),
                "val": Split(
                    EN + XCOPA_LANGUAGES,
                    ("xcopa/{lang}/val.{lang}.jsonl",),
                    parsers.copa("copa-val"),
                    language_layouts={"en": ("copa/xtreme_format/val-en.jsonl", "copa/val.jsonl")},
                    note="English is COPA's validation set, of which XCOPA's are translations",
                ),
            },
            train_split="train",
            eval_split="val",
            description="Causal commonsense reasoning (COPA) in 11 languages; English COPA to train",
            license="CC BY 4.0 (XCOPA), BSD-2 (COPA)",
        ),
        Task(
            name="mnli",
            kind=TaskKind.PAIR,
            labels=NLI_LABELS,
            splits={
                "train": Split(EN, ("mnli/glue_pretrain_subset/train.json",), parsers.glue_json("mnli", NLI_LABELS)),
                "dev": Split(EN, ("mnli/glue_pretrain_subset/dev.json",), parsers.glue_json("mnli-dev", NLI_LABELS)),
            },
            train_split="train",
            eval_split="dev",
            description="MultiNLI (a 9,999-pair subset of its train split: small-budget results only)",
            license="mixed (OANC based)",
        ),
        Task(
            name="qqp",
            kind=TaskKind.PAIR,
            labels=("not_duplicate", "duplicate"),
            splits={
                split: Split(
                    EN,
                    (f"qqp/glue_pretrain_subset/{split}.json",),
                    parsers.glue_json(
                        f"qqp-{split}", ("not_duplicate", "duplicate"), {"0": "not_duplicate", "1": "duplicate"}
                    ),
                )
                for split in ("train", "dev")
            },
            train_split="train",
            eval_split="dev",
            description="Quora Question Pairs (a subset)",
            license="Quora terms",
        ),
        Task(
            name="snli",
            kind=TaskKind.PAIR,
            labels=NLI_LABELS,
            splits={
                split: Split(
                    EN, (f"snli/glue_pretrain_subset/{split}.json",), parsers.glue_json(f"snli-{split}", NLI_LABELS)
                )
                for split in ("train", "dev")
            },
            train_split="train",
            eval_split="dev",
            description="Stanford NLI (a subset)",
            license="CC BY-SA 4.0",
        ),
        Task(
            name="anli",
            kind=TaskKind.PAIR,
            labels=NLI_LABELS,
            splits={
                "dev": Split(
                    EN,
                    ("+".join(f"anli/ANLI_analysis_r{r}_dev.csv" for r in (1, 2, 3)),),
                    parsers.anli,
                    note="the dev sets of rounds 1-3, the only ANLI rows available offline",
                ),
            },
            train_split="dev",
            eval_split="dev",
            description="Adversarial NLI, rounds 1-3 dev sets (used as intermediate training data)",
            license="CC BY-NC 4.0",
        ),
        Task(
            name="copa",
            kind=TaskKind.MULTIPLE_CHOICE,
            labels=("choice1", "choice2"),
            splits={
                "train": Split(
                    EN, ("copa/xtreme_format/train-en.jsonl", "copa/train.jsonl"), parsers.copa("copa-train")
                ),
                "val": Split(EN, ("copa/xtreme_format/val-en.jsonl", "copa/val.jsonl"), parsers.copa("copa-val")),
            },
            train_split="train",
            eval_split="val",
            description="Choice of Plausible Alternatives (English)",
            license="BSD-2",
        ),
        Task(
            name="siqa",
            kind=TaskKind.MULTIPLE_CHOICE,
            labels=("A", "B", "C"),
            splits={
                "dev": Split(EN, ("siqa/socialIQa_v1.4_dev.jsonl",), parsers.siqa("siqa-dev")),
                "test": Split(EN, ("siqa/socialIQa_v1.4_tst.jsonl",), parsers.siqa("siqa-test")),
            },
            train_split="test",
            eval_split="dev",
            description="Social IQa (its labelled dev and test files; the 33k train split is not available offline)",
            license="CC BY 4.0",
        ),
        Task(
            name="cosmosqa",
            kind=TaskKind.MULTIPLE_CHOICE,
            labels=("0", "1", "2", "3"),
            splits={"dev": Split(EN, ("cosmosqa/valid.csv",), parsers.cosmosqa)},
            train_split="dev",
            eval_split="dev",
            description="Cosmos QA (its validation file, used as intermediate training data)",
            license="CC BY 4.0",
        ),
        _retrieval(
            "tatoeba",
            {"test": Split(TATOEBA_LANGUAGES, _TATOEBA_LAYOUTS, parsers.tatoeba, present_only=True)},
            "Tatoeba sentence retrieval xx->en (LASER test files, 1,000 pairs per language)",
            "CC BY 2.0 FR (Tatoeba)",
        ),
        _retrieval(
            "xnli_premises",
            {
                "test": Split(
                    XNLI_LANGUAGES,
                    ("xnli/labeled/test-{lang}.tsv+xnli/labeled/test-en.tsv",),
                    parsers.xnli_premises,
                    note="XNLI test premises, each once (by promptID), retrieved against English",
                )
            },
            "XNLI test premises as Tatoeba-style retrieval against English (a parallel proxy)",
            "CC BY-NC 4.0",
        ),
        _retrieval(
            "xquad_contexts",
            {
                "test": Split(
                    XQUAD_LANGUAGES,
                    ("xquad/xquad.{lang}.json+xquad/xquad.en.json",),
                    parsers.xquad_contexts,
                    note="XQuAD's 240 paragraphs, each once, retrieved against English",
                )
            },
            "XQuAD paragraphs as Tatoeba-style retrieval against English (a parallel proxy)",
            "CC BY-SA 4.0",
        ),
        _retrieval(
            "bucc2018",
            {
                split: Split(BUCC_LANGUAGES, _bucc_layout(split), parsers.bucc2018, present_only=True)
                for split in ("dev", "test")
            },
            "BUCC 2018 bitext mining xx-en (XTREME layout; rows: gold pairs); margin-based mining",
            "BUCC 2018 terms (research use)",
        ),
        _tagging(
            "panx",
            PANX_TAGS,
            PANX_LANGUAGES,
            "WikiANN named entities (PAN-X, BIO tags PER/ORG/LOC): English train, dev in 16 languages",
            "WikiANN terms (see its source)",
        ),
        _tagging(
            "udpos",
            UPOS_TAGS,
            UDPOS_LANGUAGES,
            "Universal Dependencies part-of-speech tags (17 UPOS): English train, dev in 15 languages",
            "the UD treebanks' licenses",
        ),
        _span_qa(
            "tydiqa_en",
            {
                "train": Split(
                    EN,
                    (
                        "tydiqa_goldp/train/tydiqa.goldp.en.train.json",
                        "tydiqa/tydiqa-goldp-v1.1-train/tydiqa.goldp.en.train.json",
                        "tydiqa/tydiqa-goldp-v1.1-train/tydiqa.en.train.json",
                    ),
                    squad("tydiqa_en"),
                )
            },
            "train",
            "train",
            "TyDiQA-GoldP English train (3,696 questions): the English QA training set here (SQuAD v1.1 is not)",
            "Apache 2.0 (TyDi QA)",
        ),
        _span_qa(
            "tydiqa",
            {
                "dev": Split(
                    TYDIQA_LANGUAGES,
                    ("tydiqa/tydiqa-goldp-v1.1-dev/tydiqa.goldp.{lang}.dev.json",),
                    squad("tydiqa"),
                    language_layouts={
                        lang: (
                            f"tydiqa_goldp/dev/tydiqa.goldp.{lang}.dev.json",
                            f"tydiqa/tydiqa-goldp-v1.1-dev/tydiqa.goldp.{lang}.dev.json",
                            f"tydiqa/tydiqa-goldp-v1.1-dev/tydiqa-goldp-dev-{name}.json",
                        )
                        for lang, name in _TYDIQA_NAMES.items()
                    },
                    parallel=False,
                    present_only=True,  # not in the data folder here: listed as absent, not an error
                    note="TyDiQA-GoldP dev, 9 languages (not parallel: each language's own questions)",
                )
            },
            "",
            "dev",
            "TyDiQA-GoldP dev (XTREME's per-language files, or the dev archive's per-language-name files)",
            "Apache 2.0 (TyDi QA)",
        ),
        _span_qa(
            "xquad",
            {"test": Split(XQUAD_LANGUAGES, ("xquad/xquad.{lang}.json",), squad("xquad"))},
            "",
            "test",
            "XQuAD: 1,190 SQuAD v1.1 dev questions professionally translated into 11 languages (evaluation only)",
            "CC BY-SA 4.0",
        ),
        _span_qa(
            "mlqa",
            {
                "dev": Split(
                    MLQA_LANGUAGES,
                    _mlqa_layouts("{lang}"),
                    squad("mlqa"),
                    parallel=False,
                    note="context and question in the same language",
                ),
                "dev-question-en": Split(
                    MLQA_LANGUAGES,
                    _mlqa_layouts("en"),
                    squad("mlqa"),
                    parallel=False,
                    note="context in the language, question in English",
                ),
            },
            "",
            "dev",
            "MLQA dev in 7 languages (same-language files; the English-question files as split dev-question-en)",
            "CC BY-SA 3.0",
        ),
    )
}

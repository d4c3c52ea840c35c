"""The research questions the grid report answers, as data: what each one compares, under which title, with
which plots. :mod:`xstilts.grid.sections` holds one view per way of comparing (``view``); the arms a question
compares are named by their role in the grid config's ``report`` settings (``baseline``, ``english``,
``multilingual``), so that another study asks its own questions by editing this list, not the report's code.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Plot:
    name: str  # file stem: <name>.png beside report.md
    alt: str


@dataclass(frozen=True)
class Question:
    """One section of the report."""

    number: int
    title: str
    view: str  # by_size | by_duration | side_by_side | gain | gain_every_arm
    plots: tuple[Plot, ...]
    intro: str = ""
    # report roles whose arms the question needs, in the order a missing one is named
    needs: tuple[str, ...] = ()
    # side_by_side and gain views: (arm, reference) roles; a gain is arm minus reference, paired by seed
    compare: tuple[str, str] | None = None


QUESTIONS: tuple[Question, ...] = (
    Question(
        1,
        "Model size vs zero-shot transfer, per intermediate arm",
        "by_size",
        (Plot("q1_size_transfer", "size vs transfer"),),
        intro="Average non-English accuracy (%) of the training run's zero-shot evaluation.",
    ),
    Question(
        2,
        "Intermediate training duration vs accuracy and serving cost",
        "by_duration",
        (Plot("q2_duration_accuracy", "duration vs accuracy"), Plot("q2_duration_serving", "duration vs serving")),
        intro="Steps of the arm's last intermediate phase (0: without it); average non-English accuracy (%).",
    ),
    Question(
        3,
        "Multilingual-then-English vs English-only intermediate training",
        "side_by_side",
        (Plot("q3_multilingual", "multilingual vs English-only"),),
        needs=("english", "multilingual"),
        compare=("english", "multilingual"),
    ),
    Question(
        4,
        "Gain of English-only over multilingual-then-English intermediate training",
        "gain",
        (Plot("q4_gain_english_vs_multilingual", "q4_gain_english_vs_multilingual"),),
        needs=("english", "multilingual"),
        compare=("english", "multilingual"),
    ),
    Question(
        5,
        "Gain of English intermediate training over the baseline",
        "gain_every_arm",
        (
            Plot("q5_gain_english_vs_baseline", "q5_gain_english_vs_baseline"),
            Plot("q5_gain_every_arm", "q5_gain_every_arm"),
        ),
        needs=("baseline", "english"),
        compare=("english", "baseline"),
    ),
)

"""The report's views: each renders one research question (:mod:`xstilts.grid.questions`) as Markdown tables
and its plots, from the grid's rows. A question names its view, its plots and the report roles of the arms it
compares; the views know how to compare (by size, by duration, side by side, as a gain paired by seed)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from xstilts.grid.plots import bar_plot, line_plot
from xstilts.grid.questions import Question
from xstilts.grid.stats import Results, Stat, api_non_english, cell_text, english, non_english, table

SERVING = (
    ("closed_peak_seq_per_s", "peak seq/s (closed loop)", 0),
    ("open.p50_ms", "p50 ms (open loop)", 1),
    ("open.p99_ms", "p99 ms (open loop)", 1),
)


def heading(question: Question) -> str:
    return f"\n## {question.number}. {question.title}\n"


def image(question: Question, index: int = 0) -> str:
    plot = question.plots[index]
    return f"\n![{plot.alt}]({plot.name}.png)\n"


def role_arms(results: Results, question: Question) -> tuple[dict[str, str], str | None]:
    """The arms of the question's roles, and a note when the report settings leave one unnamed."""
    settings = results.config.report
    arms = {role: getattr(settings, role) for role in question.needs}
    missing = [role for role, arm in arms.items() if arm is None]
    note = f"\nNot in this grid (set report.{' and report.'.join(missing)}).\n" if missing else None
    return arms, note


def by_size(results: Results, question: Question, folder: Path) -> str:
    c = results.config
    out = [heading(question), question.intro + "\n"]
    panels = {}
    for target in c.targets:
        stats = {arm: [results.stat(non_english, m, arm, target) for m in c.models] for arm in c.arms}
        out += [f"\n**{target}**\n\n", table(["arm", *c.models], [[a, *map(cell_text, s)] for a, s in stats.items()])]
        panels[target] = {arm: list(enumerate(s)) for arm, s in stats.items()}
    line_plot(folder / f"{question.plots[0].name}.png", panels, "model", "avg non-English accuracy (%)", list(c.models))
    out.append(image(question))
    if c.bench.load_arm:
        out.append(serving_section(results))
    return "".join(out)


def serving_section(results: Results) -> str:
    c = results.config
    arm = c.bench.load_arm or ""
    out = [
        f"\nServing cost per size and variant (arm {arm}, seeds {c.load_seeds}; first open-loop rate "
        f"{c.bench.rates[0] if c.bench.rates else '-'}), and average non-English accuracy through the API:\n"
    ]
    for target in c.targets:
        rows = []
        for model in c.models:
            for variant in c.export.variants:
                api = results.stat(lambda r, v=variant: api_non_english(r, v), model, arm, target)
                figures = [cell_text(results.serving(model, arm, target, variant, k), digits=d) for k, _, d in SERVING]
                rows.append([model, variant, cell_text(api), *figures])
        headers = ["model", "variant", "API avg non-en %", *(h for _, h, _ in SERVING)]
        out += [f"\n**{target}**\n\n", table(headers, rows)]
    return "".join(out)


def by_duration(results: Results, question: Question, folder: Path) -> str:
    c = results.config
    axis = c.intermediate_steps
    if axis is None:
        return heading(question) + "\nNot in this grid (no `intermediate_steps`).\n"
    out = [heading(question), f"\n{question.intro}\n"]
    accuracy_panels, serving_panels = {}, {}
    for arm in axis.arms:
        for target in c.targets:
            stats = {m: [results.stat(non_english, m, arm, target, steps=s) for s in axis.steps] for m in c.models}
            rows = [[str(s), *(cell_text(stats[m][i]) for m in c.models)] for i, s in enumerate(axis.steps)]
            out += [f"\n**{arm} → {target}**\n\n", table(["steps", *c.models], rows)]
            accuracy_panels[f"{arm} → {target}"] = {m: list(zip(axis.steps, v, strict=True)) for m, v in stats.items()}
            if arm != c.bench.load_arm:
                continue
            serving = {
                f"{m} {v}": [results.serving(m, arm, target, v, "closed_peak_seq_per_s", steps=s) for s in axis.steps]
                for m in c.models
                for v in c.export.variants
            }
            rows = [
                [str(s), *(cell_text(vals[i], digits=0) for vals in serving.values())] for i, s in enumerate(axis.steps)
            ]
            out += [f"\nPeak closed-loop sequences/s, {arm} → {target}:\n\n", table(["steps", *serving], rows)]
            serving_panels[f"{arm} → {target}"] = {k: list(zip(axis.steps, v, strict=True)) for k, v in serving.items()}
    accuracy_plot, serving_plot = question.plots
    line_plot(
        folder / f"{accuracy_plot.name}.png", accuracy_panels, "intermediate steps", "avg non-English accuracy (%)"
    )
    out.append(image(question, 0))
    if serving_panels:
        line_plot(folder / f"{serving_plot.name}.png", serving_panels, "intermediate steps", "peak sequences/s")
        out.append(image(question, 1))
    return "".join(out)


def side_by_side(results: Results, question: Question, folder: Path) -> str:
    """English and non-English accuracy of two arms, per model."""
    c = results.config
    arms, missing = role_arms(results, question)
    if missing:
        return heading(question) + missing
    first, second = (arms[role] for role in question.compare or ())
    out = [heading(question), f"\nArms {second} and {first}: English accuracy and average non-English accuracy (%).\n"]
    panels = {}
    for target in c.targets:
        rows, series = [], {f"{first} (non-en)": [], f"{second} (non-en)": []}
        for model in c.models:
            cells = [
                results.stat(metric, model, arm, target) for arm in (first, second) for metric in (english, non_english)
            ]
            rows.append([model, *map(cell_text, cells)])
            series[f"{first} (non-en)"].append(cells[1])
            series[f"{second} (non-en)"].append(cells[3])
        headers = ["model", f"{first} en", f"{first} non-en", f"{second} en", f"{second} non-en"]
        out += [f"\n**{target}**\n\n", table(headers, rows)]
        panels[target] = series
    bar_plot(folder / f"{question.plots[0].name}.png", panels, list(c.models), "avg non-English accuracy (%)")
    return "".join(out) + image(question)


def gain_table(results: Results, question: Question, folder: Path, arm: str, reference: str) -> str:
    """``arm`` minus ``reference`` per target and model, with its bar plot (the question's first)."""
    c = results.config
    out = [heading(question), f"\n{arm} minus {reference}, average non-English accuracy points, paired by seed.\n\n"]
    rows, panels = [], {}
    for target in c.targets:
        stats = [results.gain(non_english, m, arm, reference, target) for m in c.models]
        rows.append([target, *(cell_text(s, signed=True) for s in stats)])
        panels[target] = {f"{arm} − {reference}": stats}
    out.append(table(["target", *c.models], rows))
    bar_plot(folder / f"{question.plots[0].name}.png", panels, list(c.models), "gain (accuracy points)")
    return "".join(out) + image(question)


def gain(results: Results, question: Question, folder: Path) -> str:
    arms, missing = role_arms(results, question)
    if missing:
        return heading(question) + missing
    arm, reference = (arms[role] for role in question.compare or ())
    return gain_table(results, question, folder, arm or "", reference or "")


def gain_every_arm(results: Results, question: Question, folder: Path) -> str:
    """The gain of the question's arm over its reference, then of every intermediate arm over the reference, at
    the same and at each longer target budget of the reference, and the reference's learning curve."""
    c = results.config
    arms, missing = role_arms(results, question)
    if missing:
        return heading(question) + missing
    arm, baseline = (arms[role] or "" for role in question.compare or ())
    out = [gain_table(results, question, folder, arm, baseline)]
    longer = c.extra_target_steps.steps if c.extra_target_steps and baseline in c.extra_target_steps.arms else []
    out.append(
        f"\nEvery intermediate arm minus {baseline}, average non-English accuracy points, paired by seed: against "
        f"{baseline} with the same target steps, and against {baseline} with more target steps (so that a gain "
        "cannot come from under-training the baseline alone).\n\n"
    )
    references: list[tuple[str, int | None]] = [("same target steps", None)]
    references += [(f"{t} target steps", t) for t in longer]
    rows, panels = [], {}
    for target in c.targets:
        series: dict[str, list[Stat | None]] = {}
        for other in (a for a, phases in c.arms.items() if phases):
            for label, steps in references:
                stats = [results.gain(non_english, m, other, baseline, target, steps) for m in c.models]
                rows.append([target, other, f"{baseline}, {label}", *(cell_text(s, signed=True) for s in stats)])
                if any(stat is not None and stat.n for stat in stats):  # a plot has no legend entry without bars
                    series[f"{other} − {baseline}" + (f"@{steps}" if steps else "")] = stats
        panels[target] = series
    out.append(table(["target", "arm", "against", *c.models], rows))
    bar_plot(folder / f"{question.plots[1].name}.png", panels, list(c.models), "gain (accuracy points)")
    out.append(image(question, 1))
    if longer:
        out.append(learning_curve(results, baseline, longer))
    return "".join(out)


def learning_curve(results: Results, arm: str, longer: list[int]) -> str:
    c = results.config
    out = ["\nThe baseline's learning curve, avg non-English accuracy (%):\n"]
    for target in c.targets:
        written = c.targets[target].target.get("max_steps", "as written")
        rows = [
            [
                str(t) if t else f"{written} (as written)",
                *(cell_text(results.stat(non_english, m, arm, target, t_steps=t)) for m in c.models),
            ]
            for t in [None, *longer]
        ]
        out.append(f"\n**{arm} → {target}**, by target steps\n\n" + table(["target steps", *c.models], rows))
    return "".join(out)


VIEWS: dict[str, Callable[[Results, Question, Path], str]] = {
    "by_size": by_size,
    "by_duration": by_duration,
    "side_by_side": side_by_side,
    "gain": gain,
    "gain_every_arm": gain_every_arm,
}


def render(results: Results, question: Question, folder: Path) -> str:
    """The question's section, by its view."""
    return VIEWS[question.view](results, question, folder)

"""The figures the report picks out of a target's scenarios: its single stream, its peak throughput, and the
Pareto front of accuracy against cost."""

from __future__ import annotations

from xstilts.contracts.results import ScenarioResult, TargetResult

Point = tuple[float, float, str]


def reference_scenario(target: TargetResult) -> ScenarioResult | None:
    """Single stream: the closed-loop run with the fewest users."""
    closed = target.good_scenarios("closed")
    return min(closed, key=lambda s: s.users) if closed else None


def peak_closed_rate(target: TargetResult) -> float | None:
    """The most requests/s of the closed-loop sweep."""
    return max((s.requests_per_s for s in target.good_scenarios("closed")), default=None)


def peak_throughput(target: TargetResult) -> float | None:
    """The most sequences/s any scenario achieved without errors."""
    values = [s.sequences_per_s for s in target.good_scenarios() if not s.failures and s.sequences_per_s]
    return max(values) if values else None


def pareto_front(points: list[Point], lower_is_better: bool = True) -> list[Point]:
    """Points not dominated: none other is at least as good on x (cost or benefit) and on accuracy (y)."""
    ordered = sorted(points, key=lambda p: (p[0] if lower_is_better else -p[0], -p[1]))
    front, best = [], float("-inf")
    for point in ordered:
        if point[1] > best:
            front.append(point)
            best = point[1]
    return front

"""The Pareto front and the choice of the best model (compressor/search/pareto.py)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from compressor.search.pareto import OBJECTIVES, Point, best, dominates, pareto_front, score

BASE = Point(0, 0.99, 10.0, 1000)


def test_dominates_needs_no_worse_everywhere_and_better_somewhere() -> None:
    a = Point(1, 0.99, 5.0, 500)
    assert dominates(a, BASE)  # as good, faster and smaller
    assert not dominates(BASE, a)
    assert not dominates(a, a)  # equal points do not dominate each other
    assert not dominates(Point(2, 0.98, 1.0, 10), BASE)  # better speed and size, worse quality: a trade-off
    assert dominates(Point(3, 0.995, 10.0, 1000), BASE)  # better quality alone is enough


def test_front_keeps_the_trade_offs_sorted_by_latency() -> None:
    fast = Point(1, 0.95, 1.0, 800)
    small = Point(2, 0.96, 4.0, 200)
    accurate = Point(3, 0.999, 20.0, 4000)
    dominated = Point(4, 0.95, 5.0, 900)  # slower, bigger and no better than `fast`
    front = pareto_front([BASE, fast, small, accurate, dominated])
    assert [p.key for p in front] == [1, 2, 0, 3]
    assert dominated not in front


def test_identical_points_are_both_on_the_front() -> None:
    twin = Point(1, BASE.quality, BASE.latency_ms, BASE.size_bytes)
    assert {p.key for p in pareto_front([BASE, twin])} == {0, 1}


def test_best_by_objective_and_ties() -> None:
    fast = Point(1, 0.99, 2.0, 900)
    small = Point(2, 0.99, 8.0, 100)
    assert best([fast, small], BASE, "latency") == fast
    assert best([fast, small], BASE, "size") == small
    # balanced: geometric mean of the ratios, sqrt(0.2*0.9)=0.42 against sqrt(0.8*0.1)=0.28
    assert best([fast, small], BASE, "balanced") == small
    better = Point(3, 0.995, 2.0, 900)  # the same speed and size as `fast`, more accurate
    assert best([fast, better], BASE, "latency") == better
    assert best([], BASE, "latency") is None
    assert score(BASE, BASE, "balanced") == 1.0


def test_a_zero_baseline_does_not_divide_by_zero() -> None:
    zero = Point(0, 1.0, 0.0, 0)
    assert best([Point(1, 1.0, 1.0, 1)], zero, "balanced") is None  # nothing can beat it; no ZeroDivisionError


def test_a_candidate_no_better_than_the_baseline_is_never_chosen() -> None:
    slower = Point(1, 0.99, 12.0, 250)
    assert best([slower], BASE, "latency") is None
    assert best([slower], BASE, "size") == slower
    near_tie_lower_quality = Point(2, 0.97, 5.0, 500)
    near_tie_higher_quality = Point(3, 0.98, 5.001, 500)  # the same score to 0.1%: quality decides
    assert best([near_tie_lower_quality, near_tie_higher_quality], BASE, "latency") == near_tie_higher_quality


points = st.lists(
    st.builds(
        Point,
        key=st.integers(0, 10**6),
        quality=st.floats(0, 1),
        latency_ms=st.floats(0.01, 100),
        size_bytes=st.integers(1, 10**9),
    ),
    min_size=1,
    max_size=25,
    unique_by=lambda p: p.key,
)


@settings(max_examples=200, deadline=None)
@given(points)
def test_front_is_exactly_the_undominated_points(pts: list[Point]) -> None:
    front = pareto_front(pts)
    assert front  # a non-empty set always has an undominated point
    for p in pts:
        assert (p in front) != any(dominates(q, p) for q in pts)
    assert [p.latency_ms for p in front] == sorted(p.latency_ms for p in front)


@settings(max_examples=200, deadline=None)
@given(points, st.sampled_from(OBJECTIVES), st.floats(0, 1))
def test_the_best_meeting_point_is_on_the_front(pts: list[Point], objective: str, threshold: float) -> None:
    """Among the points that meet a quality threshold, the chosen one is never dominated by any point, those
    that miss the threshold included (they are less accurate by definition)."""
    meeting = [p for p in pts if p.quality >= threshold]
    chosen = best(meeting, BASE, objective)
    if chosen is None:  # nothing meets the threshold, or nothing beats the baseline on the objective
        assert all(score(p, BASE, objective) >= score(BASE, BASE, objective) for p in meeting)
        return
    assert chosen in meeting
    assert not any(dominates(q, chosen) for q in meeting)
    assert chosen in pareto_front([p for p in pts if p in meeting or p.quality < threshold])

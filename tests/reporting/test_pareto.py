"""The Pareto front on constructed examples."""

import pytest

from protege.reporting.pareto import pareto_front


def test_front_of_a_constructed_tradeoff():
    #            0     1     2     3     4     5
    latency = [10.0, 5.0, 6.0, 2.0, 2.0, 9.0]
    accuracy = [0.92, 0.90, 0.88, 0.80, 0.79, 0.89]
    # 2 is beaten by 1 (faster and better), 4 by 3 (as fast, better), 5 by 1; the rest trade off
    assert pareto_front(latency, accuracy) == [3, 1, 0]


def test_equal_points_are_both_kept_and_one_point_is_its_own_front():
    assert pareto_front([1.0, 1.0, 2.0], [0.5, 0.5, 0.4]) == [0, 1]
    assert pareto_front([3.0], [0.7]) == [0]
    assert pareto_front([], []) == []


def test_lower_is_better_quality():
    # MSE: 0 (cost 1, mse 0.5) and 1 (cost 2, mse 0.2) trade off; 2 (cost 3, mse 0.3) is beaten by 1
    assert pareto_front([1, 2, 3], [0.5, 0.2, 0.3], higher_quality_is_better=False) == [0, 1]


def test_lengths_must_match():
    with pytest.raises(ValueError):
        pareto_front([1, 2], [0.5])

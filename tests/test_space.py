import itertools
import math

import pytest

from orchestrator import space


def test_log_grid_one_per_decade_is_the_decades():
    assert space.log_grid(1e-6, 1e-1, 1) == [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1]


def test_log_grid_three_per_decade_is_evenly_spaced_in_log():
    g = space.log_grid(1e-3, 1e-1, 3)
    assert len(g) == 7
    steps = [math.log10(b) - math.log10(a) for a, b in itertools.pairwise(g)]
    assert all(abs(s - 1 / 3) < 1e-3 for s in steps)
    assert g[0] == 1e-3 and g[-1] == 0.1


def test_log_grid_single_point():
    assert space.log_grid(0.01, 0.01, 2) == [0.01]


@pytest.mark.parametrize("args, name", [((0, 1, 1), "low"), ((1e-3, 1e-4, 1), "high"), ((1e-3, 1e-1, 0), "per_decade")])
def test_log_grid_rejects_bad_arguments_by_name(args, name):
    with pytest.raises(ValueError, match=name):
        space.log_grid(*args)


def test_linear_grid():
    assert space.linear_grid(0.0, 0.5, 3) == [0.0, 0.25, 0.5]
    with pytest.raises(ValueError, match="points"):
        space.linear_grid(0, 1, 0)


def test_cross_product_order_and_empty():
    assert space.cross({}) == [{}]
    assert space.cross({"a": [1, 2], "b": ["x"]}) == [{"a": 1, "b": "x"}, {"a": 2, "b": "x"}]


def test_nice_rounds_float_noise():
    assert space.nice(10**-3.0000000001) == 0.001

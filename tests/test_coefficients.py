import json
import math

import numpy as np
import pytest
from keras import ops

from yoto_tf import Coefficient, LossSpace


@pytest.fixture
def space():
    return LossSpace([
        Coefficient.fixed("rate", 1.0),
        Coefficient("distortion", 0.0018, 0.18, "log_uniform"),
        Coefficient("tv", 0.0, 2.0, "uniform"),
    ])


def test_sample_shape_dtype_and_range(space):
    lam = ops.convert_to_numpy(space.sample(4096, seed=3))
    assert lam.shape == (4096, 3) and lam.dtype == np.float32
    assert np.all(lam[:, 0] == 1.0)
    assert lam[:, 1].min() >= 0.0018 * (1 - 1e-5) and lam[:, 1].max() <= 0.18 * (1 + 1e-5)
    assert lam[:, 2].min() >= 0.0 and lam[:, 2].max() <= 2.0


def test_log_uniform_is_uniform_in_log_space(space):
    lam = ops.convert_to_numpy(space.sample(20000, seed=0))[:, 1]
    # The median of a log-uniform sample is the geometric mean of the range (0.018),
    # not the arithmetic midpoint (0.09) a uniform sampler would give.
    assert abs(np.median(lam) / 0.018 - 1) < 0.05
    lam_np = space.sample_numpy(20000, rng=0)[:, 1]
    assert abs(np.median(lam_np) / 0.018 - 1) < 0.05


def test_samples_differ_per_example(space):
    lam = ops.convert_to_numpy(space.sample(8, seed=1))
    assert len(np.unique(lam[:, 1])) == 8


def test_to_conditioning_maps_range_to_unit_interval(space):
    lam = np.array([[1.0, 0.0018, 0.0], [1.0, 0.18, 2.0], [1.0, 0.018, 1.0]], np.float32)
    cond = ops.convert_to_numpy(space.to_conditioning(lam))
    np.testing.assert_allclose(cond[:, 0], 0.0, atol=1e-6)  # fixed -> 0
    np.testing.assert_allclose(cond[:, 1], [-1.0, 1.0, 0.0], atol=1e-5)  # log scale
    np.testing.assert_allclose(cond[:, 2], [-1.0, 1.0, 0.0], atol=1e-6)  # linear


@pytest.mark.parametrize(
    "lam, match",
    [
        ([1.0, 0.01], "length 3"),
        ([1.0, float("nan"), 1.0], "'distortion' is nan"),
        ([1.0, 0.01, float("inf")], "'tv' is inf"),
        ([1.0, 0.5, 1.0], r"'distortion' = 0.5 is outside its allowed range \[0.0018, 0.18\]"),
        ([2.0, 0.01, 1.0], r"'rate' = 2 is outside"),
    ],
)
def test_validate_names_coefficient_and_range(space, lam, match):
    with pytest.raises(ValueError, match=match):
        space.validate(lam)


def test_validate_clip_and_batch(space):
    out = space.validate([[1.0, 0.5, -1.0], [1.0, 0.01, 1.0]], clip=True)
    np.testing.assert_allclose(out, [[1.0, 0.18, 0.0], [1.0, 0.01, 1.0]], rtol=1e-6)
    assert out.dtype == np.float32


def test_config_round_trip_is_json(space):
    config = json.loads(json.dumps(space.get_config()))
    restored = LossSpace.from_config(config)
    assert restored == space and restored.names == ("rate", "distortion", "tv")


def test_defaults_make_and_grid(space):
    np.testing.assert_allclose(space.default(), [1.0, math.sqrt(0.0018 * 0.18), 1.0], rtol=1e-6)
    assert space.make(2, tv=0.5).shape == (2, 3)
    with pytest.raises(KeyError, match="distortion"):
        space.make(lambda_=1.0)
    grid = space.grid("distortion", 5)
    np.testing.assert_allclose(grid[[0, -1], 1], [0.0018, 0.18], rtol=1e-6)
    assert np.all(np.diff(np.log(grid[:, 1])) > 0)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(name="a", low=0.0, high=1.0, distribution="log_uniform"), "must be positive"),
        (dict(name="a", low=2.0, high=1.0), "low <= high"),
        (dict(name="a", low=1.0, high=2.0, distribution="gaussian"), "unknown distribution"),
        (dict(name="a", low=1.0, high=2.0, distribution="fixed"), "low == high"),
        (dict(name="a", low=1.0, high=2.0, default=3.0), "outside its range"),
    ],
)
def test_bad_coefficients(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Coefficient(**kwargs)


def test_duplicate_names_rejected():
    with pytest.raises(ValueError, match="Duplicate"):
        LossSpace([Coefficient("a", 1, 2), Coefficient("a", 1, 3)])


def test_coefficient_by_name_and_range_parser():
    from trainers.cli import parse_range

    space = LossSpace([Coefficient.fixed("a", 1.0), Coefficient("b", 0.5, 8.0, "log_uniform")])
    assert space.coefficient("b").high == 8.0
    with pytest.raises(KeyError, match=r"No coefficient named 'c'.*\['a', 'b'\]"):
        space.coefficient("c")
    assert parse_range("--x_range", "0.5, 2") == (0.5, 2.0)
    with pytest.raises(ValueError, match=r"--x_range must be LO,HI \(two numbers\), got 'a,b'"):
        parse_range("--x_range", "a,b")
    with pytest.raises(ValueError, match="--x_range needs 0 < LO < HI"):
        parse_range("--x_range", "0,1")
    assert parse_range("--y", "-1,1", positive=False) == (-1.0, 1.0)
    with pytest.raises(ValueError, match="--x_range needs 0 < LO < HI, got '2,2'"):
        parse_range("--x_range", "2,2")
    # A map's range (a list flag's value, too): LO = HI is one value everywhere; LO > HI is refused.
    assert parse_range("--map_range", ["2", "2"], allow_equal=True) == (2.0, 2.0)
    with pytest.raises(ValueError, match="--map_range needs 0 < LO <= HI, got '3,2'"):
        parse_range("--map_range", "3,2", allow_equal=True)

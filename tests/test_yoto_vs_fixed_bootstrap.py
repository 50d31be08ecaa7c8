"""The YOTO-versus-fixed error bars (benchmarks/yoto_vs_fixed/bootstrap.py): the hierarchical
bootstrap over seeds and held-out examples, and the verdict per lambda."""

import numpy as np
import pytest

from benchmarks.yoto_vs_fixed.bootstrap import VERDICTS, ratio_interval, seed_mean_ratio, verdict


def _synthetic(rng, seeds, examples, ratio=1.1, seed_sd=0.05, example_sd=0.3):
    """Per-example losses [S, N] of YOTO and fixed models whose population ratio is ``ratio``:
    example n has a difficulty shared by both (paired), each seed scales YOTO's losses by a
    mean-1 factor (training noise), and every measurement has mean-1 noise of its own."""
    difficulty = rng.lognormal(0.0, 0.5, examples)
    seed_factor = np.exp(seed_sd * rng.standard_normal((seeds, 1)) - seed_sd**2 / 2)
    noise = lambda: rng.lognormal(-example_sd**2 / 2, example_sd, (seeds, examples))
    return ratio * seed_factor * difficulty * noise(), difficulty * noise()


def test_interval_covers_the_true_ratio_at_about_its_confidence():
    rng = np.random.default_rng(0)
    intervals = [ratio_interval(*_synthetic(rng, 5, 200), resamples=500) for _ in range(100)]
    coverage = np.mean([i.low <= 1.1 <= i.high for i in intervals])
    assert 0.85 <= coverage <= 1.0, coverage
    assert np.mean([i.high - i.low for i in intervals]) < 0.2  # informative, not merely wide
    assert all(i.low <= i.ratio <= i.high and (i.seeds, i.examples) == (5, 200) for i in intervals)


def test_interval_narrows_with_more_seeds():
    rng = np.random.default_rng(1)
    width = {}
    for seeds in (3, 12):
        intervals = [ratio_interval(*_synthetic(rng, seeds, 100), resamples=500) for _ in range(20)]
        width[seeds] = np.mean([i.high - i.low for i in intervals])
    assert width[12] < 0.7 * width[3], width


def test_bootstrap_resamples_both_seeds_and_examples():
    rng = np.random.default_rng(2)
    # Identical examples: only the seeds vary, so the interval comes from resampling seeds.
    seeds_only = ratio_interval(np.array([[1.0] * 50, [1.2] * 50, [1.4] * 50]), np.ones((3, 50)))
    assert seeds_only.ratio == pytest.approx(1.2)
    assert seeds_only.low < 1.1 and seeds_only.high > 1.3
    # One seed: the interval comes from resampling examples.
    yoto, fixed = _synthetic(rng, 1, 300, seed_sd=0.0)
    examples_only = ratio_interval(yoto, fixed)
    assert examples_only.high - examples_only.low > 0.02
    constant = ratio_interval(np.full((1, 30), 2.0), np.ones((1, 30)))
    assert (constant.ratio, constant.low, constant.high) == pytest.approx((2.0, 2.0, 2.0))
    # The same example is drawn for YOTO and the fixed model: shared difficulty cancels.
    difficulty = rng.lognormal(0.0, 1.0, (1, 200))
    paired = ratio_interval(1.05 * difficulty, difficulty)
    assert paired.low == pytest.approx(1.05) and paired.high == pytest.approx(1.05)


def test_point_estimate_is_the_mean_over_seeds_of_the_ratio_of_means():
    yoto = np.array([[2.0, 4.0], [3.0, 3.0]])
    fixed = np.array([[2.0, 2.0], [1.0, 2.0]])
    assert seed_mean_ratio(yoto, fixed) == pytest.approx((3.0 / 2.0 + 3.0 / 1.5) / 2)
    assert ratio_interval(yoto, fixed).ratio == pytest.approx(seed_mean_ratio(yoto, fixed))


def test_intervals_are_reproducible():
    yoto, fixed = _synthetic(np.random.default_rng(3), 4, 50)
    assert ratio_interval(yoto, fixed) == ratio_interval(yoto, fixed)
    assert ratio_interval(yoto, fixed, seed=1) != ratio_interval(yoto, fixed)
    ninety = ratio_interval(yoto, fixed, confidence=0.9)
    ninety_nine = ratio_interval(yoto, fixed, confidence=0.99)
    assert ninety_nine.low < ninety.low and ninety.high < ninety_nine.high


def test_bad_input_is_refused_naming_the_shapes():
    with pytest.raises(ValueError, match=r"equal shape \[seeds, examples\], got \(2, 3\) and \(2, 4\)"):
        ratio_interval(np.ones((2, 3)), np.ones((2, 4)))
    with pytest.raises(ValueError, match="confidence must be in"):
        ratio_interval(np.ones((2, 3)), np.ones((2, 3)), confidence=95)


@pytest.mark.parametrize("low, high, expected", [
    (0.90, 0.99, "better"),            # YOTO's loss lower, whole interval below 1
    (0.50, 1.02, "within tolerance"),  # at most 3 % worse (perhaps much better)
    (0.99, 1.01, "within tolerance"),
    (1.01, 1.03, "within tolerance"),  # surely worse, but within the margin
    (1.00, 1.00, "within tolerance"),
    (1.031, 1.10, "worse"),            # more than 3 % worse
    (1.02, 1.05, "inconclusive"),      # straddles the margin
    (0.90, 1.20, "inconclusive"),
    (float("nan"), float("nan"), "undefined"),
])
def test_verdict_reads_the_interval_against_the_tolerance(low, high, expected):
    assert verdict(low, high, tolerance=0.03) == expected
    assert expected in VERDICTS


def test_verdict_refuses_a_reversed_interval():
    with pytest.raises(ValueError, match=r"low <= high, got \[1.1, 1.0\]"):
        verdict(1.1, 1.0, 0.03)

"""Scores of predictive draws (bayescale.scores) against closed forms and known distributions.

Fast: no sampling, only numpy draws with fixed seeds. Every statistical check is run twice, on a
calibrated predictive (must pass) and on a wrong one (the same check must fail), so that a check
which cannot fail does not pass for nothing.
"""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from bayescale.scores import (
    LEVELS,
    abs_relative_error,
    aggregate,
    covered,
    crps,
    interval_score,
    log_predictive_density,
    pit,
    score_points,
)

M = 20_000          # predictive draws per point
N_POINTS = 2_000    # held-out points for the calibration checks


def crps_normal(mu, sd, y):
    """Gneiting & Raftery (2007), eq. 21: CRPS of N(mu, sd^2) at y."""
    z = (y - mu) / sd
    return sd * (z * (2 * stats.norm.cdf(z) - 1) + 2 * stats.norm.pdf(z) - 1 / np.sqrt(np.pi))


# ---- CRPS -------------------------------------------------------------------------------------

def test_crps_matches_the_normal_closed_form():
    rng = np.random.default_rng(0)
    mu = np.array([0.0, 1.0, -2.0, 3.0, 0.5])
    sd = np.array([1.0, 0.5, 2.0, 0.1, 1.0])
    y = np.array([0.0, 2.0, -1.0, 2.5, 4.0])   # at the centre, in the body and far in the tails
    draws = rng.normal(mu, sd, size=(M, len(mu)))
    exact = crps_normal(mu, sd, y)
    # Monte-Carlo sd of the estimator is < sd / sqrt(M) per point (E|X - y| has sd <= sd(X) + ...);
    # 4 of those is a generous bound that still fails for a predictive 20 % too wide (below)
    tol = 4 * sd * np.sqrt(2.0 / M)
    np.testing.assert_array_less(np.abs(crps(draws, y) - exact), tol)
    # a wrong predictive (20 % too wide) fails the same check at the centre points
    wide = rng.normal(mu, 1.2 * sd, size=(M, len(mu)))
    assert np.any(np.abs(crps(wide, y) - exact) > tol)


def test_crps_of_a_point_mass_is_the_absolute_error():
    draws = np.full((10, 3), 2.0)
    np.testing.assert_allclose(crps(draws, np.array([2.0, 3.0, 0.5])), [0.0, 1.0, 1.5])


def test_crps_is_proper_the_truth_scores_best():
    rng = np.random.default_rng(1)
    y = rng.normal(0, 1, size=N_POINTS)
    right = rng.normal(0, 1, size=(2000, N_POINTS))
    narrow = rng.normal(0, 0.3, size=(2000, N_POINTS))
    shifted = rng.normal(0.5, 1, size=(2000, N_POINTS))
    assert crps(right, y).mean() < crps(narrow, y).mean()
    assert crps(right, y).mean() < crps(shifted, y).mean()


# ---- PIT --------------------------------------------------------------------------------------

def _pit_case(scale: float, seed: int = 2) -> np.ndarray:
    """Truths from N(mu_j, 1); predictive draws from N(mu_j, scale^2)."""
    rng = np.random.default_rng(seed)
    mu = rng.normal(0, 3, size=N_POINTS)
    truth = rng.normal(mu, 1.0)
    draws = rng.normal(mu, scale, size=(1000, N_POINTS))
    return pit(draws, truth)


def test_pit_is_uniform_for_a_calibrated_predictive_and_u_shaped_for_an_overconfident_one():
    ok = _pit_case(1.0)
    assert ok.min() >= 0 and ok.max() <= 1
    assert stats.kstest(ok, "uniform").pvalue > 0.01
    # tenths of the unit interval hold ~10 % each
    counts = np.histogram(ok, bins=10, range=(0, 1))[0] / N_POINTS
    np.testing.assert_allclose(counts, 0.1, atol=0.025)

    over = _pit_case(0.3)   # predictive sd 0.3 where the truth has sd 1
    assert stats.kstest(over, "uniform").pvalue < 1e-6
    ends = np.mean((over < 0.1) | (over > 0.9))
    middle = np.mean((over > 0.4) & (over < 0.6))
    assert ends > 0.5 and middle < 0.1, (ends, middle)   # U-shaped: mass at both ends

    under = _pit_case(3.0)  # too wide: a hump in the middle, nearly nothing at the ends
    assert stats.kstest(under, "uniform").pvalue < 1e-6
    assert np.mean((under < 0.1) | (under > 0.9)) < 0.05


def test_pit_ties_get_the_mid_rank():
    draws = np.array([[1.0], [2.0], [2.0], [3.0]])
    assert pit(draws, np.array([2.0]))[0] == pytest.approx(0.25 + 0.5 * 0.5)
    assert pit(draws, np.array([0.0]))[0] == 0.0 and pit(draws, np.array([9.0]))[0] == 1.0


# ---- coverage ---------------------------------------------------------------------------------

@pytest.mark.parametrize("level", LEVELS)
def test_coverage_is_nominal_when_calibrated_and_far_below_when_too_narrow(level):
    rng = np.random.default_rng(3)
    mu = rng.normal(0, 3, size=N_POINTS)
    truth = rng.normal(mu, 1.0)
    tol = 4 * np.sqrt(level * (1 - level) / N_POINTS)   # binomial sd of the empirical coverage
    right = covered(rng.normal(mu, 1.0, size=(1000, N_POINTS)), truth, level).mean()
    assert abs(right - level) < tol, (level, right)
    narrow = covered(rng.normal(mu, 0.3, size=(1000, N_POINTS)), truth, level).mean()
    expected_narrow = 2 * stats.norm.cdf(0.3 * stats.norm.ppf((1 + level) / 2)) - 1
    assert abs(narrow - level) > 5 * tol and narrow < level
    assert narrow == pytest.approx(expected_narrow, abs=tol)


# ---- interval score, ARE ------------------------------------------------------------------------

def test_interval_score_hand_example():
    # draws 0..100: the linear-interpolated 5 % and 95 % quantiles are exactly 5 and 95
    draws = np.repeat(np.arange(101.0)[:, None], 4, axis=1)
    y = np.array([50.0, 100.0, -5.0, 95.0])
    # width 90; miss above by 5 -> + (2 / 0.1) * 5 = 100; miss below by 10 -> + 200; on the edge -> 0
    np.testing.assert_allclose(interval_score(draws, y, 0.9), [90.0, 190.0, 290.0, 90.0])
    # 50 % interval: quantiles 25 and 75, penalty 2 / 0.5 = 4 per unit outside
    np.testing.assert_allclose(interval_score(draws[:, :2], np.array([50.0, 80.0]), 0.5), [50.0, 70.0])


def test_abs_relative_error_of_the_median():
    draws = np.array([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0]])   # medians 2 and 20
    np.testing.assert_allclose(abs_relative_error(draws, np.array([2.5, 16.0])), [0.2, 0.25])


# ---- log predictive density -------------------------------------------------------------------

def test_log_predictive_density_matches_the_log_normal_density():
    rng = np.random.default_rng(4)
    mu = np.log(np.array([2.0, 3.0, 1.8, 10.0]))
    s = np.array([0.05, 0.1, 0.02, 0.3])
    truth = np.exp(mu + s * np.array([0.0, 1.0, 1.5, 0.5]))    # inside the body of each predictive
    draws = np.exp(rng.normal(mu, s, size=(M, len(mu))))
    exact = stats.lognorm.logpdf(truth, s=s, scale=np.exp(mu))
    lpd = log_predictive_density(draws, truth)
    # Silverman's h is ~0.12 s at M = 20000: smoothing bias <= 0.02 in log density, Monte-Carlo sd
    # sqrt(R(K) / (M h f)) <= 0.03 up to 1.5 sd from the centre; bound = bias + 3.5 sd
    tol = 0.12
    np.testing.assert_allclose(lpd, exact, atol=tol)
    # the Jacobian matters: the density of log(y) alone is off by log(y) (~0.6 to 2.4 here)
    log_scale_only = stats.norm.logpdf(np.log(truth), mu, s)
    assert np.all(np.abs(lpd - log_scale_only) > 0.5)
    # a wrong predictive (centred 2 sd below the right one) fails the same tolerance
    wrong = np.exp(rng.normal(mu - 2 * s, s, size=(M, len(mu))))
    assert np.all(np.abs(log_predictive_density(wrong, truth) - exact) > tol)
    assert np.all(log_predictive_density(wrong, truth) < lpd)


# ---- aggregate: the JSON keys ------------------------------------------------------------------

def test_aggregate_has_exactly_the_json_keys():
    rng = np.random.default_rng(5)
    draws = np.exp(rng.normal(0.6, 0.05, size=(500, 12)))
    truth = np.exp(rng.normal(0.6, 0.05, size=12))
    points = score_points(draws, truth)
    assert set(points) == {"covered_0.5", "covered_0.8", "covered_0.9", "covered_0.95", "pit", "crps",
                           "interval_score_90", "are", "lpd"}
    assert all(np.shape(v) == (12,) for v in points.values())
    summary = aggregate(points)
    assert set(summary) == {"coverage", "median_are", "crps", "interval_score_90", "elpd"}
    assert list(summary["coverage"]) == ["0.5", "0.8", "0.9", "0.95"]
    assert all(0 <= v <= 1 for v in summary["coverage"].values())
    assert all(isinstance(v, float) for v in summary["coverage"].values())
    assert summary["crps"] == pytest.approx(points["crps"].mean())
    assert summary["elpd"] == pytest.approx(points["lpd"].sum())       # a sum, not a mean
    assert summary["median_are"] == pytest.approx(np.median(points["are"]))
    assert summary["interval_score_90"] == pytest.approx(points["interval_score_90"].mean())

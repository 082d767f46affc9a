"""Scores of predictive draws against held-out truth: coverage, PIT, CRPS, interval score, ARE, LPD.

Every function takes ``draws`` of shape (samples, points) and ``truth`` of shape (points,).
"""
from __future__ import annotations

import numpy as np
from scipy.special import logsumexp

LEVELS = (0.5, 0.8, 0.9, 0.95)


def covered(draws: np.ndarray, truth: np.ndarray, level: float) -> np.ndarray:
    lo, hi = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2], axis=0)
    return (lo <= truth) & (truth <= hi)


def pit(draws: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Probability integral transform: the predictive CDF at the truth (mid-rank for ties)."""
    below = (draws < truth).mean(axis=0)
    equal = (draws == truth).mean(axis=0)
    return below + 0.5 * equal


def crps(draws: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """CRPS = E|X - y| - E|X - X'|/2, the second term from sorted draws in O(m log m)."""
    m = draws.shape[0]
    term1 = np.abs(draws - truth).mean(axis=0)
    x = np.sort(draws, axis=0)
    weights = (2 * np.arange(1, m + 1) - m - 1)[:, None]
    term2 = (weights * x).sum(axis=0) / m**2
    return term1 - term2


def interval_score(draws: np.ndarray, truth: np.ndarray, level: float = 0.9) -> np.ndarray:
    """Gneiting & Raftery's interval score of the central interval (lower is better)."""
    a = 1 - level
    lo, hi = np.quantile(draws, [a / 2, 1 - a / 2], axis=0)
    return (hi - lo) + (2 / a) * (lo - truth) * (truth < lo) + (2 / a) * (truth - hi) * (truth > hi)


def abs_relative_error(draws: np.ndarray, truth: np.ndarray) -> np.ndarray:
    return np.abs(np.median(draws, axis=0) - truth) / np.abs(truth)


def log_predictive_density(draws: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Log density of the truth under a Gaussian kernel estimate on the log scale of the draws
    (Silverman's bandwidth), with the Jacobian back to the response scale. Method-agnostic, so
    a bootstrap and a posterior are scored the same way."""
    logd, logt = np.log(draws), np.log(truth)
    m = logd.shape[0]
    sd = logd.std(axis=0, ddof=1)
    iqr = np.subtract(*np.quantile(logd, [0.75, 0.25], axis=0))
    h = 0.9 * np.minimum(sd, iqr / 1.34) * m ** (-0.2)
    h = np.maximum(h, 1e-12)
    z = (logt - logd) / h
    log_kernel = -0.5 * z**2 - np.log(h) - 0.5 * np.log(2 * np.pi)
    return logsumexp(log_kernel, axis=0) - np.log(m) - logt


def score_points(draws: np.ndarray, truth: np.ndarray, levels=LEVELS) -> dict[str, np.ndarray]:
    """Per-point scores."""
    draws = np.asarray(draws, dtype=np.float64)
    truth = np.asarray(truth, dtype=np.float64)
    out = {f"covered_{level:g}": covered(draws, truth, level) for level in levels}
    out.update(pit=pit(draws, truth), crps=crps(draws, truth),
               interval_score_90=interval_score(draws, truth, 0.9),
               are=abs_relative_error(draws, truth), lpd=log_predictive_density(draws, truth))
    return out


def aggregate(points: dict[str, np.ndarray], levels=LEVELS) -> dict:
    """The summary keys of the calibration JSON."""
    return {
        "coverage": {f"{level:g}": float(np.mean(points[f"covered_{level:g}"])) for level in levels},
        "median_are": float(np.median(points["are"])),
        "crps": float(np.mean(points["crps"])),
        "interval_score_90": float(np.mean(points["interval_score_90"])),
        "elpd": float(np.sum(points["lpd"])),
    }

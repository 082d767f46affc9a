"""The split of a new run's squared 90 % width between parameters, discrepancy and noise."""
from __future__ import annotations

import numpy as np
import pytest

from bayescale.predict import width_shares

N = 400_000


def stages_of(curve, walk, noise):
    """Stages as predict's draws build them, on a scale where the parts add."""
    return {"parameters": curve[:, None], "discrepancy": (curve + walk)[:, None],
            "discrepancy_alone": (np.median(curve) + walk)[:, None]}, (curve + walk + noise)[:, None]


def test_independent_gaussian_parts_get_their_variance_shares():
    rng = np.random.default_rng(0)
    stages, draws = stages_of(rng.normal(0, 1, N), rng.normal(0, np.sqrt(3), N), rng.normal(0, 2, N))
    shares = {k: float(v[0]) for k, v in width_shares(stages, draws).items()}
    assert shares == pytest.approx({"parameters": 1 / 8, "discrepancy": 3 / 8, "noise": 4 / 8}, abs=0.01)


def test_a_walk_that_trades_off_with_the_curve_shares_the_width():
    # the curve and the walk each spread 1, but mostly cancel (correlation -0.9): their sum spreads
    # sqrt(0.2); parameters and discrepancy take half each, not all to whichever comes first
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(2, N))
    curve, walk = a, -0.9 * a + np.sqrt(1 - 0.81) * b
    stages, draws = stages_of(curve, walk, rng.normal(0, 0.1, N))
    shares = {k: float(v[0]) for k, v in width_shares(stages, draws).items()}
    total = 0.2 + 0.01
    assert shares == pytest.approx({"parameters": 0.1 / total, "discrepancy": 0.1 / total,
                                    "noise": 0.01 / total}, abs=0.02)
    # control: in a fixed order (parameters first) the curve alone already exceeds the whole width
    first = np.quantile(curve, 0.95) - np.quantile(curve, 0.05)
    whole = np.quantile(draws, 0.95) - np.quantile(draws, 0.05)
    assert first > whole


def test_no_walk_over_the_runs_gives_the_discrepancy_nothing():
    rng = np.random.default_rng(2)
    curve = rng.normal(size=N)
    stages, draws = stages_of(curve, np.zeros(N), rng.normal(0, 1, N))
    shares = width_shares(stages, draws)
    assert shares["discrepancy"][0] == 0.0
    assert shares["parameters"][0] == pytest.approx(0.5, abs=0.01)
    del stages["discrepancy_alone"]   # a fit without a discrepancy term
    assert width_shares(stages, draws)["discrepancy"][0] == 0.0

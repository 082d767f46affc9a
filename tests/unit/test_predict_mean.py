"""A new run's predicted mean under Student-t scatter on log loss, which has no finite mean: the
``mean`` column is the mean of the run's expected value, and one extreme new-run draw cannot rule it."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from fit_helpers import fit_quietly, grid

import bayescale as bs
from bayescale.models.observations.student_t import LogStudentT
from bayescale.simulate import simulate

TRUTH = {"E": 1.7, "log_A0": -1.0, "alpha": 0.3, "sigma": 0.01, "nu": 30.0}


@pytest.fixture(scope="module")
def fit():
    design = pd.DataFrame({"params": np.geomspace(1e7, 1e10, 14)})
    df, _ = simulate("power", design, TRUTH, seed=2)
    return fit_quietly(df, "power")


def _with_one_extreme_draw(fit, monkeypatch):
    """The fit's new-run draws with one of them replaced by 1e15 (what a draw far in the Student-t
    tail gives on the response scale)."""
    original = type(fit).new_observations

    def extreme(self, rng, mu, values, aux):
        out = np.array(original(self, rng, mu, values, aux), dtype=np.float64)
        out[0, 0] = 1e15
        return out

    monkeypatch.setattr(type(fit), "new_observations", extreme)


@pytest.mark.parametrize("has_mean", [False, True])
def test_one_extreme_draw_does_not_rule_the_mean(fit, monkeypatch, has_mean):
    points = pd.DataFrame({"params": [3e8, 1e11]})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bs.BayescaleWarning)
        clean = fit.predict(points, seed=0)
        curve = fit.predict(points, seed=0, kind="mean")
        _with_one_extreme_draw(fit, monkeypatch)
        # control: an observation model that claims a finite mean takes the draws' sample mean
        monkeypatch.setattr(LogStudentT, "new_value_has_mean", has_mean)
        hit = fit.predict(points, seed=0)
    if has_mean:
        assert hit["mean"].iloc[0] > 1e10
        return
    assert hit["mean"].tolist() == clean["mean"].tolist()
    np.testing.assert_allclose(hit["mean"], curve["mean"], rtol=1e-12)   # the expected value's mean
    assert hit["median"].iloc[0] == pytest.approx(clean["median"].iloc[0], rel=1e-3)
    assert any("no finite mean" in n for n in hit.attrs["notes"])
    # the width shares come from interval widths, which one draw barely moves; its variance is
    # ruled by that draw (the control: variance shares would give the noise everything)
    np.testing.assert_allclose(hit["share_noise"], clean["share_noise"], atol=0.02)
    _, draws = fit.predict(points, seed=0, return_draws=True)
    stages_par = curve["upper_90"] - curve["lower_90"]
    assert np.var(draws.values[:, 0]) > 1e20 * stages_par.iloc[0] ** 2     # the variance: all noise


def test_a_stacked_prediction_has_a_finite_mean_too(monkeypatch):
    design = grid(k=5, m=4)
    df, _ = simulate("chinchilla", design, {"E": 1.7, "log_A0": -0.3, "alpha": 0.34, "log_B0": -0.4,
                                             "beta": 0.28, "sigma": 0.01, "nu": 30.0}, seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bs.BayescaleWarning)
        stacked = bs.fit(df, ["chinchilla", "kaplan-nd"], seed=0, chains=2, warmup=300, draws=300,
                         progress=False, discrepancy="none")
        points = pd.DataFrame({"params": [3e10], "tokens": [6e11]})
        clean = stacked.predict(points, seed=0)
        for f in stacked.fits.values():
            _with_one_extreme_draw(f, monkeypatch)
        hit = stacked.predict(points, seed=0)
    assert hit["mean"].iloc[0] == pytest.approx(clean["mean"].iloc[0], rel=1e-12)
    assert hit["mean"].iloc[0] < 10 * hit["median"].iloc[0]

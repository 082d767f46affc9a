"""The classical baseline (bayescale.baselines.huber_bootstrap): Huber + L-BFGS grid + bootstrap.

1. Recovery: on data simulated from chinchilla with known parameters (centred scale, the truths of
   tests/statistical/test_recovery.py: Hoffmann et al.'s fit at N0 ~ 1e8, D0 ~ 1e10) and 1 % log-loss noise,
   the point estimate lies within TOL of the truth, and the bootstrap refits give one value per
   resample whose 95 % interval brackets the estimate and the truth. Offline (seed 1 below) the
   errors were E 0.017, log_A0 0.05, alpha 0.014, log_B0 0.054, beta 0.015, about a third of TOL.
2. Epoch AI's replication ("Chinchilla Scaling: A replication attempt", 2024): on their 240 points
   the point estimate reproduces their published A, B, E, alpha, beta within REL_TOL (A, B derived
   from the centred estimate with law.derived). Offline: A -0.8 %, B +2.8 %, E, alpha, beta < 0.5 %.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import bayescale
from bayescale.baselines import BootstrapFit, huber_bootstrap
from bayescale.errors import BayescaleError, BayescaleWarning
from bayescale.simulate import simulate
from fit_helpers import grid

TRUTH = {"E": 1.69, "log_A0": -0.26, "alpha": 0.34, "log_B0": -0.43, "beta": 0.28}
NOISE = {"sigma": 0.01, "nu": 30.0}
TOL = {"E": 0.06, "log_A0": 0.15, "alpha": 0.04, "log_B0": 0.15, "beta": 0.04}
N_BOOT = 30

EPOCH = {"A": 482.01, "B": 2085.43, "E": 1.8169, "alpha": 0.3478, "beta": 0.3658}
REL_TOL = 0.03


@pytest.fixture(scope="module")
def simulated():
    df, _ = simulate(bayescale.get_law("chinchilla"), grid(), {**TRUTH, **NOISE}, seed=1)
    return df


@pytest.fixture(scope="module")
def boot(simulated) -> BootstrapFit:
    return huber_bootstrap(simulated, "chinchilla", n_boot=N_BOOT, seed=0)


def test_point_estimate_recovers_the_truth(boot):
    err = {k: abs(boot.estimate[k] - v) for k, v in TRUTH.items()}
    assert set(boot.estimate) == set(TRUTH)
    assert all(err[k] < TOL[k] for k in TRUTH), err
    # the residual sd at the estimate is the simulated noise (1 %), not a failed fit
    assert 0.005 < boot.residual_sd < 0.02, boot.residual_sd


def test_the_recovery_check_can_fail(simulated):
    # the same tolerance against data from a different law (beta 0.5 instead of 0.28) must fail
    other, _ = simulate(bayescale.get_law("chinchilla"), grid(), {**TRUTH, "beta": 0.5, **NOISE}, seed=1)
    wrong = huber_bootstrap(other, "chinchilla", n_boot=2, seed=0)
    assert abs(wrong.estimate["beta"] - TRUTH["beta"]) > TOL["beta"]


def test_bootstrap_intervals_have_the_right_shape(boot):
    assert boot.names == list(TRUTH)
    assert boot.stats["n_boot"] == N_BOOT and boot.stats["n_starts"] <= boot.stats["n_grid"]
    for k, v in TRUTH.items():
        d = boot.draws[k]
        assert d.shape == (N_BOOT,) and np.all(np.isfinite(d)), k
        assert np.std(d) > 0, f"{k}: every bootstrap refit returned the start point"
        lo, hi = np.quantile(d, [0.025, 0.975])
        assert lo < boot.estimate[k] < hi, (k, lo, boot.estimate[k], hi)
        assert lo < v < hi, (k, lo, v, hi)
    assert boot.draws["E"].min() > 0 and boot.draws["alpha"].min() > 0   # the prior's support holds
    assert boot.residuals.shape == (30,)


def test_predict_mirrors_fit_predict(boot, simulated):
    new = pd.DataFrame({"params": [1e9, 1e10], "tokens": [1e11, 2e11]})
    out, draws = boot.predict(new, levels=(0.5, 0.9), kind="mean", return_draws=True)
    assert draws.shape == (N_BOOT, 2)
    for col in ("mean", "median", "lower_50", "upper_50", "lower_90", "upper_90"):
        assert col in out, col
    assert np.all(out["lower_90"] <= out["lower_50"]) and np.all(out["lower_50"] <= out["median"])
    assert np.all(out["median"] <= out["upper_50"]) and np.all(out["upper_50"] <= out["upper_90"])
    assert out.attrs["kind"] == "mean"
    law = bayescale.get_law("chinchilla")
    x = {k: np.log(new[k].to_numpy()) - boot.logref[k] for k in law.inputs}
    np.testing.assert_allclose(out["median"], np.median(np.asarray(law.mean(x, {
        k: v[:, None] for k, v in boot.draws.items()})), axis=0), rtol=1e-5)
    obs = boot.predict(new, levels=(0.9,), kind="observation", seed=0)
    assert np.all(obs["upper_90"] - obs["lower_90"] > out["upper_90"] - out["lower_90"])
    with pytest.raises(BayescaleError, match="kind must be one of"):
        boot.predict(new, kind="noise")


def test_epoch_chinchilla_point_estimate():
    from bayescale import datasets
    from bayescale.datasets.paths import find_home

    home = find_home()
    if home is None or not (home / "chinchilla_epoch").is_dir():
        pytest.skip("chinchilla_epoch data folder not found (set BAYESCALE_DATA or run "
                    "`bayescale datasets fetch chinchilla_epoch`)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BayescaleWarning)   # the loader's notes on its documented fixes
        df = datasets.load("chinchilla_epoch")
    assert len(df) == 240
    fit = huber_bootstrap(df, "chinchilla", n_boot=N_BOOT, seed=0)
    est = {**fit.estimate, **{k: float(v) for k, v in fit.law.derived(fit.estimate, fit.logref).items()}}
    rel = {k: est[k] / v - 1 for k, v in EPOCH.items()}
    assert all(abs(r) < REL_TOL for r in rel.values()), rel
    # and not Hoffmann et al.'s published fit, which Epoch showed the data do not support
    assert abs(est["E"] / 1.69 - 1) > REL_TOL and abs(est["B"] / 410.7 - 1) > REL_TOL


def test_residual_sd_is_undefined_without_spare_runs():
    from bayescale.baselines import _residual_sd

    with warnings.catch_warnings():
        warnings.simplefilter("error")            # numpy's ddof warning would fail here
        assert np.isnan(_residual_sd(np.array([0.1, -0.2, 0.05]), 4))
        five = np.array([0.1, -0.1, 0.1, -0.1, 0.1])
        assert _residual_sd(five, 4) == pytest.approx(np.std(five, ddof=4))

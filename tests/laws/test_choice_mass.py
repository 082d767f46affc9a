"""The choice-mass law: correct-choice masses and the accuracy they imply.

* the accuracy derivation against a brute-force simulation of questions (correct mass from the
  Beta, incorrect masses from a Dirichlet, answer = argmax) and the exact two-choice case;
* parameter recovery (2 chains x 300 + 300) pooled over two tasks, z < 3.5; the control fits
  masses halved (e.g. masses not normalised over the choices, taken as if they were) and must fail;
* SBC (slow, ``--run-slow``) and a failing control that fixes the question scatter phi.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.special import betainc

import bayescale
from bayescale import BayescaleError, get_law
from bayescale.models.choice_mass import accuracy_from_mass
from bayescale.predict import choice_accuracy
from bayescale.simulate import simulate
from fit_helpers import Z_MAX, fit_quietly

TRUTH = {"t1": {"a": -1.0, "log_b": -1.0}, "t2": {"a": -2.5, "log_b": -0.6}}
PHI = 8.0


def brute_force_accuracy(m, phi, choices, kappa, n=200_000, seed=1):
    rng = np.random.default_rng(seed)
    pc = rng.beta(m * phi, (1 - m) * phi, n)
    wrong = (1 - pc)[:, None] * rng.dirichlet(np.full(choices - 1, kappa), n)
    return float(np.mean(pc > wrong.max(axis=1)))


@pytest.mark.parametrize("choices,kappa", [(3, 1.0), (4, 0.5), (4, 1.0), (5, 3.0)])
def test_accuracy_matches_brute_force(choices, kappa):
    for m, phi in ((0.2, 5.0), (0.4, 20.0), (0.7, 3.0)):
        got = float(accuracy_from_mass(m, phi, choices, kappa))
        assert got == pytest.approx(brute_force_accuracy(m, phi, choices, kappa), abs=6e-3), (m, phi)
    # a wrong kappa gives a detectably different accuracy (the check can fail)
    assert abs(float(accuracy_from_mass(0.4, 20.0, 4, 10.0)) - brute_force_accuracy(0.4, 20.0, 4, 0.5)) > 0.05


def test_two_choices_is_exact():
    m, phi = np.array([0.3, 0.5, 0.8]), np.array([4.0, 10.0, 2.0])
    want = 1 - betainc(m * phi, (1 - m) * phi, 0.5)  # P(p_c > 1/2)
    np.testing.assert_allclose(accuracy_from_mass(m, phi, 2), want, atol=1e-3)


def simulate_tasks(seed=1):
    law = get_law("choice-mass")
    design = pd.DataFrame({"compute": np.repeat(np.geomspace(1e18, 1e22, 6), 30), "question": np.tile(np.arange(30), 6)})
    parts = []
    for task, p in TRUTH.items():
        df, _ = simulate(law, design, {**p, "phi": PHI}, seed=seed + len(parts))
        parts.append(df.assign(task=task))
    return pd.concat(parts, ignore_index=True)


def fit(df, **kw):
    return fit_quietly(df, "choice-mass", seed=1, **kw)


def task_z(f):
    post = f.posterior
    z = {}
    for name in ("a", "log_b"):
        v = post[f"{name}_by_task"]
        for task, p in TRUTH.items():
            d = v.sel(task=task).values.ravel()
            z[f"{name}[{task}]"] = abs(d.mean() - p[name]) / d.std()
    return z


def test_recovery_pooled_by_task_and_control():
    df = simulate_tasks()
    f = fit(df)
    z = task_z(f)
    assert max(z.values()) < Z_MAX, (z, f.diagnostics)
    assert f.diagnostics["divergences"] <= 6, f.diagnostics
    # accuracy predictions come from the mass model and carry its uncertainty: the accuracy implied
    # by the true parameters lies within Z_MAX posterior sd of the predicted mean (as for parameters)
    q = pd.DataFrame({"compute": [1e19, 1e20, 1e22], "task": "t1", "choices": 4})
    acc, draws = choice_accuracy(f, q, return_draws=True)
    draws = np.asarray(draws)
    assert np.all(np.diff(acc["mean"]) > 0)
    x = np.log(q.compute.to_numpy()) - f.spec.logref["compute"]
    want = accuracy_from_mass(1 / (1 + np.exp(1.0 - np.exp(-1.0) * x)), PHI, 4)
    z_acc = np.abs(draws.mean(axis=0) - want) / draws.std(axis=0)
    assert np.all(z_acc < Z_MAX), (acc, want, z_acc)
    # control: masses halved (not normalised over the choices) are not recovered
    one = df[df.task == "t1"]
    control = fit(one.assign(p_choice_correct=one.p_choice_correct / 2)).summary()
    zc = {k: abs(control.loc[k, "mean"] - v) / control.loc[k, "sd"] for k, v in TRUTH["t1"].items()}
    assert max(zc.values()) > 2 * Z_MAX, zc


def test_bad_inputs_are_reported():
    df = pd.DataFrame({"compute": [1e18, 1e19, 1e20], "p_choice_correct": [0.2, 1.2, 0.3]})
    with pytest.raises(BayescaleError, match="must lie in \\[0, 1\\].*row 1"):
        bayescale.fit(df, "choice-mass", chains=1, warmup=5, draws=5, progress=False)
    with pytest.raises(BayescaleError, match="integer >= 2"):
        accuracy_from_mass(0.3, 5.0, 1)


# masses within about (1e-4, 1 - 1e-4): the default priors also draw tables whose float32 Beta draws
# round to 0 or 1, which are clipped and so break the likelihood (SBC then fails on a and log_b)
SBC_PRIORS = {"a": "Normal(-1.5, 1.0)", "log_b": "Normal(-1.5, 0.5)", "phi": "LogNormal(2.3, 0.5)"}


@pytest.mark.slow
def test_sbc_choice_mass_and_control():
    from sbc_helpers import assert_calibrated, assert_control_fails, sbc_in_fresh_process
    from test_downstream_laws import SBC_SETTINGS

    result = sbc_in_fresh_process("choice-mass", n_sims=100, seed=0, priors=SBC_PRIORS, **SBC_SETTINGS)
    assert_calibrated(result, max_failed_share=0.05)
    # control: phi fixed far too high (questions taken as nearly identical) must fail
    assert_control_fails(sbc_in_fresh_process("choice-mass", n_sims=40, seed=0, priors=SBC_PRIORS,
                                              fit_priors={**SBC_PRIORS, "phi": "Delta(1000.0)"},
                                              **SBC_SETTINGS))

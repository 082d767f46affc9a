"""The critical-batch law B_crit = B*·L^(-1/alpha_B): closed form, recovery, SBC, the Step Law proxy.

Recovery: 12 losses from 2 to 4 nats, truth Kaplan et al.'s alpha_B = 0.21 and B_crit = 2e6 tokens at
the reference loss, 5 % noise on log B_crit; |mean - truth| / sd < 3.5 for log_B0, alpha_B and the
derived B*. The control fixes alpha_B at 0.5 (a much flatter law): the derived B* must then miss.
SBC (40 simulations with a misspecified control, and 200) runs with --run-slow.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import bayescale
from bayescale.sbc import sbc
from sbc_helpers import assert_calibrated, assert_control_fails
from bayescale.datasets.paths import find_home
from bayescale.models import get_law
from bayescale.models.critical_batch import step_law_critical_batch
from bayescale.simulate import simulate
from fit_helpers import Z_MAX, fit_quietly, z_scores

TRUTH = {"log_B0": np.log(2e6), "alpha_B": 0.21}
NOISE = {"sigma": 0.05, "nu": 30.0}


def test_closed_form_and_derived_b_star():
    law = get_law("critical-batch")
    design = law.sbc_design()
    df, _ = simulate(law, design, {**TRUTH, **NOISE}, noise=False)
    ref = df.attrs["logref"]
    b_star = law.derived({k: np.asarray(v) for k, v in TRUTH.items()}, ref)["B_star"]
    assert np.allclose(df["critical_batch"], b_star * design["loss"] ** (-1 / 0.21), rtol=1e-5)


def _fit(df, **kw):
    return fit_quietly(df, "critical-batch", seed=0, **kw)


def test_recovery_and_wrong_exponent_control():
    law = get_law("critical-batch")
    df, _ = simulate(law, law.sbc_design(), {**TRUTH, **NOISE}, seed=1)
    b_star = law.derived({k: np.asarray(v) for k, v in TRUTH.items()}, df.attrs["logref"])["B_star"]
    fit = _fit(df)
    z = z_scores(fit, TRUTH)
    z["log_B_star"] = abs(np.mean(np.log(fit.posterior["B_star"].values)) - np.log(b_star)) / np.std(
        np.log(fit.posterior["B_star"].values))
    assert max(z.values()) < Z_MAX, z
    wrong = _fit(df, priors={"alpha_B": "Delta(0.5)"})
    log_bw = np.log(wrong.posterior["B_star"].values)
    assert abs(log_bw.mean() - np.log(b_star)) / log_bw.std() > Z_MAX


@pytest.mark.slow
def test_small_sbc_passes_and_its_control_fails():
    assert_calibrated(sbc("critical-batch", n_sims=40, seed=0, chains=1, warmup=150, draws=200, thin=2,
                          bins=8), max_failed_share=0)
    assert_control_fails(sbc("critical-batch", n_sims=40, seed=0, chains=1, warmup=150, draws=200, thin=2,
                             bins=8, fit_priors={"sigma": "Delta(0.002)"}))


@pytest.mark.slow
def test_sbc_critical_batch_full():
    result = sbc("critical-batch", n_sims=200, seed=1, chains=1, warmup=200, draws=300, thin=3, bins=20)
    assert result.n_failed <= 4 and result.passes(0.01), result.summary()


def test_step_law_proxy_on_a_synthetic_grid():
    # loss flat up to batch 256, then rising 2 % per doubling: the 1 % proxy is 256 (or 362 between)
    rows = [{"params": 1e8, "tokens": 1e10, "lr": lr, "batch_size": b,
             "loss": 2.0 * (1 + 0.02 * max(0.0, np.log2(b / 256))) + 0.01 * abs(np.log2(lr / 1e-3))}
            for b in (64, 128, 256, 512, 1024) for lr in (5e-4, 1e-3, 2e-3)]
    out = step_law_critical_batch(pd.DataFrame(rows))
    assert out.loc[0, "critical_batch"] == 256 and out.loc[0, "loss"] == pytest.approx(2.0)


HOME = find_home()


@pytest.mark.skipif(HOME is None or not (HOME / "step_law").is_dir(),
                    reason="Step Law data not found (set BAYESCALE_DATA)")
def test_step_law_proxy_per_cell():
    from bayescale import datasets

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bayescale.BayescaleWarning)
        out = step_law_critical_batch(datasets.load("step_law").assign(
            batch_size=lambda d: d["batch_tokens"]))
    assert len(out) == 17 and (out["critical_batch"] > 0).all()
    # larger data budgets tolerate larger batches (Spearman > 0 between tokens and the proxy)
    assert out[["tokens", "critical_batch"]].corr("spearman").iloc[0, 1] > 0.5

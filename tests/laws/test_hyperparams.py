"""The Step-Law hyperparameter law: the bowl, eta* / B* as power laws, recovery, SBC, Step Law data.

Recovery: the default 2 N x 2 D design, each cell a 5 x 4 (lr, batch tokens) grid around Step Law's
published optimum (80 runs); truth near our Step Law fit (exponents of eta*: -0.7 in N, 0.3 in D;
of B*: 0.57 in D; curvatures 0.02 / 0.018 nats, rho -0.45), 0.3 % log-loss noise. Every law parameter
must satisfy |mean - truth| / sd < 3.5. The control fits the same data with eta* forced not to depend
on D (eta_D fixed at 0): on this balanced design the other parameters barely move, but the data must
reject that law: its leave-one-out ELPD must fall short of the correct law's by more than 4 SE.
"""
from __future__ import annotations

import warnings
from types import SimpleNamespace

import arviz as az
import numpy as np
import pytest

import bayescale
from bayescale.sbc import sbc
from sbc_helpers import assert_calibrated, assert_control_fails
from bayescale.datasets.paths import find_home
from bayescale.errors import BayescaleError
from bayescale.models import get_law
from bayescale.planning import optimal_hyperparams
from bayescale.simulate import simulate
from fit_helpers import Z_MAX, fit_quietly, z_scores

TRUTH = {"log_L0": 0.86, "a_N": 0.07, "a_D": 0.04, "log_eta0": -0.2, "eta_N": -0.7, "eta_D": 0.3,
         "log_B0": 0.1, "B_D": 0.57, "k_lr": 0.02, "k_bs": 0.018, "rho": -0.45}
NOISE = {"sigma": 0.003, "nu": 30.0}


def test_bowl_minimum_is_at_eta_star_and_b_star():
    law = get_law("hyperparams")
    x = {"params": np.array([0.3]), "tokens": np.array([-0.5])}
    p = {k: np.asarray(v) for k, v in TRUTH.items()}
    u0 = TRUTH["log_eta0"] + TRUTH["eta_N"] * 0.3 + TRUTH["eta_D"] * -0.5
    v0 = TRUTH["log_B0"] + TRUTH["B_D"] * -0.5
    grid = np.linspace(-1, 1, 201)
    uu, vv = np.meshgrid(u0 + grid, v0 + grid, indexing="ij")
    loss = law.mean({**{k: np.full(uu.size, v[0]) for k, v in x.items()}, "lr": uu.ravel(),
                     "batch_size": vv.ravel()}, p, xp=np)
    i = int(np.argmin(loss))
    assert uu.ravel()[i] == pytest.approx(u0, abs=1e-9) and vv.ravel()[i] == pytest.approx(v0, abs=1e-9)
    assert loss[i] == pytest.approx(np.exp(0.86 - 0.07 * 0.3 + 0.04 * 0.5))


def _fit(df, **kw):
    return fit_quietly(df, "hyperparams", seed=2, **kw)


def test_recovery_optimal_hyperparams_and_wrong_law_control():
    law = get_law("hyperparams")
    df, _ = simulate(law, law.sbc_design(), {**TRUTH, **NOISE}, seed=2)
    fit = _fit(df)
    s = fit.summary()
    z = z_scores(fit, TRUTH)
    assert max(z.values()) < Z_MAX, z
    # eta*, B* at a new (N, D) from the fit agree with the truth's power laws
    ref = fit.spec.logref
    n, d = 3e9, 2e11
    xn, xd = np.log(n) - ref["params"], np.log(d) - ref["tokens"]
    eta = np.exp(ref["lr"] + TRUTH["log_eta0"] + TRUTH["eta_N"] * xn + TRUTH["eta_D"] * xd)
    bs = np.exp(ref["batch_size"] + TRUTH["log_B0"] + TRUTH["B_D"] * xd)
    out = optimal_hyperparams(fit, n, d, levels=(0.99,))
    assert out.loc[0, "lr_lower_99"] < eta < out.loc[0, "lr_upper_99"], (out.T, eta)
    assert out.loc[0, "batch_size_lower_99"] < bs < out.loc[0, "batch_size_upper_99"], (out.T, bs)
    assert np.allclose(fit.summary().loc["c_eta", "mean"] * n ** s.loc["eta_N", "mean"] * d ** s.loc["eta_D", "mean"],
                       out.loc[0, "lr_median"], rtol=0.2)
    with pytest.raises(BayescaleError, match="positive finite"):
        optimal_hyperparams(fit, -1.0, 1e10)
    wrong = _fit(df, priors={"eta_D": "Delta(0.0)"})
    cmp = az.compare({"law": fit.idata, "eta_fixed_in_D": wrong.idata})
    assert cmp.index[0] == "law"
    assert cmp.loc["eta_fixed_in_D", "elpd_diff"] > 4 * cmp.loc["eta_fixed_in_D", "dse"], cmp


def test_optimal_hyperparams_rejects_other_laws():
    with pytest.raises(BayescaleError, match="needs a 'hyperparams' fit, got law 'power'"):
        optimal_hyperparams(SimpleNamespace(law=get_law("power")), 1e9, 1e10)


@pytest.mark.slow
def test_sbc_hyperparams():
    assert_calibrated(sbc("hyperparams", n_sims=200, seed=0, chains=1, warmup=200, draws=300, thin=3, bins=20))
    assert_control_fails(sbc("hyperparams", n_sims=40, seed=0, chains=1, warmup=200, draws=300, thin=3, bins=8,
                             fit_priors={"sigma": "Delta(0.0005)"}))


HOME = find_home()


@pytest.mark.skipif(HOME is None or not (HOME / "step_law").is_dir(),
                    reason="Step Law data not found (set BAYESCALE_DATA)")
def test_step_law_grid_has_a_bowl_per_cell():
    from bayescale import datasets

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bayescale.BayescaleWarning)
        s = datasets.load("step_law")
    cells = s.groupby(["params", "tokens"])
    assert cells.ngroups == 17
    # in every cell the best run is inside the (lr, batch) grid, not on its edge: a bowl to fit
    inside = 0
    for _, c in cells:
        best = c.loc[c["loss"].idxmin()]
        inside += (c["lr"].min() < best["lr"] < c["lr"].max()) and (c["batch_size"].min() < best["batch_size"])
    assert inside >= 15

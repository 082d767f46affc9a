"""Batched fits (bayescale.batch.fit_many): the Fit API, recovery, SBC of the batched sampler,
and draws that do not depend on the number of (forced host) JAX devices.

Mixing: with the quarter-period trajectory used before (T0 = pi/2, at most 16 leapfrog steps),
fits of these sparse 20-30 row designs had r_hat > 1.1 in 4-5 of 45 fits and bulk ESS < 20 in
3-5 (15 seed triples, old and new code alike), so test_fit_many_gives_normal_fits failed for
some seeds: the chains rarely crossed the long tail of E / log_B0. With T0 = pi (jittered in
[pi/2, 3 pi/2], at most 32 steps): 1 of 90 fits above r_hat 1.1 (1.102), 1 below ESS 20, median
bulk ESS 199 instead of 70, for 20 instead of 9 leapfrog steps per draw (more ESS per gradient).

SBC (slow suite, --run-slow; also run by benchmarks/batch_perf.py): chinchilla on the default
5 x 4 (N, D) design, 100 simulations fitted in one batch (1 chain x 150 warmup + 200 draws, every
2nd draw kept, 10 bins). The correct sampler must not be rejected at family-wise 1 % for any of
the 7 parameters; the control, the same sampler with trajectories 80x too short (T = 0.04 instead
of pi) and a target acceptance of 0.999 (tiny steps), so the chains barely move from their
Laplace start in 350 iterations, must be rejected (too-narrow posteriors, U-shaped ranks). With
these settings the correct sampler's smallest p-value was 0.315 against a threshold of 0.0014,
the control's largest 1.2e-28.

The trajectory length is adapted per dataset by default (``trajectory="adapt"``, from pi); SBC
checks both it and the fixed pi.
"""
from __future__ import annotations

import concurrent.futures
import json
import multiprocessing
import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pandas as pd
import pytest

from bayescale.batch import fit_many
from bayescale.errors import BayescaleError, BayescaleWarning
from bayescale.models import get_law
from bayescale.simulate import simulate
from fit_helpers import pooled_masses

TRUTH = {"E": 1.7, "log_A0": -1.0, "alpha": 0.34, "log_B0": -1.2, "beta": 0.28, "sigma": 0.02, "nu": 10.0}
SETTINGS = {"chains": 2, "warmup": 300, "draws": 200}
LEVEL = 0.01


def chinchilla_tables(sizes, seed=0):
    """Tables simulated from TRUTH with different numbers of rows (so the batch is padded)."""
    law = get_law("chinchilla")
    rng = np.random.default_rng(seed)
    out = []
    for i, n in enumerate(sizes):
        design = pd.DataFrame({"params": np.exp(rng.uniform(np.log(1e7), np.log(1e10), n)),
                               "tokens": np.exp(rng.uniform(np.log(1e9), np.log(1e12), n))})
        out.append(simulate(law, design, TRUTH, seed=seed + i)[0])
    return out


@pytest.fixture(scope="module")
def tables():
    return chinchilla_tables([20, 24, 30])


@pytest.fixture(scope="module")
def fits(tables):
    return fit_many(tables, "chinchilla", seed=[5, 6, 7], **SETTINGS)


def test_fit_many_gives_normal_fits(fits, tables, tmp_path):
    from bayescale.saved import load

    assert len(fits) == 3
    for f, df in zip(fits, tables):
        assert f.config["n_obs"] == len(df)
        assert f.idata.log_likelihood["y"].sizes["obs"] == len(df)  # padded rows are cut off
        assert f.posterior.sizes["chain"] == 2 and f.posterior.sizes["draw"] == 200
        assert f.config["stats"]["batch_size"] == 3
        d = f.diagnostics
        # sparse random designs give curved posteriors (NUTS at this budget: min ESS ~55 too)
        assert d["max_rhat"] < 1.1 and d["min_ess_bulk"] > 20, d
    assert [f.config["seed"] for f in fits] == [5, 6, 7]
    # how the tables were read, as bs.fit records it (compare --holdout rebuilds the table with it)
    assert all(f.config["duplicates"] == "error" and f.config["columns"] == {} for f in fits)
    new = pd.DataFrame({"params": [1e11], "tokens": [2e12]})
    pred = fits[0].predict(new, levels=(0.9,))
    assert np.isfinite(pred.filter(like="upper").to_numpy()).all()
    assert "E" in fits[0].summary().index
    fits[1].save(tmp_path / "f.nc")
    back = load(tmp_path / "f.nc")
    np.testing.assert_allclose(back.idata.posterior["alpha"].values, fits[1].idata.posterior["alpha"].values)


def test_fit_many_recovers_the_truth_and_rejects_a_wrong_law(fits, tables):
    # every true law parameter inside the 99 % interval of every fit
    for f in fits:
        s = f.summary(quantiles=(0.005, 0.995))
        for k in ("E", "log_A0", "alpha", "log_B0", "beta"):
            assert s.loc[k, "0.5%"] < TRUTH[k] < s.loc[k, "99.5%"], (k, s.loc[k])
    # a wrong law: both exponents forced to 0.05 (nearly flat terms). The curvature in N and D cannot
    # be fitted, so the noise scale absorbs the misfit and excludes its true value
    wrong = fit_many(tables, "chinchilla", seed=[5, 6, 7],
                     priors={"alpha": "Delta(0.05)", "beta": "Delta(0.05)"}, **SETTINGS)
    lower = [float(f.idata.posterior["sigma"].quantile(0.005)) for f in wrong]
    assert all(v > 1.5 * TRUTH["sigma"] for v in lower), lower


def test_fit_many_is_reproducible_per_seed(tables, fits):
    again = fit_many(tables, "chinchilla", seed=[5, 6, 7], **SETTINGS)
    np.testing.assert_array_equal(again[2].idata.posterior["beta"].values,
                                  fits[2].idata.posterior["beta"].values)
    other = fit_many(tables, "chinchilla", seed=[8, 9, 10], **SETTINGS)
    assert not np.array_equal(other[2].idata.posterior["beta"].values, fits[2].idata.posterior["beta"].values)


def test_fit_many_errors(tables):
    with pytest.raises(BayescaleError, match="sampler"):
        fit_many(tables, sampler="gibbs")
    with pytest.raises(BayescaleError, match="at least one dataset"):
        fit_many([])
    with pytest.raises(BayescaleError, match="one per dataset"):
        fit_many(tables, seed=[1, 2])
    with pytest.raises(BayescaleError, match="dataset 1 of 3"):
        fit_many([tables[0], tables[1].drop(columns=["tokens"]), tables[2]])


# ---- SBC of the batched sampler ----------------------------------------------------------------

SBC_SETTINGS = {"n_sims": 100, "seed": 0, "chains": 1, "warmup": 150, "draws": 200, "thin": 2,
                "bins": 10, "sampler": "hmc"}


def _sbc_pair():
    from bayescale.sbc import sbc

    import math

    return (sbc("chinchilla", **SBC_SETTINGS, batch_options={"trajectory": math.pi}),
            sbc("chinchilla", **SBC_SETTINGS, target_accept=0.999, batch_options={"trajectory": 0.04}),
            sbc("chinchilla", **SBC_SETTINGS))


@pytest.fixture(scope="module")
def sbc_pair():
    # a fresh interpreter, as in test_sbc.py (XLA's CPU compiler crashed late in long sessions)
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        return pool.submit(_sbc_pair).result()


@pytest.mark.slow  # compiles its own programs (~1-2 min on 2 busy cores)
def test_sbc_batched_sampler_is_calibrated(sbc_pair):
    correct, _, _ = sbc_pair
    print(correct, correct.summary(), sep="\n")
    assert correct.settings["sampler"] == "hmc"
    assert correct.n_failed == 0, correct.failures
    assert set(correct.pvalues) == {"E", "log_A0", "alpha", "log_B0", "beta", "sigma", "nu"}
    assert correct.passes(LEVEL), correct.summary()
    assert correct.n_divergent_fits <= 0.25 * correct.n_sims


@pytest.mark.slow  # compiles its own programs (~1-2 min on 2 busy cores)
def test_sbc_batched_sampler_with_too_short_trajectories_fails(sbc_pair):
    _, control, _ = sbc_pair
    print(control, control.summary(), sep="\n")
    assert not control.passes(LEVEL), control.summary()


@pytest.mark.slow  # compiles its own programs (~1-2 min on 2 busy cores)
def test_sbc_batched_sampler_with_an_adapted_trajectory_is_calibrated(sbc_pair):
    """fit_many's default: the trajectory length adapted during warmup (the control above is the
    one that must fail)."""
    _, _, adapted = sbc_pair
    print(adapted, adapted.summary(), sep="\n")
    assert adapted.n_failed == 0, adapted.failures
    assert adapted.passes(LEVEL), adapted.summary()


# ---- trajectory length adaptation -----------------------------------------------------------------

def test_the_jump_gradient_points_to_half_a_period_on_a_gaussian():
    """On a whitened standard Gaussian the squared jump |z(t) - z(0)|^2 = 2 (1 - cos t) (per
    dimension, expected) grows up to t = pi and falls after it: the gradient estimate is positive
    below pi and negative above (control: the same estimate beyond pi)."""
    import jax.numpy as jnp

    from bayescale.samplers.batched_hmc import Program

    rng = np.random.default_rng(0)
    z0, r = rng.standard_normal((2, 20000, 3))
    signs = []
    for t in (1.0, 2.5, 3.8, 5.0):
        z1, v1 = z0 * np.cos(t) + r * np.sin(t), -z0 * np.sin(t) + r * np.cos(t)
        g = Program._jump_gradient(jnp.asarray(z0), (jnp.asarray(z1), jnp.asarray(v1), jnp.full(20000, t),
                                                     jnp.ones(20000)), jnp.identity(3))
        expected = t * 3 * np.sin(t)          # t · E[(z1 - z0) · dz1/dt] = t sin t per dimension
        assert float(g) == pytest.approx(expected, rel=0.1)
        signs.append(np.sign(float(g)))
    assert signs == [1, 1, -1, -1]


def test_an_adapted_trajectory_is_recorded_and_bad_values_are_errors(tables):
    import math

    fits = fit_many(tables[:2], "chinchilla", seed=3, trajectory="adapt", **SETTINGS)
    for f in fits:
        length = f.config["stats"]["trajectory"]
        assert math.pi / 2 * 0.9 <= length <= 2 * math.pi * 1.1 and abs(length - math.pi) > 1e-3
        assert f.config["sampler"]["trajectory"] == "adapt"
    fixed = fit_many(tables[:2], "chinchilla", seed=3, **SETTINGS)
    assert all(abs(f.config["stats"]["trajectory"] - math.pi) < 0.3 for f in fixed)   # 200 jitters: mean 1 +- 0.02
    for bad in ("chees", -1.0, 0.0, float("nan")):
        with pytest.raises(BayescaleError, match="trajectory must be a positive number or 'adapt'"):
            fit_many(tables[:1], "chinchilla", trajectory=bad, **SETTINGS)


# ---- devices ------------------------------------------------------------------------------------

DEVICES = textwrap.dedent("""
    import hashlib, json
    import jax
    import numpy as np
    import pandas as pd
    from bayescale.batch import fit_many
    from bayescale.simulate import simulate
    tables = [simulate("power", pd.DataFrame({"params": np.geomspace(1e7, 1e10, 12 + i)}),
                       {"E": 2.0, "log_A0": -0.5, "alpha": 0.3, "sigma": 0.02, "nu": 10.0}, seed=i)[0]
              for i in range(3)]
    fits = fit_many(tables, "power", seed=0, chains=2, warmup=150, draws=150)
    draws = [np.ascontiguousarray(f.idata.posterior["alpha"].values) for f in fits]
    print(json.dumps({"n_devices": jax.device_count(),
                      "used": [f.config["stats"]["devices"] for f in fits],
                      "hash": [hashlib.sha256(d.tobytes()).hexdigest() for d in draws],
                      "alpha": [float(f.idata.posterior["alpha"].median()) for f in fits],
                      "rhat": [f.diagnostics["max_rhat"] for f in fits]}))
""")


def _run_on_devices(*counts: int) -> list[dict]:
    """The script in one fresh interpreter per device count, all at once."""
    procs = []
    for n in counts:
        env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={n}", JAX_PLATFORMS="cpu",
                   BAYESCALE_JAX_CACHE="0")
        procs.append(subprocess.Popen([sys.executable, "-c", DEVICES], env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))
    out = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=600)
        assert proc.returncode == 0, stderr[-3000:]
        out.append(json.loads(stdout.strip().splitlines()[-1]))
    return out


def test_draws_do_not_depend_on_the_device_count():
    """One device or two (forced host devices): the batch is cut into the same blocks, each run by
    the same program, so every fit's draws are bit-identical; with two devices both are used."""
    one, two = _run_on_devices(1, 2)
    assert one["n_devices"] == 1 and two["n_devices"] == 2
    assert one["used"] == [1, 1, 1]
    assert two["used"] == [2, 2, 2]  # 3 datasets in blocks of 2: one block per device
    assert one["hash"] == two["hash"], (one, two)
    assert all(abs(a - 0.3) < 0.1 for a in two["alpha"]), two
    assert all(r < 1.1 for r in two["rhat"]), two


def test_fit_many_warns_that_centred_hierarchies_may_stick():
    """The batched sampler starts every chain at the joint mode, which a centred hierarchy lacks
    (tests/samplers/test_large_tables.py shows NUTS stuck there); the user is told, and an
    unpooled batch is not."""
    tables = [pooled_masses(seed) for seed in (0, 1)]
    with pytest.warns(BayescaleWarning, match=r"\['a', 'log_b'\] are pooled and sampled centred") as caught:
        fit_many(tables, "choice-mass", chains=1, warmup=20, draws=20, progress=False)
    assert {w.filename for w in caught if "sampled centred" in str(w.message)} == {__file__}   # the user's line
    one_task = [t[t.task == "t0"].drop(columns="task") for t in tables]
    with warnings.catch_warnings():
        warnings.simplefilter("error", BayescaleWarning)
        fit_many(one_task, "choice-mass", chains=1, warmup=20, draws=20, progress=False)

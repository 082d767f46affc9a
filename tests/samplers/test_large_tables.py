"""Large tables: from bayescale.samplers.precision.X64_MIN_ROWS rows the sampler runs in float64
(float32 sums of the log density over 200,000 rows are too noisy for NUTS), and from
bayescale.samplers.nuts.WARM_START_MIN_ROWS rows chains start at the mode (a Uniform(-2, 2) start
spent hundreds of iterations reaching the narrow posterior). benchmarks/large_table.py fits the
200,000-row table."""
from __future__ import annotations

import time

import jax
import numpy as np
import pandas as pd
import pytest

import bayescale as bs
from bayescale.simulate import log_uniform_design, simulate
from fit_helpers import pooled_masses

TRUTH = {"E": 1.7, "log_A0": -1.0, "alpha": 0.34, "log_B0": -1.2, "beta": 0.28, "sigma": 0.01, "nu": 30.0}


def chinchilla_table(n: int, seed: int = 0) -> pd.DataFrame:
    """``n`` runs, N in [1e8, 1e10] and D in [1e10, 1e12] log-uniform, 1% noise on log loss."""
    return simulate("chinchilla", log_uniform_design(n, seed), TRUTH, seed=seed + 1)[0]


def test_20000_rows_sample_in_float64_from_the_mode():
    df = chinchilla_table(20_000)
    t0 = time.perf_counter()
    fit = bs.fit(df, "chinchilla", seed=0, warmup=300, draws=300, progress=False, discrepancy="none")   # the law alone
    seconds = time.perf_counter() - t0
    stats, d = fit.config["stats"], fit.diagnostics
    print(f"20,000 rows: {seconds:.1f} s, {d}")
    assert stats["float64"] and stats["warm_start"]
    assert fit.idata.posterior["alpha"].dtype == np.float64
    assert d["max_rhat"] <= 1.01 and d["divergences"] == 0, d
    assert stats["mean_steps_per_draw"] < 20, stats
    s = fit.summary(quantiles=(0.005, 0.995))
    for k in ("E", "alpha", "beta"):
        assert s.loc[k, "0.5%"] < TRUTH[k] < s.loc[k, "99.5%"], (k, s.loc[k])


def test_float64_draws_do_not_depend_on_the_chain_threads(monkeypatch):
    """Every chain thread enters float64 itself (jax.enable_x64 is thread-local): one thread or
    two, the same draws; and the float64 program really ran (float64 draws)."""
    from bayescale.samplers import precision

    monkeypatch.setattr(precision, "X64_MIN_ROWS", 0)
    df = chinchilla_table(40, seed=3)
    draws = {}
    for threads in ("1", "2"):
        monkeypatch.setenv("BAYESCALE_CHAIN_THREADS", threads)
        fit = bs.fit(df, "chinchilla", seed=2, chains=2, warmup=150, draws=60, progress=False, discrepancy="none")
        assert fit.config["stats"]["float64"] and fit.config["stats"]["chain_threads"] == int(threads)
        draws[threads] = fit.idata.posterior["beta"].values
    assert draws["1"].dtype == np.float64
    np.testing.assert_array_equal(draws["1"], draws["2"])
    assert not jax.config.jax_enable_x64   # the process default is untouched


def test_float32_sums_lose_what_float64_keeps():
    """The reason for the float64 threshold, at 20,000 rows: the float32 log density at the true
    point is off by more than 1e-3 (and grows with the rows), float64 by far less."""
    from bayescale.inference import build, make_model, model_arguments
    from bayescale.samplers.nuts import _model_functions
    from bayescale.samplers.precision import cast_arguments, precision

    spec, data = build(chinchilla_table(20_000), "chinchilla")
    point = {"E": np.log(1.7), "alpha": np.log(0.34), "beta": np.log(0.28), "log_A0": -1.0, "log_B0": -1.2,
             "nu": np.log(30.0), "sigma": np.log(0.01)}
    values = {}
    for x64 in (False, True):
        with precision(x64):
            args = jax.device_put(cast_arguments(model_arguments(spec, data), x64))
            potential_gen, _, prototype = _model_functions(make_model(spec, natural=True), args)
            z = {k: jax.numpy.asarray(v, prototype[k].dtype) for k, v in point.items()}
            values[x64] = float(jax.jit(lambda z, a, gen=potential_gen: gen(*a)(z))(z, args))
    # float32: ~1e-2 off at this size (0.1 at 200,000 rows, where sampling broke)
    assert abs(values[False] - values[True]) > 1e-3, values


@pytest.mark.slow   # ~10-20 min on 2 busy cores; benchmarks/large_table.py prints the figures
def test_200000_rows_sample():
    fit = bs.fit(chinchilla_table(200_000), "chinchilla", seed=0, progress=False, discrepancy="none")
    d = fit.diagnostics
    assert d["max_rhat"] <= 1.01 and d["divergences"] == 0, d
    assert fit.config["stats"]["mean_steps_per_draw"] < 20


@pytest.mark.slow   # 30 s of the default suite's 10 minutes; results in benchmarks/RESULTS.md
@pytest.mark.parametrize("neck_check", ["default", "removed (control)"])
def test_a_centred_hierarchy_without_a_mode_starts_from_the_uniform_draw(monkeypatch, neck_check):
    """A centred hierarchy's density grows without bound as a group spread shrinks to 0. Where the
    groups barely differ (here log_b's spread is 0) Newton's warm start runs into that neck; the
    sampler sees the spread far below its prior there and starts from the uniform draw instead.
    The control removes that check: its chains stay stuck in the neck. (The warm start's row
    threshold is lifted so that a small table shows it.)"""
    from bayescale import inference
    from bayescale.samplers import nuts

    monkeypatch.setattr(nuts, "WARM_START_MIN_ROWS", 0)
    control = neck_check != "default"
    if control:
        monkeypatch.setattr(inference, "neck_floors", lambda spreads: ())
    fit = bs.fit(pooled_masses(), "choice-mass", seed=0, chains=2, warmup=50 if control else 150,
                 draws=20 if control else 100, progress=False, discrepancy="none")
    assert set(fit.spec.centred) == {"a", "log_b"}
    stats, d = fit.config["stats"], fit.diagnostics
    print(f"{neck_check}: mean steps/draw {stats['mean_steps_per_draw']:.1f}, max r_hat {d['max_rhat']:.3g}")
    assert stats["warm_start"]
    if control:
        assert stats["mean_steps_per_draw"] > 900 or d["max_rhat"] > 10, (stats, d)
    else:
        assert d["max_rhat"] < 1.1 and stats["mean_steps_per_draw"] < 200, (stats, d)


def test_a_centred_hierarchy_with_a_mode_keeps_the_warm_start():
    """Groups that differ give Newton a real mode: the floors are far below it, so the warm start
    stays (on 20,000 rows pooled by family it took 24 s against 310 s and r_hat 2.7 from the
    uniform start; benchmarks/RESULTS.md, "Downstream calibration: choice-mass")."""
    from bayescale.priors import median
    from bayescale.samplers.nuts import NECK_RATIO, neck_floors

    floors = dict(neck_floors({"E_tau": 0.5}))
    assert floors == {"E_tau": pytest.approx(np.log(NECK_RATIO * 0.5))}
    spec, _ = bs.inference.build(pooled_masses(), "choice-mass", discrepancy="none")
    prior = median(spec.priors["log_b_tau"])
    assert np.log(0.1) > np.log(NECK_RATIO * prior) > np.log(5e-6)   # a real spread passes, the neck seen does not

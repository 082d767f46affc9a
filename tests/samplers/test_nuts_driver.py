"""The compiled NUTS driver (bayescale/samplers/nuts.py): draws do not depend on how many threads
run the chains, chunking keeps exactly the requested draws, and the small dense model adapts a
step size that the regularised (NumPyro/Stan default) covariance would have shrunk."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import bayescale
from bayescale.models import get_law
from bayescale.simulate import simulate

SETTINGS = dict(law="power", chains=3, warmup=130, draws=47, progress=False, discrepancy="none")   # not multiples of 50


def _data() -> pd.DataFrame:
    design = pd.DataFrame({"params": np.geomspace(1e7, 1e10, 14)})
    df, _ = simulate(get_law("power"), design, {"E": 1.7, "log_A0": -1.0, "alpha": 0.3, "sigma": 0.01, "nu": 30.0},
                                      seed=4)
    return df


@pytest.fixture(scope="module")
def data():
    return _data()


def test_thread_count_does_not_change_the_draws(data, monkeypatch):
    monkeypatch.setenv("BAYESCALE_CHAIN_THREADS", "1")
    one = bayescale.fit(data, seed=5, **SETTINGS)
    monkeypatch.setenv("BAYESCALE_CHAIN_THREADS", "3")
    three = bayescale.fit(data, seed=5, **SETTINGS)
    assert one.config["stats"]["chain_threads"] == 1 and three.config["stats"]["chain_threads"] == 3
    a, b = one.posterior, three.posterior
    assert a["alpha"].shape == (3, 47)
    np.testing.assert_array_equal(a["alpha"].values, b["alpha"].values)
    # control: another seed gives other draws
    other = bayescale.fit(data, seed=6, **SETTINGS).posterior
    assert not np.array_equal(a["alpha"].values, other["alpha"].values)


def test_chains_differ_and_sample_stats_line_up(data):
    fit = bayescale.fit(data, seed=7, **SETTINGS)
    post, stats = fit.posterior, fit.idata.sample_stats
    assert not np.array_equal(post["alpha"].values[0], post["alpha"].values[1])
    assert stats["n_steps"].shape == (3, 47) and stats["diverging"].shape == (3, 47)
    assert fit.idata.log_likelihood["y"].shape == (3, 47, len(data))


def test_relative_shrinkage_takes_fewer_leapfrog_steps():
    """On a narrow posterior (variances far below Stan's absolute 1e-3 shrinkage target), shrinking
    relative to each coordinate's variance gives longer steps; NumPyro's (Stan's) absolute form,
    the same driver with ``relative_shrinkage=False``, is the control."""
    import jax

    from bayescale.inference import build, make_model, model_arguments
    from bayescale.samplers.nuts import Settings, compile_nuts, run_chains
    from bayescale.samplers.precision import cast_arguments

    design = pd.DataFrame({"params": np.geomspace(1e7, 1e10, 200)})
    df, _ = simulate("power", design, {"E": 1.7, "log_A0": -1.0, "alpha": 0.3, "sigma": 0.002, "nu": 30.0},
                     seed=8)
    spec, dataset = build(df, "power")
    args = jax.device_put(cast_arguments(model_arguments(spec, dataset), False))
    steps = {}
    for relative in (True, False):
        settings = Settings(warmup=300, dense=True, target_accept=0.8, relative_shrinkage=relative)
        sampler = compile_nuts(make_model(spec), args, settings)
        _, fields, _ = run_chains(sampler, args, seed=0, chains=2, draws=200)
        assert fields["diverging"].sum() <= 2
        steps[relative] = float(np.mean(fields["num_steps"]))
    jax.clear_caches()
    assert steps[True] < 0.6 * steps[False], steps


def test_dense_adaptation_survives_windows_with_fewer_draws_than_parameters():
    """30 latent parameters, dense mass, and a first adaptation window of 25 draws: the window's
    covariance is singular, and the relative shrinkage must keep it positive definite."""
    groups = [f"g{i}" for i in range(12)]
    design = pd.DataFrame({"params": np.tile(np.geomspace(1e7, 1e10, 5), len(groups)),
                           "family": np.repeat(groups, 5)})
    law = get_law("power")
    df, _ = simulate(law, design, None, seed=3, pool={"E": "family", "log_A0": "family"})
    fit = bayescale.fit(df, "power", pool={"E": "family", "log_A0": "family"}, seed=0, chains=2, discrepancy="none",
                        warmup=150, draws=100, progress=False, dense_mass=True)
    assert fit.config["stats"]["n_latent"] > 25
    assert np.isfinite(fit.posterior["alpha"].values).all()
    assert fit.diagnostics["divergences"] < 20, fit.diagnostics
    assert fit.diagnostics["max_rhat"] < 1.1, fit.diagnostics


def test_bad_thread_setting_is_a_clear_error(data, monkeypatch):
    monkeypatch.setenv("BAYESCALE_CHAIN_THREADS", "two")
    with pytest.raises(bayescale.BayescaleError, match="BAYESCALE_CHAIN_THREADS must be a positive integer"):
        bayescale.fit(data, seed=5, **SETTINGS)


def test_ctrl_c_stops_sampling_fast_and_leaves_the_sampler_usable(data):
    """SIGINT during sampling: KeyboardInterrupt within a couple of seconds (each chain stops at
    its next chunk of transitions), and the next fit of the same shape runs normally."""
    import signal
    import threading
    import time

    bayescale.fit(data, seed=1, **SETTINGS)                          # compiled before the timing
    # a shell that starts a job in the background (as CI may) ignores SIGINT: restore Python's handler
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    timer = threading.Timer(1.0, signal.raise_signal, args=(signal.SIGINT,))
    start = time.perf_counter()
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            bayescale.fit(data, seed=2, **{**SETTINGS, "draws": 2_000_000})   # would take many minutes
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, previous)
    assert time.perf_counter() - start < 8.0
    again = bayescale.fit(data, seed=3, **SETTINGS)
    assert again.posterior.sizes["draw"] == SETTINGS["draws"] and np.isfinite(again.diagnostics["max_rhat"])

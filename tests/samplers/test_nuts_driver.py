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


class _Stuckable:
    """A stand-in for a compiled sampler: chain 1's first starting point is "stuck" (every
    transition at the tree-depth cap, its draws constant); any other start moves."""

    class _State:
        def __init__(self, stuck):
            self.potential_energy = 0.0
            self.stuck = stuck

    def __init__(self, keys, warmup=120):
        import jax

        from bayescale.samplers.nuts import Settings
        self.settings = Settings(warmup=warmup, dense=True, target_accept=0.8)
        self.warmup, self.x64 = warmup, False
        self.stuck_key = np.asarray(jax.random.key_data(keys[1]) if hasattr(jax.random, "key_data") else keys[1])

    def init(self, key, args):
        import jax
        k = np.asarray(jax.random.key_data(key) if hasattr(jax.random, "key_data") else key)
        return (self._State(bool(np.array_equal(k, self.stuck_key))), 0)

    def chunk(self, carry, args):
        from bayescale.samplers.nuts import CHUNK
        state, i = carry
        cap = 2 ** self.settings.max_tree_depth - 1
        steps = np.full(CHUNK, cap if state.stuck else 7)
        z = np.zeros(CHUNK) if state.stuck else np.arange(i, i + CHUNK, dtype=float)
        zero = np.zeros(CHUNK)
        return (state, i + CHUNK), (z, steps, zero.astype(bool), zero, zero, zero)


@pytest.mark.parametrize("restarts_allowed", [2, 0])
def test_a_chain_stuck_at_the_end_of_warmup_starts_again(monkeypatch, restarts_allowed):
    """The stuck chain starts again from a fresh point and its draws come from that start; the
    progress count ends at the same total. Control: with no restarts allowed its draws stay stuck."""
    import jax

    from bayescale.samplers import nuts
    monkeypatch.setattr(nuts, "RESTARTS", restarts_allowed)
    keys = jax.random.split(jax.random.PRNGKey(3), 3)
    counted, restarts = [], []
    z, fields, _ = nuts.run_chains(_Stuckable(keys), (), seed=3, chains=3, draws=40,
                                   on_progress=counted.append, restarts=restarts)
    assert sum(counted) == 3 * (120 + 40)
    assert z.shape == (3, 40)
    if restarts_allowed:
        assert restarts == [0, 1, 0]
        assert fields["num_steps"].max() == 7 and np.ptp(z[1]) > 0
    else:
        assert restarts == [0, 0, 0]
        assert fields["num_steps"][1].min() == 1023 and np.ptp(z[1]) == 0

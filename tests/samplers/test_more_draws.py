"""Continuing the chains when the diagnostics miss their targets by what more draws can fix
(``bayescale.fit``'s default ``draws=None``; :func:`bayescale.inference.more_draws_help`)."""
from __future__ import annotations

import arviz as az
import numpy as np
import pandas as pd
import pytest

import bayescale
from bayescale import inference
from bayescale.models import get_law
from bayescale.simulate import simulate

pytestmark = pytest.mark.filterwarnings("ignore::bayescale.errors.UnreliableSampling")   # short chains on purpose
POWER = {"E": 1.7, "log_A0": -1.0, "alpha": 0.3, "sigma": 0.01, "nu": 30.0}


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    design = pd.DataFrame({"params": np.geomspace(1e7, 1e10, 14)})
    return simulate(get_law("power"), design, POWER, seed=4)[0]


@pytest.fixture(scope="module")
def spec(data):
    return inference.build(data, "power", discrepancy="none")[0]


def _idata(spec, rng, *, shift=0.0, phi=0.0, divergences=0, chains=4, draws=1000):
    """Chains of AR(1) draws (autocorrelation ``phi``) for every sampled variable; the first
    chain shifted by ``shift`` standard deviations."""
    posterior = {}
    for name in inference.latent_names(spec, {k: None for k in spec.law.all_params()}):
        x = np.empty((chains, draws))
        x[:, 0] = rng.normal(size=chains)
        noise = rng.normal(size=(chains, draws)) * np.sqrt(1 - phi ** 2)
        for t in range(1, draws):
            x[:, t] = phi * x[:, t - 1] + noise[:, t]
        x[0] += shift
        posterior[name] = x
    diverging = np.zeros((chains, draws), bool)
    diverging.flat[:divergences] = True
    return az.from_dict(posterior=posterior,
                        sample_stats={"diverging": diverging, "n_steps": np.full((chains, draws), 7)})


def test_the_rule_continues_only_where_more_draws_help(spec):
    rng = np.random.default_rng(0)
    judge = inference.more_draws_help(spec, max_draws=4000)
    assert not judge(_idata(spec, rng)), "healthy chains: stop"
    assert judge(_idata(spec, rng, shift=0.45)), "r_hat a little above 1.01: continue"
    assert judge(_idata(spec, rng, phi=0.9)), "bulk ESS ~200 that 4x the draws would lift past 400: continue"
    # controls: what more draws do not fix
    assert not judge(_idata(spec, rng, shift=1.0)), "a chain apart (r_hat > 1.05): warn at once"
    assert not judge(_idata(spec, rng, shift=0.45, divergences=1)), "a divergence: warn at once"
    assert not judge(_idata(spec, rng, phi=0.995)), "ESS far too low to reach 400 by max_draws"
    assert not inference.more_draws_help(spec, max_draws=1000)(_idata(spec, rng, phi=0.9))


def test_a_continued_chain_is_the_chain_drawn_in_one_go(data, monkeypatch):
    """With warmup + draws a multiple of the chunk (50 transitions), continuing 50 draws twice
    gives exactly the draws of one run of 150: the continuation is the same Markov chain."""
    settings = dict(law="power", chains=2, warmup=100, progress=False, discrepancy="none", seed=3)
    monkeypatch.setattr(inference, "more_draws_help", lambda spec, max_draws: lambda idata: True)
    continued = bayescale.fit(data, draws=50, max_draws=150, **settings)
    monkeypatch.undo()
    once = bayescale.fit(data, draws=150, **settings)
    assert continued.config["stats"]["draws_per_chain"] == 150
    assert continued.posterior.sizes["draw"] == 150
    assert continued.idata.sample_stats["n_steps"].shape == (2, 150)
    assert continued.idata.log_likelihood["y"].shape == (2, 150, len(data))
    np.testing.assert_array_equal(continued.posterior["alpha"].values, once.posterior["alpha"].values)
    np.testing.assert_array_equal(continued.idata.log_likelihood["y"].values, once.idata.log_likelihood["y"].values)


def test_an_explicit_draw_count_is_kept_and_bad_max_draws_is_refused(data):
    fit = bayescale.fit(data, law="power", chains=2, warmup=100, draws=50, progress=False, discrepancy="none")
    assert fit.posterior.sizes["draw"] == 50 and fit.config["max_draws"] == 50   # ESS < 400, still 50
    for bad in (0, -5, 2.5, "many", True):
        with pytest.raises(bayescale.BayescaleError, match="max_draws must be a positive integer"):
            bayescale.fit(data, law="power", max_draws=bad, progress=False)


def test_max_draws_below_draws_is_refused_before_fitting():
    with pytest.raises(bayescale.BayescaleError, match=r"max_draws \(500\) is below draws \(1000 per chain, the default\)"):
        inference.check_draws(None, 500, 4, 100)
    with pytest.raises(bayescale.BayescaleError, match=r"max_draws \(100\) is below draws \(300 per chain\).*draws=100; CLI --draws 100"):
        inference.check_draws(300, 100, 4, 100)
    assert inference.check_draws(300, 300, 4, 100) == (300, 300)   # control: equal is fine


def test_the_default_caps_continuation_by_memory():
    assert inference.check_draws(None, None, 4, 100) == (1000, 4000)
    assert inference.check_draws(300, None, 4, 100) == (300, 300)
    assert inference.check_draws(None, None, 4, 200_000) == (1000, 1000)   # 4 x 4000 x 200k cells: too many

"""Checks of the Python API's arguments. Every entry point that draws takes a seed and checks it as bs.fit does: a float or negative seed
is one clear error naming it (NumPy's own message named neither the argument nor the fix), and
the Fit's derived quantities take ``seed=`` as the stacked fit's do (whose checks are in
test_stacking.py: a stack needs fits with their pointwise log likelihood)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import bayescale as bs
from bayescale.chaining import rate_draws
from bayescale.comparison import stacked_predict
from bayescale.errors import BayescaleError
from bayescale.simulate import simulate
from fit_helpers import constructed_fit, grid

ROW = pd.DataFrame({"params": [7e10], "tokens": [1.4e12]})


@pytest.fixture(scope="module")
def fit():
    rng = np.random.default_rng(0)
    draws = {"E": rng.uniform(1.6, 1.9, 200), "log_A0": rng.normal(-0.4, 0.1, 200),
             "alpha": rng.uniform(0.3, 0.38, 200), "log_B0": rng.normal(-0.3, 0.1, 200),
             "beta": rng.uniform(0.25, 0.32, 200)}
    return constructed_fit("chinchilla", draws, grid())


def calls(fit):
    return {
        "predict": lambda s: fit.predict(ROW, seed=s),
        "optimal_allocation": lambda s: fit.optimal_allocation([1e22], seed=s),
        "min_loss": lambda s: fit.min_loss(seed=s),
        "tokens_for_loss": lambda s: fit.tokens_for_loss(2.3, params=7e9, seed=s),
        "stacked_predict": lambda s: stacked_predict([fit, fit], ROW, weights=[0.5, 0.5], seed=s),
        "plan": lambda s: bs.plan(fit, {"params": 7e10, "tokens": 1.4e12}, ROW.assign(params=1e10), seed=s),
        "simulate": lambda s: simulate("chinchilla", grid(k=3, m=2), seed=s),
        "rate_draws": lambda s: rate_draws(fit, ROW, seed=s),
    }


@pytest.mark.parametrize("name", ["predict", "optimal_allocation", "min_loss", "tokens_for_loss", "stacked_predict", "plan", "simulate", "rate_draws"])
def test_a_bad_seed_is_one_clear_error_and_a_good_one_runs(fit, name):
    call = calls(fit)[name]
    for bad in (1.5, -1, "0"):
        with pytest.raises(BayescaleError, match=r"seed must (be an integer|lie in \[0, 2\^32 - 1\])"):
            call(bad)
    if name != "plan":   # (plan reads the sampler's diagnostics, which a constructed fit lacks: test_plan runs it)
        call(np.int64(3))   # control: a NumPy integer is a seed


def test_summary_quantiles_are_checked_and_one_is_enough(fit):
    assert list(fit.summary(quantiles=0.5).columns[:3]) == ["mean", "sd", "50%"]
    for bad, match in (([5, 95], r"quantiles must lie in \[0, 1\], got \[5.0, 95.0\].*percentiles such as 95 are 0.95"),
                       ("median", r"quantiles must be numbers in \[0, 1\], got 'median'")):
        with pytest.raises(BayescaleError, match=match):
            fit.summary(quantiles=bad)


@pytest.mark.parametrize("option", ["strict", "dense_mass", "progress"])
def test_a_true_false_option_given_as_text_is_an_error_not_true(option):
    runs = simulate("chinchilla", grid(k=3, m=2), seed=0)[0]
    with pytest.raises(BayescaleError, match=rf"{option} must be True or False"):
        bs.fit(runs, "chinchilla", chains=1, warmup=5, draws=5, **{option: "no"})


def test_calibrate_is_offered_beside_fit():
    """bs.calibrate as the README names it; sbc stays in bayescale.sbc (a top-level function of
    that name would hide the module: `import bayescale.sbc` would give the function)."""
    import importlib

    from bayescale.heldout import calibrate

    assert bs.calibrate is calibrate and "calibrate" in bs.__all__
    assert importlib.import_module("bayescale.sbc").__name__ == "bayescale.sbc"


def test_a_width_ratio_near_one_is_not_called_narrower_or_wider():
    from bayescale.heldout import _narrower_words

    assert _narrower_words(0.977) == "about as wide (1.02x the width)"   # was "1.0x wider"
    assert _narrower_words(1.8) == "1.8x narrower" and _narrower_words(0.5) == "2.0x wider"


def test_a_refit_keeps_the_prior_given_for_a_pooled_parameters_spread():
    """compare --holdout's refits and to_pymc(df, fit) rebuild the fit's model: a prior set on a
    group spread (log_A0_tau) is part of it. Control: no spread prior where nothing is pooled."""
    from types import SimpleNamespace

    from bayescale.comparison import refit_options
    from bayescale.datasets.demo import demo_data
    from bayescale.inference import build
    from bayescale.priors import describe

    spec, _ = build(demo_data(), "chinchilla", pool={"log_A0": "family"}, priors={"log_A0_tau": "HalfNormal(0.3)"})
    options = refit_options(SimpleNamespace(spec=spec, law=spec.law, config={}))
    assert describe(options["priors"]["log_A0_tau"]) == describe(spec.priors["log_A0_tau"])
    flat, _ = build(demo_data(), "chinchilla", pool="none")
    assert not [k for k in refit_options(SimpleNamespace(spec=flat, law=flat.law, config={}))["priors"]
                if k.endswith("_tau")]

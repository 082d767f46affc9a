"""ArviZ-complete fits: posterior_predictive, observed_data on two labelled scales and
sample_stats.energy, so that ArviZ's own plots and LOO work on a saved and loaded fit.

The model's site ``y`` is on the likelihood's scale (log loss for loss laws, correct answers for
rate laws): ``log_likelihood.y`` and LOO use it. The response on its own scale (``loss``,
``p_correct``) sits beside it in observed_data and posterior_predictive."""
from __future__ import annotations

import copy

import arviz as az
import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import xarray as xr

import bayescale
from bayescale import BayescaleError, get_law, results
from bayescale.batch import fit_many
from bayescale.datasets import demo_data
from bayescale.simulate import simulate
from bayescale.stacking import StackedFit
from fit_helpers import fit_quietly

SEED = 5
BUDGET = dict(chains=2, warmup=200, draws=200, discrepancy="none")


@pytest.fixture(scope="module")
def demo():
    return demo_data()


@pytest.fixture(scope="module")
def fit(demo):
    return fit_quietly(demo, "chinchilla", seed=SEED, **BUDGET)


@pytest.fixture(scope="module")
def other(demo):
    """The same fit with another seed."""
    return fit_quietly(demo, "chinchilla", seed=SEED + 1, **BUDGET)


@pytest.fixture(scope="module")
def saved(fit, tmp_path_factory):
    return fit.save(tmp_path_factory.mktemp("arviz") / "fit.nc")


@pytest.fixture(scope="module")
def loaded(saved):
    return bayescale.load(saved)


@pytest.fixture(scope="module", autouse=True)
def agg_backend():
    """ArviZ plots through pyplot: a non-interactive backend here, the previous one restored."""
    previous = matplotlib.get_backend()
    plt.switch_backend("Agg")
    yield
    plt.close("all")
    plt.switch_backend(previous)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def without(idata: az.InferenceData, group: str, var: str | None = None) -> az.InferenceData:
    """A deep copy of ``idata`` without one group (or, with ``var``, without one of its variables)."""
    groups = {g: idata[g].copy(deep=True) for g in idata.groups()}
    if var is None:
        del groups[group]
    else:
        groups[group] = groups[group].drop_vars(var)
    return az.InferenceData(**groups)


def latent_dimension(fit) -> int:
    post = fit.posterior
    return sum(int(np.prod([post.sizes[d] for d in post[k].dims if d not in ("chain", "draw")]))
               for k in fit.latent_names())


# ---- the groups and their scales ---------------------------------------------------------------

def test_groups_and_scales_survive_saving(fit, loaded, demo):
    for f in (fit, loaded):
        idata = f.idata
        assert {"posterior_predictive", "observed_data", "sample_stats", "log_likelihood"} <= set(idata.groups())
        obs, pp = idata.observed_data, idata.posterior_predictive
        assert set(obs.data_vars) == set(pp.data_vars) == {"y", "loss"}
        for name in ("y", "loss"):
            assert pp[name].dims == ("chain", "draw", "obs") and pp[name].shape == (2, 200, len(demo))
            assert obs[name].attrs["scale"] == pp[name].attrs["scale"]
        assert obs["y"].attrs["scale"] == "log loss" and obs["loss"].attrs["scale"] == "loss"
        np.testing.assert_allclose(obs["loss"].values, demo["loss"].to_numpy())
        np.testing.assert_allclose(obs["y"].values, np.log(demo["loss"].to_numpy()))
        assert not np.allclose(obs["y"].values, obs["loss"].values)   # control: the two scales differ
        np.testing.assert_allclose(pp["y"].values, np.log(pp["loss"].values), rtol=1e-5, atol=1e-6)
    for group in ("posterior_predictive", "observed_data", "sample_stats"):
        xr.testing.assert_identical(fit.idata[group], loaded.idata[group])


def test_predictive_is_on_the_response_scale(loaded):
    """Predicted losses are positive and centred on the observed ones; the site's scale (log loss)
    fails the same check, and so do observations shifted by 10%."""
    pp, obs = loaded.idata.posterior_predictive, loaded.idata.observed_data
    losses = pp["loss"].values.reshape(-1, pp.sizes["obs"])
    observed = obs["loss"].values
    assert np.all(losses > 0)

    def close(draws, target):
        return np.abs(np.median(draws, axis=0) / target - 1) < 0.06   # the demo's noise: up to 3.2%

    def covered(draws, target):
        lo, hi = np.quantile(draws, [0.05, 0.95], axis=0)
        return np.mean((lo <= target) & (target <= hi))

    assert close(losses, observed).all()
    assert covered(losses, observed) >= 0.8
    site = pp["y"].values.reshape(-1, pp.sizes["obs"])
    assert not close(site, observed).any()          # control: log losses are not losses
    assert covered(losses, 1.1 * observed) < 0.2    # control: the intervals are narrow enough to tell


def test_predictive_is_reproducible_for_a_seed(fit, loaded):
    stored = fit.idata.posterior_predictive
    assert stored.attrs["seed"] == SEED
    xr.testing.assert_identical(fit.posterior_predictive(), stored)
    xr.testing.assert_identical(loaded.posterior_predictive(seed=SEED), stored)
    other = fit.posterior_predictive(seed=SEED + 1)
    assert not np.array_equal(other["loss"].values, stored["loss"].values)   # control: the seed matters


# ---- ArviZ on the loaded fit ------------------------------------------------------------------

def test_plot_ppc_runs_on_both_scales(loaded):
    az.plot_ppc(loaded.idata, num_pp_samples=50, random_seed=0)
    az.plot_ppc(loaded.idata, var_names=["loss"], num_pp_samples=50, random_seed=0)
    with pytest.raises(TypeError, match="posterior_predictive"):   # control: without the group, no plot
        az.plot_ppc(without(loaded.idata, "posterior_predictive"))


def test_plot_energy_runs(loaded):
    az.plot_energy(loaded.idata)
    with pytest.raises(AttributeError, match="energy"):   # control: no energy, no energy plot
        az.plot_energy(without(loaded.idata, "sample_stats", "energy"))


def test_energy_is_the_hamiltonian(fit):
    """energy = potential + kinetic: energy + lp is the kinetic energy, >= 0, and its mean at
    stationarity is half the number of latent dimensions; the potential alone (-lp) would give 0."""
    stats = fit.idata.sample_stats
    kinetic = (stats["energy"] + stats["lp"]).values.astype(np.float64)
    assert np.all(kinetic > -1e-3)
    half_dim = latent_dimension(fit) / 2
    assert abs(kinetic.mean() - half_dim) < 1.0, (kinetic.mean(), half_dim)
    assert half_dim > 2.0   # so a potential energy stored as the energy (kinetic 0) fails the check above
    assert np.all(np.isfinite(az.bfmi(fit.idata)))


@pytest.mark.filterwarnings("ignore:Estimated shape parameter")   # Pareto k on a tiny fit
def test_loo_is_unchanged_by_saving(fit, loaded, other):
    before, after = az.loo(fit.idata, pointwise=True), az.loo(loaded.idata, pointwise=True)
    assert before["elpd_loo"] == after["elpd_loo"]
    np.testing.assert_array_equal(before["loo_i"].values, after["loo_i"].values)
    # control: another seed's posterior gives another estimate, so equality above is not vacuous
    assert az.loo(other.idata)["elpd_loo"] != before["elpd_loo"]


# ---- saved files: checksummed like every other group ------------------------------------------

def _read(saved) -> az.InferenceData:
    idata = az.from_netcdf(saved)
    return az.InferenceData(**{g: idata[g].load() for g in idata.groups()})


def test_edited_predictive_or_scale_is_refused(saved, tmp_path):
    same = _read(saved)
    same.to_netcdf(tmp_path / "same.nc")
    assert "posterior_predictive" in bayescale.load(tmp_path / "same.nc").idata.groups()   # control
    idata = _read(saved)
    idata.posterior_predictive["loss"][0, 0, 0] = idata.posterior_predictive["loss"][0, 0, 0] * 1.01
    idata.to_netcdf(tmp_path / "draws.nc")
    with pytest.raises(BayescaleError, match="posterior_predictive/loss does not match"):
        bayescale.load(tmp_path / "draws.nc")
    idata = _read(saved)
    idata.observed_data["y"].attrs["scale"] = "loss"   # a plausible edit: relabel the site's scale
    idata.to_netcdf(tmp_path / "scale.nc")
    with pytest.raises(BayescaleError, match="attributes of observed_data/y does not match"):
        bayescale.load(tmp_path / "scale.nc")


def test_a_fit_without_its_rows_says_so(fit):
    with pytest.raises(BayescaleError, match="does not record its fitted rows"):
        bayescale.Fit(without(fit.idata, "constant_data")).posterior_predictive()


def test_the_predictive_is_drawn_on_first_access_only(demo, tmp_path, monkeypatch):
    """Fits defer their posterior predictive: reading the posterior, predicting and diagnostics do
    not draw it; the first access to ``idata`` draws it once, the same draws as drawn at once."""
    calls = []
    draw = results.Fit.posterior_predictive

    def counted(self, seed=None):
        calls.append(seed)
        return draw(self, seed)

    monkeypatch.setattr(results.Fit, "posterior_predictive", counted)
    law = get_law("power")
    truth = {"E": 1.7, "log_A0": -1.0, "alpha": 0.3, "sigma": 0.01, "nu": 30.0}
    table = simulate(law, pd.DataFrame({"params": np.geomspace(1e7, 1e10, 14)}), truth, seed=1)[0]
    single = fit_quietly(demo, "chinchilla", seed=SEED, **BUDGET)
    batched = fit_many([table], "power", seed=3, chains=2, warmup=200, draws=200)[0]
    for f in (single, batched):
        f.diagnostics, f.summary(), f.posterior["alpha"].values
        f.predict(f.fitted_rows().head(3), seed=0)
        assert calls == []
        twin = copy.deepcopy(f)   # still deferred, with a lock of its own
        stored = f.idata.posterior_predictive
        assert len(calls) == 1
        xr.testing.assert_identical(f.idata.posterior_predictive, stored)   # not drawn again
        f.save(tmp_path / "f.nc")
        assert len(calls) == 1
        xr.testing.assert_identical(stored, draw(f))   # the fit's seed: the same draws
        xr.testing.assert_identical(twin.idata.posterior_predictive, stored)
        calls.clear()
    control = bayescale.Fit(without(single.idata, "posterior_predictive"))
    control.add_posterior_predictive()   # not deferred: drawn now
    assert len(calls) == 1


def test_groups_are_labelled_as_arviz_from_dict_labels_them():
    """Fits build their groups directly (faster); the result is what az.from_dict gives for the
    same arrays, named dims, unnamed dims and coordinates."""
    rng = np.random.default_rng(0)
    drawn = {"alpha": rng.normal(size=(2, 5)), "E_z": rng.normal(size=(2, 5, 3)),
             "steps": rng.normal(size=(2, 5, 4)), "unnamed": rng.normal(size=(2, 5, 2, 3))}
    fixed = {"params": rng.normal(size=6), "family": np.array(list("aabbcc")), "extra": rng.normal(size=(6, 2))}
    dims = {"E_z": ["family"], "steps": ["knot"], "params": ["obs"], "family": ["obs"]}
    coords = {"family": ["x", "y", "z"], "obs": np.arange(6)}
    ours = az.InferenceData(posterior=results._labelled(drawn, dims, coords, drawn=True),
                            constant_data=results._labelled(fixed, dims, coords, drawn=False))
    theirs = az.from_dict(posterior=drawn, constant_data=fixed, dims=dims, coords=coords)
    for group in ("posterior", "constant_data"):
        a, b = ours[group].copy(), theirs[group].copy()
        assert a.attrs.pop("created_at") and b.attrs.pop("created_at")
        xr.testing.assert_identical(a, b)
    control = results._labelled(drawn, {**dims, "E_z": ["group"]}, coords, drawn=True)   # a dim misnamed
    with pytest.raises(AssertionError):
        xr.testing.assert_identical(control.drop_attrs(), theirs.posterior.drop_attrs())


def test_large_tables_get_a_note_instead(fit, tmp_path, monkeypatch):
    def bare():
        return bayescale.Fit(without(fit.idata, "posterior_predictive"))

    control = bare()
    control.add_posterior_predictive()
    assert "posterior_predictive" in control.idata.groups() and control.notes == fit.notes
    monkeypatch.setattr(results, "PREDICTIVE_MAX_CELLS", fit.n_draws * fit.config["n_obs"] - 1)
    big = bare()
    big.add_posterior_predictive()
    assert "posterior_predictive" not in big.idata.groups()
    assert any(n.startswith("posterior_predictive left out") for n in big.notes)
    again = bayescale.load(big.save(tmp_path / "big.nc"))
    assert again.notes == big.notes and "posterior_predictive" not in again.idata.groups()


def test_stacked_fits_keep_the_groups(fit, other, tmp_path):
    stack = StackedFit({"first": fit, "second": other}, weights={"first": 0.5, "second": 0.5})
    loaded = bayescale.load(stack.save(tmp_path / "stack.nc"))
    for name, original in (("first", fit), ("second", other)):
        idata = loaded.fits[name].idata
        for group in ("posterior_predictive", "observed_data", "sample_stats"):
            xr.testing.assert_identical(idata[group], original.idata[group])
    az.plot_ppc(loaded.fits["second"].idata, num_pp_samples=20, random_seed=0)


# ---- a rate law: counts at the site, rates on the response's scale ------------------------------

def test_rate_law_scales():
    law = get_law("loss-to-error")
    trials = np.where(np.arange(12) % 3 == 0, 0.0, 1000.0)   # every third row only a rate
    design = pd.DataFrame({"loss": np.linspace(2.6, 4.0, 12), "trials": trials})
    df, _ = simulate(law, design, {**law.from_published(0.7, -2.5), "gamma": 2.0, "phi": 500.0}, seed=1)
    fit = fit_quietly(df, "loss-to-error", seed=2, **BUDGET)
    obs, pp = fit.idata.observed_data, fit.idata.posterior_predictive
    assert obs["y"].attrs["scale"].startswith("correct answers") and obs["p_correct"].attrs["scale"] == "p_correct"
    counted = trials > 0
    np.testing.assert_allclose(obs["y"].values, np.where(counted, df["p_correct"] * trials, df["p_correct"]))
    rates = pp["p_correct"].values
    assert np.all((rates >= 0) & (rates <= 1))
    np.testing.assert_allclose(pp["y"].values, np.where(counted, rates * trials, rates), rtol=1e-5)
    assert np.all(pp["y"].values[..., counted] > 1)   # control: the site holds counts, not rates
    assert np.all(np.abs(np.median(rates, axis=(0, 1)) - df["p_correct"].to_numpy()) < 0.05)
    az.plot_ppc(fit.idata, var_names=["p_correct"], num_pp_samples=20, random_seed=0)


# ---- the batched sampler: the same groups -----------------------------------------------------

def test_batched_fits_have_energy_and_predictive():
    law = get_law("power")
    truth = {"E": 1.7, "log_A0": -1.0, "alpha": 0.3, "sigma": 0.01, "nu": 30.0}
    tables = [simulate(law, pd.DataFrame({"params": np.geomspace(1e7, 1e10, 14)}), truth, seed=s)[0]
              for s in (1, 2)]
    for f in fit_many(tables, "power", seed=3, chains=2, warmup=200, draws=200):
        stats = f.idata.sample_stats
        kinetic = (stats["energy"] + stats["lp"]).values.astype(np.float64)
        assert np.all(kinetic > -1e-3)
        assert abs(kinetic.mean() - latent_dimension(f) / 2) < 1.0
        assert set(f.idata.posterior_predictive.data_vars) == {"y", "loss"}
        az.plot_energy(f.idata)
        az.plot_ppc(f.idata, num_pp_samples=20, random_seed=0)

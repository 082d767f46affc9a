"""The Fit object: summary, diagnostics, labelled posterior, predict, and lossless atomic save/load.
One small real NUTS fit of the synthetic demo, shared by the whole module."""
from __future__ import annotations

import warnings

import arviz as az
import numpy as np
import pandas as pd
import xarray as xr
import pytest

import bayescale
from bayescale import BayescaleError, BayescaleWarning, Fit
from bayescale.data import validate
from bayescale.datasets import demo_data
from fit_helpers import fit_quietly

SEED = 11
FAMILIES = ["dense", "parallel", "wide"]


@pytest.fixture(scope="module")
def demo():
    return demo_data()


@pytest.fixture(scope="module")
def fit(demo):
    return fit_quietly(demo, "chinchilla", seed=SEED, chains=2, warmup=150, draws=150)  # tiny budget


@pytest.fixture(scope="module")
def saved(fit, tmp_path_factory):
    path = tmp_path_factory.mktemp("fit") / "demo.nc"
    assert fit.save(path) == path
    return path


@pytest.fixture(scope="module")
def loaded(saved):
    return bayescale.load(saved)


@pytest.fixture(scope="module")
def points():
    return pd.DataFrame({"family": ["dense", "wide", "dense"], "dataset": "synthetic-web",
                         "params": [7e10, 1e9, 3e8], "tokens": [1.4e12, 2e10, 6e9]})


# ---- the posterior and its summaries ------------------------------------------------------------

def test_posterior_has_labelled_family_dim(fit):
    post = fit.posterior
    assert isinstance(fit.idata, az.InferenceData)
    assert fit.spec.pooled == {"log_A0": "family"}
    assert post["log_A0_by_family"].dims == ("chain", "draw", "family")
    site = "log_A0_u" if "log_A0" in fit.spec.centred else "log_A0_z"  # centred when groups are large
    assert post[site].dims == ("chain", "draw", "family")
    assert list(post["family"].values) == FAMILIES
    assert all(isinstance(v, str) for v in post["family"].values.tolist())
    assert post.sizes["chain"] == 2 and post.sizes["draw"] == 150
    for name in ("E", "alpha", "beta", "log_B0", "A", "B", "sigma", "nu"):
        assert post[name].dims == ("chain", "draw"), name
    assert post["A_by_family"].dims == ("chain", "draw", "family")
    assert {"posterior", "sample_stats", "log_likelihood", "observed_data"} <= set(fit.idata.groups())


def test_summary_layout(fit):
    s = fit.summary()
    assert {"mean", "sd", "r_hat", "ess_bulk"} <= set(s.columns)
    quantile_cols = [c for c in s.columns if c.endswith("%")]
    assert {"2.5%", "50%", "97.5%"} <= set(quantile_cols)
    for row in ("E", "alpha", "beta", "A", "B", "log_A0", "log_A0_tau", "sigma", "nu"):
        assert row in s.index, row
    for fam in FAMILIES:
        assert f"log_A0[{fam}]" in s.index and f"A[{fam}]" in s.index
    assert s.index.is_unique
    assert np.all(s["sd"] > 0) and np.all(np.isfinite(s["mean"]))
    q = s[quantile_cols].to_numpy()
    assert np.all(np.diff(q, axis=1) >= 0)  # quantile columns ascend
    # the law's own truth is inside the (wide, small-budget) posterior
    assert s.loc["alpha", "2.5%"] < 0.34 < s.loc["alpha", "97.5%"]
    assert s.loc["beta", "2.5%"] < 0.28 < s.loc["beta", "97.5%"]


def test_diagnostics(fit):
    d = fit.diagnostics
    assert {"max_rhat", "min_ess_bulk", "divergences"} <= set(d)
    assert np.isfinite(d["max_rhat"]) and d["max_rhat"] >= 0.99
    assert np.isfinite(d["min_ess_bulk"]) and d["min_ess_bulk"] > 0
    assert isinstance(d["divergences"], int) and d["divergences"] >= 0
    assert "max_rhat" in repr(fit)


def test_attrs_record_the_fit(fit, demo):
    c = fit.config
    assert c["law"] == "chinchilla"
    assert c["pooled"] == {"log_A0": "family"}
    assert {"E", "alpha", "beta", "log_A0", "log_B0", "log_A0_tau", "sigma", "nu"} <= set(c["priors"])
    assert c["seed"] == SEED and c["chains"] == 2 and c["draws"] == 150
    assert c["data_hash"] == validate(demo, ("params", "tokens")).data_hash()
    assert c["versions"]["bayescale"] == bayescale.__version__
    assert {"numpyro", "jax", "arviz"} <= set(c["versions"])
    assert c["n_obs"] == len(demo)


# ---- predict ---------------------------------------------------------------------------------------

def test_predict_columns_and_ordering(fit, points):
    pred = fit.predict(points, kind="mean")
    assert list(pred.columns[: len(points.columns)]) == list(points.columns)
    pd.testing.assert_frame_equal(pred[points.columns], points)
    cols = ["median", "lower_50", "upper_50", "lower_90", "upper_90"]
    assert {"mean", *cols} <= set(pred.columns)
    assert np.all(pred["lower_90"] <= pred["lower_50"])
    assert np.all(pred["lower_50"] <= pred["median"])
    assert np.all(pred["median"] <= pred["upper_50"])
    assert np.all(pred["upper_50"] <= pred["upper_90"])
    assert pred["median"].is_monotonic_increasing  # bigger runs, lower loss (rows are ordered big->small)
    assert pred.attrs["kind"] == "mean"
    # 7e10 parameters and 1.4e12 tokens lie 3.4 decades of compute beyond the demo's largest run
    # (1e9 x 4e10), and the notes say so
    assert len(pred.attrs["notes"]) == 1 and "beyond the fitted runs (up to 3.4 decades, in compute)" in pred.attrs["notes"][0]
    np.testing.assert_allclose(pred["decades_beyond_data"], [np.log10(7e10 * 1.4e12 / 4e19), 0, 0], atol=0.01)
    more = fit.predict(points, levels=(0.8, 0.95), kind="mean")
    assert {"lower_80", "upper_80", "lower_95", "upper_95"} <= set(more.columns)


def test_default_is_a_new_run_with_its_width_decomposed(fit, points):
    """A user asks what a new run will measure: that is the default, and its variance splits into
    parameters, model discrepancy (none in this fit) and noise."""
    pred = fit.predict(points)
    assert pred.attrs["kind"] == "observation"
    shares = pred[["share_parameters", "share_discrepancy", "share_noise"]].to_numpy()
    np.testing.assert_allclose(shares.sum(axis=1), 1.0)
    assert np.all(shares[:, 1] == 0) and np.all(shares[:, 2] > 0)


def test_observation_intervals_are_wider_than_mean(fit, points):
    mean = fit.predict(points, kind="mean")
    obs = fit.predict(points, kind="observation")
    assert np.all(obs["upper_90"] - obs["lower_90"] > mean["upper_90"] - mean["lower_90"])
    assert obs.attrs["kind"] == "observation"


def test_predict_is_reproducible_by_seed(fit, points):
    a = fit.predict(points, kind="observation", seed=3)
    pd.testing.assert_frame_equal(a, fit.predict(points, kind="observation", seed=3))
    b = fit.predict(points, kind="observation", seed=4)
    assert not np.array_equal(a["upper_90"], b["upper_90"])


def test_predict_return_draws(fit, points):
    pred, draws = fit.predict(points, return_draws=True)
    assert draws.dims == ("sample", "row") and draws.shape == (300, 3)
    np.testing.assert_allclose(np.median(draws.values, axis=0), pred["median"])


def test_unseen_family_falls_back_to_population(fit):
    pts = pd.DataFrame({"family": ["dense", "brand-new"], "params": [7e10, 7e10],
                        "tokens": [1.4e12, 1.4e12]})
    with pytest.warns(BayescaleWarning, match="brand-new"):
        pred = fit.predict(pts)
    assert any("brand-new" in n and "population" in n for n in pred.attrs["notes"])
    width = pred["upper_90"] - pred["lower_90"]
    assert width[1] > width[0]
    # a point without any family label is also a new family
    with pytest.warns(BayescaleWarning, match="population"):
        fit.predict(pts.drop(columns="family"))


def test_predict_bad_requests(fit, points):
    with pytest.raises(BayescaleError, match="kind"):
        fit.predict(points, kind="posterior")
    with pytest.raises(BayescaleError, match="between 0 and 1"):
        fit.predict(points, levels=(90,))
    with pytest.raises(BayescaleError, match="tokens"):
        fit.predict(points.drop(columns="tokens"))
    with pytest.raises(BayescaleError, match="must be > 0"):
        fit.predict(points.assign(params=-1.0))


# ---- save / load -------------------------------------------------------------------------------------

def test_round_trip_predictions_are_identical(fit, loaded, points):
    for kind in ("mean", "observation"):
        a = fit.predict(points, kind=kind, levels=(0.5, 0.9, 0.95), seed=5)
        b = loaded.predict(points, kind=kind, levels=(0.5, 0.9, 0.95), seed=5)
        pd.testing.assert_frame_equal(a, b, check_exact=True)
    new = pd.DataFrame({"family": ["unseen"], "params": [1e10], "tokens": [2e11]})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BayescaleWarning)
        pd.testing.assert_frame_equal(fit.predict(new, kind="observation"),
                                      loaded.predict(new, kind="observation"), check_exact=True)


def test_round_trip_summary_attrs_and_draws(fit, loaded):
    assert isinstance(loaded, Fit)
    pd.testing.assert_frame_equal(fit.summary(), loaded.summary(), check_exact=True)
    assert loaded.config == fit.config
    for key in ("law", "priors", "pooled", "data_hash", "seed", "versions", "logref", "coords"):
        assert loaded.config[key] == fit.config[key], key
    assert loaded.diagnostics == fit.diagnostics
    assert loaded.spec.key() == fit.spec.key()
    assert set(loaded.idata.groups()) == set(fit.idata.groups())
    for group in fit.idata.groups():
        a, b = fit.idata[group], loaded.idata[group]
        assert set(a.data_vars) == set(b.data_vars), group
        for name in a.data_vars:
            np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=f"{group}/{name}")
            assert a[name].dims == b[name].dims
    assert list(loaded.posterior["family"].values) == FAMILIES
    assert all(isinstance(v, str) for v in loaded.posterior["family"].values.tolist())


def test_round_trip_allocation(fit, loaded):
    pd.testing.assert_frame_equal(fit.optimal_allocation([1e21, 1e23]),
                                  loaded.optimal_allocation([1e21, 1e23]), check_exact=True)


def test_saved_file_is_netcdf_not_pickle(saved):
    head = saved.read_bytes()[:8]
    assert head.startswith(b"\x89HDF") or head.startswith(b"CDF")


def test_save_is_atomic(fit, tmp_path, monkeypatch):
    path = tmp_path / "fit.nc"
    path.write_bytes(b"previous fit")

    def broken(target, *args, **kwargs):
        with open(target, "wb") as fh:
            fh.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(fit.idata, "to_netcdf", broken)
    with pytest.raises(BayescaleError, match="disk full"):
        fit.save(path)
    assert path.read_bytes() == b"previous fit"  # the old file survives a failed save
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fit.nc"]  # no temporary left behind
    monkeypatch.undo()

    fit.save(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fit.nc"]
    assert bayescale.load(path).config == fit.config  # replaced on success


def test_save_to_missing_folder(fit, tmp_path):
    with pytest.raises(BayescaleError, match="does not exist"):
        fit.save(tmp_path / "nope" / "fit.nc")


def test_load_errors(tmp_path):
    with pytest.raises(BayescaleError, match="no fit file"):
        bayescale.load(tmp_path / "missing.nc")
    text = tmp_path / "table.nc"
    text.write_text("params,tokens,loss\n1,2,3\n")
    with pytest.raises(BayescaleError, match="is a text table .* not a saved fit; fit it first"):
        bayescale.load(text)
    prose = tmp_path / "notes.nc"   # text that is no table: the reader's own error
    prose.write_text("hello\n")
    with pytest.raises(BayescaleError, match="damaged or not a bayescale fit"):
        bayescale.load(prose)
    empty = tmp_path / "empty.nc"
    empty.write_bytes(b"")
    with pytest.raises(BayescaleError):
        bayescale.load(empty)
    other = tmp_path / "other.nc"
    az.from_dict(posterior={"x": np.zeros((1, 5))}).to_netcdf(other)
    with pytest.raises(BayescaleError, match="not written by bayescale"):
        bayescale.load(other)
    with pytest.raises(BayescaleError):
        bayescale.load(tmp_path)  # a folder


# ---- damaged files: one clear error, never a silent change ------------------------------------

def test_flipped_bytes_never_load_silently(fit, saved, points, tmp_path):
    """Eight bytes flipped at 50 offsets spread over the file: each copy either loads and predicts
    exactly as the original (the bytes were padding) or is refused with one BayescaleError."""
    raw = saved.read_bytes()
    want = fit.predict(points, seed=5)
    refused = 0
    for i, offset in enumerate(np.linspace(64, len(raw) - 16, 50).astype(int)):
        bad = bytearray(raw)
        bad[offset:offset + 8] = bytes(b ^ 0xFF for b in bad[offset:offset + 8])
        path = tmp_path / f"bad{i}.nc"
        path.write_bytes(bytes(bad))
        try:
            again = bayescale.load(path)
        except BayescaleError as exc:
            assert "damaged or not a bayescale fit" in str(exc) or "not written by bayescale" in str(exc), exc
            refused += 1
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", BayescaleWarning)
            pd.testing.assert_frame_equal(again.predict(points, seed=5), want, check_exact=True)
        for group in fit.idata.groups():   # every draw and label exactly as saved (cheaper than a summary)
            xr.testing.assert_identical(getattr(again.idata, group), getattr(fit.idata, group))
    assert refused > 0   # control: the damage was real somewhere


def test_edited_attributes_and_draws_are_refused(fit, saved, tmp_path):
    import json as json_

    idata = az.from_netcdf(saved)
    idata = az.InferenceData(**{g: getattr(idata, g).load() for g in idata.groups()})
    config = json_.loads(idata.posterior.attrs["bayescale"])
    config["logref"]["params"] += 1.0                    # a plausible edit: another reference scale
    idata.posterior.attrs["bayescale"] = json_.dumps(config)
    edited = tmp_path / "edited.nc"
    idata.to_netcdf(edited)
    with pytest.raises(BayescaleError, match="damaged or not a bayescale fit.*metadata does not match"):
        bayescale.load(edited)
    idata.posterior.attrs["bayescale"] = "{not json"
    idata.to_netcdf(edited)
    with pytest.raises(BayescaleError, match="damaged or not a bayescale fit"):
        bayescale.load(edited)
    # a file without checksums (as written before they existed) is still checked for finite draws
    clean = az.from_netcdf(saved)
    clean = az.InferenceData(**{g: getattr(clean, g).load() for g in clean.groups()})
    del clean.posterior.attrs["bayescale_checksums"]
    clean.posterior["E"][0, 0] = np.nan
    old = tmp_path / "old_nan.nc"
    clean.to_netcdf(old)
    with pytest.raises(BayescaleError, match="draws of E are not all finite"):
        bayescale.load(old)


def test_saved_mode_follows_the_umask_and_stale_temporaries_go(fit, tmp_path):
    import os
    import stat

    old = os.umask(0o022)
    try:
        path = fit.save(tmp_path / "fit.nc")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    # a save killed before its rename left a temporary named after its (now gone) process
    dead = tmp_path / ".fit.nc.999999999.abc.tmp"
    dead.write_bytes(b"half")
    mine = tmp_path / f".fit.nc.{os.getpid()}.xyz.tmp"   # a live process's: left alone
    mine.write_bytes(b"in progress")
    fit.save(path)
    assert not dead.exists() and mine.exists()


@pytest.mark.parametrize("kwargs, expected", [
    (dict(seed=2**32), r"seed must lie in \[0, 2\^32 - 1\]"),
    (dict(seed=2**70), r"seed must lie in"),
    (dict(seed=-1), r"seed must lie in"),
    (dict(seed=1.5), r"seed must be an integer"),
    (dict(target_accept=0), r"target_accept must lie strictly between 0 and 1"),
    (dict(target_accept=1.5), r"target_accept must lie strictly between 0 and 1"),
])
def test_bad_sampler_settings_fail_before_compiling(demo, kwargs, expected):
    with pytest.raises(BayescaleError, match=expected):
        bayescale.fit(demo, "chinchilla", progress=False, **kwargs)


def test_bad_levels_and_budgets_are_clear_errors(fit, points):
    with pytest.raises(BayescaleError, match="interval levels must be numbers"):
        fit.predict(points, levels=["a"])
    with pytest.raises(BayescaleError, match="compute budgets must be positive finite FLOPs"):
        fit.optimal_allocation("abc")

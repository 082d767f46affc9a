"""bayescale.compare: PSIS-LOO ranking of laws, the same-data check, held-out columns, the CLI,
and the probability / crossover of two fitted curves.

The LOO check must be able to fail: data simulated from farseer with a strongly N-dependent data
exponent (kappa = 0.15: beta goes from 0.18 to 0.50 over three decades of N) are fitted with
farseer and with chinchilla (2 chains x 300 + 300, fixed seed); chinchilla, which has one data
exponent, must lose by more than 4 standard errors of the ELPD difference.
"""
from __future__ import annotations

import copy
import json
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import brentq

import bayescale
from bayescale import BayescaleError, get_law
from bayescale.heldout import CalibrationResult
from bayescale.cli import main
from bayescale.comparison import crossover, prob_better
from bayescale.simulate import simulate
from fit_helpers import FARSEER_TRUTH, MAX_DIVERGENCES, Z_MAX, constructed_fit, fit_quietly, grid, z_scores

NOISE = {"sigma": 0.01, "nu": 30.0}


@pytest.fixture(scope="module")
def farseer_data():
    df, _ = simulate(get_law("farseer"), grid(1e7, 1e10, 1e9, 1e12, 8, 8), {**FARSEER_TRUTH, **NOISE}, seed=2)
    return df


@pytest.fixture(scope="module")
def fits(farseer_data):
    return {law: fit_quietly(farseer_data, law, seed=0) for law in ("farseer", "chinchilla")}


def test_loo_prefers_the_true_law(fits):
    result = bayescale.compare(fits["chinchilla"], fits["farseer"])
    t = result.table
    print(t.to_string())
    assert list(t.index) == ["farseer", "chinchilla"]  # best first
    assert {"elpd_loo", "elpd_se", "elpd_diff", "elpd_diff_se", "p_loo", "n_bad_k", "max_pareto_k"} <= set(t)
    assert t.loc["chinchilla", "elpd_diff"] > 4 * t.loc["chinchilla", "elpd_diff_se"]
    assert (t["n_obs"] == 64).all()
    assert json.loads(json.dumps(result.to_dict()))["ranking"][0]["name"] == "farseer"


def test_farseer_recovers_its_parameters(fits):
    """The recovery rule of tests/statistical/test_recovery.py on the farseer fit: z < 3.5, few
    divergences."""
    fit = fits["farseer"]
    z = z_scores(fit, FARSEER_TRUTH)
    assert max(z.values()) < Z_MAX, (z, fit.diagnostics)
    assert fit.diagnostics["divergences"] <= MAX_DIVERGENCES, fit.diagnostics


def test_fits_on_different_data_are_refused(fits):
    other = copy.deepcopy(fits["chinchilla"])
    other.config["data_hash"] = "0" * 64
    result = bayescale.compare(fits["farseer"], other, names=["a", "b"])
    assert any("same observed responses" in n for n in result.notes)  # hashes differ, rows equal
    other.idata.observed_data["y"] = other.idata.observed_data["y"] + 0.01
    with pytest.raises(BayescaleError, match="different data"):
        bayescale.compare(fits["farseer"], other)
    with pytest.raises(BayescaleError, match="at least two fits"):
        bayescale.compare(fits["farseer"])
    with pytest.raises(BayescaleError, match="one distinct name per fit"):
        bayescale.compare(fits["farseer"], fits["chinchilla"], names=["x", "x"])


def test_heldout_scores_join_the_table(fits):
    def result(crps):
        summary = {"n_heldout": 5, "crps": crps, "coverage": {"0.9": 0.8}, "median_are": 0.01, "elpd": 3.0}
        return CalibrationResult(law="x", holdout="top-compute:0.1", n_train=59, n_heldout=5, summary=summary,
                                 points=pd.DataFrame(), pit={}, fit=None, heldout=pd.DataFrame())

    t = bayescale.compare(fits["farseer"], fits["chinchilla"],
                          calibration={"farseer": result(0.01), "chinchilla": result(0.05)}).table
    assert t.loc["farseer", "heldout_crps"] == 0.01 and t.loc["chinchilla", "heldout_crps"] == 0.05
    with pytest.raises(BayescaleError, match="not among the fits"):
        bayescale.compare(fits["farseer"], fits["chinchilla"], calibration={"kaplan": result(0.1)})


def test_cli_compare(fits, tmp_path, capsys):
    paths = []
    for law, fit in fits.items():
        paths.append(str(fit.save(tmp_path / f"{law}.nc")))
    out = tmp_path / "cmp.json"
    assert main(["compare", *paths, "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "farseer" in text and "elpd_loo" in text
    ranking = json.loads(out.read_text())["ranking"]
    assert [r["name"] for r in ranking] == ["farseer", "chinchilla"]
    assert main(["compare", paths[0]]) == 2
    assert "at least two fits" in capsys.readouterr().err
    assert main(["compare", *paths, "--holdout", "top-compute:0.1"]) == 2
    assert "--data" in capsys.readouterr().err
    assert main(["compare", *paths, "--name", "F,C", "--json", str(out)]) == 0   # comma-separated, as --name F --name C
    capsys.readouterr()
    assert [r["name"] for r in json.loads(out.read_text())["ranking"]] == ["F", "C"]
    # two fits of one law are named by their files, not chinchilla#1 and #2
    twin = str(fits["chinchilla"].save(tmp_path / "chinchilla_again.nc"))
    assert main(["compare", paths[1], twin, "--json", str(out)]) == 0
    capsys.readouterr()
    assert {r["name"] for r in json.loads(out.read_text())["ranking"]} == {"chinchilla", "chinchilla_again"}
    # sampling options or a table without --holdout would do nothing: an error that says so
    assert main(["compare", *paths, "--chains", "8"]) == 2
    assert "--chains set how compare --holdout refits" in capsys.readouterr().err
    assert main(["compare", *paths, "--data", "runs.csv"]) == 2
    assert "--data set how compare --holdout refits" in capsys.readouterr().err


def test_a_fit_whose_sampling_checks_fail_is_ranked_with_a_note(fits, monkeypatch):
    from bayescale.results import Fit

    monkeypatch.setattr(Fit, "sampling_problems", lambda self: [])   # control: checks that pass, no note
    clean = bayescale.compare(fits["farseer"], fits["chinchilla"])
    assert not [n for n in clean.notes if "sampling checks fail" in n]
    monkeypatch.setattr(Fit, "sampling_problems",
                        lambda self: ["max r_hat 1.53 > 1.01"] if self.law.name == "chinchilla" else [])
    with pytest.warns(bayescale.BayescaleWarning, match="chinchilla: its sampling checks fail"):
        noted = bayescale.compare(fits["farseer"], fits["chinchilla"])
    assert any(n.startswith("chinchilla: its sampling checks fail (max r_hat 1.53") for n in noted.notes)


# ---- one curve against another (constructed posteriors, no sampling) ------------------------------

def _power_fit(E, log_A0, alpha):
    design = pd.DataFrame({"compute": np.geomspace(1e17, 1e21, 10)})
    n = len(E)
    return constructed_fit("power:compute", {"E": E, "log_A0": np.full(n, log_A0), "alpha": np.full(n, alpha)},
                           design)


def test_crossover_matches_the_analytic_crossing():
    """A = 1.8 + e^(-0.5 - 0.1 x), B = 1.5 + e^(0.3 - 0.3 x) (x = log C/C0): A is lower at small
    compute, B beyond the single crossing; with A's E spread over draws, the crossing gets an interval."""
    rng = np.random.default_rng(0)
    e_a = 1.8 + rng.uniform(-0.02, 0.02, 400)
    fit_a, fit_b = _power_fit(e_a, -0.5, 0.1), _power_fit(np.full(400, 1.5), 0.3, 0.3)
    c0 = np.exp(fit_a.spec.logref["compute"])

    def crossing(e):
        x = brentq(lambda x: e + np.exp(-0.5 - 0.1 * x) - 1.5 - np.exp(0.3 - 0.3 * x), -5, 30)
        return c0 * np.exp(x)

    truth = np.array([crossing(e) for e in e_a])
    res = crossover(fit_a, fit_b, along="compute", range=(1e16, 1e30), grid=400)
    s = res.summary
    assert s["p_cross"] == 1.0 and s["p_a_better_start"] == 1.0 and s["p_a_better_end"] == 0.0
    assert s["crossover_median"] == pytest.approx(np.median(truth), rel=0.03)
    assert s["crossover_lower"] == pytest.approx(np.quantile(truth, 0.05), rel=0.03)
    assert s["crossover_upper"] == pytest.approx(np.quantile(truth, 0.95), rel=0.03)
    assert s["crossover_lower"] < s["crossover_median"] < s["crossover_upper"]
    # P(A better) at one compute before and one after every draw's crossing
    points = pd.DataFrame({"compute": [truth.min() / 10, truth.max() * 10]}, index=["small", "big"])
    with warnings.catch_warnings(record=True) as quiet:
        warnings.simplefilter("always")
        p = prob_better(fit_a, fit_b, points)
    assert list(p["p_a_better"]) == [1.0, 0.0] and list(p.index) == ["small", "big"]   # the caller's index
    assert not [w for w in quiet if issubclass(w.category, bayescale.BayescaleWarning)]   # control
    # what predict says about the rows (e.g. a label not in the fit, predicted for a new group) is
    # passed on, not silenced
    original = fit_a.predict

    def predict(*args, **kwargs):
        warnings.warn("label(s) ['Dense'] not in the fit", bayescale.BayescaleWarning, stacklevel=2)
        return original(*args, **kwargs)

    fit_a.predict = predict
    with pytest.warns(bayescale.BayescaleWarning, match="'Dense'"):
        prob_better(fit_a, fit_b, points, labels_a={"family": "Dense"})
    del fit_a.predict
    # curves that never cross in the range
    none = crossover(fit_a, fit_b, along="compute", range=(1e16, truth.min() / 2))
    assert none.summary["p_cross"] == 0.0 and "crossover_median" not in none.summary and none.notes
    with pytest.raises(BayescaleError, match="needs the model size"):
        crossover(fit_a, fit_b, along="tokens", range=(1e9, 1e12))
    with pytest.raises(BayescaleError, match="along must be"):
        crossover(fit_a, fit_b, along="flops")


def test_held_out_refits_rebuild_each_saved_model_on_its_own_table(fits, farseer_data, monkeypatch):
    """compare's held-out refits are of the model each fit was made with (its discrepancy, here
    the law alone against a walk with a given prior; its column names), and only on the table it
    was fitted to."""
    import bayescale.heldout as heldout
    from bayescale.comparison import holdout_scores

    renamed = farseer_data.rename(columns={"loss": "val_loss"})
    walk_fit = fit_quietly(renamed, "chinchilla", discrepancy="LogNormal(-4, 1)", columns={"loss": "val_loss"},
                           chains=1, warmup=100, draws=100)
    seen = []
    monkeypatch.setattr(heldout, "calibrate", lambda df, law, holdout, **kw: seen.append(kw))
    holdout_scores([fits["chinchilla"]], farseer_data, "top-compute:0.1")
    holdout_scores([walk_fit], renamed, "top-compute:0.1")
    none, walk = seen
    assert none["discrepancy"] == "none" and walk["discrepancy"].startswith("LogNormal(loc=-4")
    assert walk["columns"] == {"loss": "val_loss"} and none["columns"] is None
    assert walk["target_accept"] == walk_fit.config["target_accept"] != none["target_accept"]
    assert walk["pool"] == none["pool"] == "none"
    # another table (here the fitted one less its last run) is refused before any refit
    with pytest.raises(BayescaleError, match="not fitted to this table"):
        holdout_scores([fits["chinchilla"]], farseer_data.iloc[:-1], "top-compute:0.1")
    assert len(seen) == 2
    # a fit that dropped a repeated row is refitted on the same table read the same way
    repeated = pd.concat([farseer_data, farseer_data.iloc[[-1]]], ignore_index=True)
    dropped = fit_quietly(repeated, "chinchilla", discrepancy="none", duplicates="drop", chains=1, warmup=100, draws=100)
    assert dropped.config["duplicates"] == "drop"
    holdout_scores([dropped], repeated, "top-compute:0.1")
    assert seen[-1]["duplicates"] == "drop"

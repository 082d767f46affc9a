"""End-to-end held-out calibration (bayescale.heldout.calibrate) and the CLI commands
`bayescale calibrate` and `bayescale report`, on synthetic data with known parameters.

Data: chinchilla, 2 families x (6 N x 5 D) = 60 runs, family-specific log_A0, 2 % Student-t noise
on log loss. Holdout: the top 20 % by compute (12 runs). One calibration run (2 chains x 300 + 300,
50 bootstrap refits, both baselines) is shared by the module.

Statistical sanity check, which must be able to fail: with the true law the 95 % interval of a new
observation covers >= 0.7 of the held-out runs (offline, seed 0: 1.0); the same calibration with a
deliberately wrong law (kaplan-n: a pure power law in N, no data term, no E) must score much worse
(offline: CRPS 0.33 against 0.038, mean-curve 95 % coverage 0.08 against 0.58).
"""
from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

import bayescale
from bayescale.heldout import CalibrationResult, calibrate
from bayescale.cli import main
from bayescale.errors import BayescaleError, BayescaleWarning
from bayescale.simulate import simulate
from fit_helpers import BUDGET, grid

TRUTH = {"E": 1.69, "log_A0": {"a": -0.26, "b": 0.05}, "alpha": 0.34, "log_B0": -0.43, "beta": 0.28,
         "sigma": 0.02, "nu": 30.0}
SCORE_KEYS = {"coverage", "median_are", "crps", "interval_score_90", "elpd"}
JSON_KEYS = {"law", "n_train", "n_heldout", "mean_curve", "baselines"} | SCORE_KEYS
LEVEL_KEYS = ["0.5", "0.8", "0.9", "0.95"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def design() -> pd.DataFrame:
    one = grid()
    return pd.concat([one.assign(family="a"), one.assign(family="b")], ignore_index=True)


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    df, _ = simulate(bayescale.get_law("chinchilla"), design(), TRUTH, seed=3)
    return df


@pytest.fixture(scope="module")
def result(data) -> CalibrationResult:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BayescaleWarning)   # low ESS on a small budget is expected
        return calibrate(data, "chinchilla", "top-compute:0.2", seed=0, n_boot=50, **BUDGET)


@pytest.fixture(scope="module")
def wrong(data) -> CalibrationResult:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BayescaleWarning)
        return calibrate(data, "kaplan-n", "top-compute:0.2", seed=0, baselines=(), **BUDGET)


@pytest.fixture(scope="module")
def report_dir(result, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    result.write_report(out)
    return out


def check_scores(s: dict, where: str) -> None:
    assert SCORE_KEYS <= set(s), (where, sorted(s))
    assert list(s["coverage"]) == LEVEL_KEYS, where
    cov = list(s["coverage"].values())
    assert all(0.0 <= c <= 1.0 for c in cov), (where, cov)
    assert cov == sorted(cov), (where, cov)                     # wider intervals cover at least as much
    assert s["median_are"] >= 0 and s["crps"] > 0 and s["interval_score_90"] > 0, where
    assert np.isfinite(s["elpd"]), where


# ---- the summary ----------------------------------------------------------------------------------

def test_summary_has_every_json_key(result, data):
    s = result.summary
    assert JSON_KEYS <= set(s), sorted(JSON_KEYS - set(s))
    assert s["law"] == "chinchilla" and s["holdout"] == "top-compute:0.2"
    assert s["n_train"] + s["n_heldout"] == len(data) == 60
    assert s["n_heldout"] == 12 and (result.n_train, result.n_heldout) == (48, 12)
    check_scores(s, "bayescale")
    check_scores(s["mean_curve"], "mean curve")
    assert "observation" in s["kind"] and "mean" in s["mean_curve"]["kind"]   # says which is which
    assert set(s["baselines"]) == {"bootstrap", "no-pool"}
    for name, b in s["baselines"].items():
        check_scores(b, name)
    assert s["baselines"]["no-pool"]["n_scored"] == 12
    assert s["pooled"] == {"log_A0": "family"}


def test_heldout_rows_are_the_largest_compute(result, data):
    c_all = np.sort(6 * data["params"] * data["tokens"])
    c_held = 6 * result.heldout["params"] * result.heldout["tokens"]
    assert c_held.min() >= c_all[-12] and len(result.points) == 12
    assert {"bayescale_median", "bayescale_pit", "bayescale_crps", "bootstrap_median"} <= set(result.points)
    assert set(result.pit) == {"bayescale (new observation)", "bootstrap", "no-pool"}
    assert all(((p >= 0) & (p <= 1)).all() and len(p) == 12 for p in result.pit.values())


def test_table_rows(result):
    t = result.table()
    assert list(t.index) == ["bayescale (new observation)", "bayescale (mean curve)", "bootstrap", "no-pool"]
    assert [f"cov_{k}" for k in LEVEL_KEYS] + ["median_are", "crps", "interval_score_90", "elpd"] == list(t.columns)


def test_new_observation_intervals_cover_and_a_wrong_law_fails(result, wrong):
    right, bad = result.summary, wrong.summary
    check_scores(bad, "kaplan-n")
    assert right["coverage"]["0.95"] >= 0.7, right["coverage"]
    assert right["coverage"]["0.9"] >= 0.6, right["coverage"]
    # the wrong law: far worse accuracy and sharpness, and a mean curve that misses the truth
    assert bad["crps"] > 3 * right["crps"], (bad["crps"], right["crps"])
    assert bad["median_are"] > 3 * right["median_are"], (bad["median_are"], right["median_are"])
    assert bad["interval_score_90"] > 2 * right["interval_score_90"]
    assert bad["elpd"] < right["elpd"] - 10
    assert bad["mean_curve"]["coverage"]["0.95"] < 0.5 <= right["mean_curve"]["coverage"]["0.95"]
    assert bad["coverage"]["0.95"] < right["coverage"]["0.95"]


def test_bad_explicit_mask_is_an_error(data):
    with pytest.raises(BayescaleError, match="one boolean per row"):
        calibrate(data, "chinchilla", np.ones(len(data), dtype=bool))
    with pytest.raises(BayescaleError, match="one boolean per row"):
        calibrate(data, "chinchilla", np.zeros(5, dtype=bool))


# ---- files ---------------------------------------------------------------------------------------

def test_report_directory(report_dir):
    html = (report_dir / "report.html").read_text()
    for name in ("fit.png", "reliability.png", "pit.png"):
        png = (report_dir / name).read_bytes()
        assert png[:8] == PNG_MAGIC and len(png) > 5_000, name
    # the page carries the plots itself (it opens offline, without the PNG files beside it)
    assert html.count("src='data:image/png;base64,") == 3 and "src='fit.png'" not in html
    assert "bootstrap" in html and "no-pool" in html and "held-out points" in html


def test_write_json_parses(result, tmp_path):
    path = result.write_json(tmp_path / "out.json")
    loaded = json.loads(path.read_text())
    assert JSON_KEYS <= set(loaded)
    assert loaded["coverage"] == pytest.approx(result.summary["coverage"])
    assert loaded["baselines"]["bootstrap"]["crps"] == pytest.approx(result.summary["baselines"]["bootstrap"]["crps"])


# ---- the CLI -------------------------------------------------------------------------------------

def test_cli_calibrate_writes_json_and_report(result, data, tmp_path, capsys):
    # same data and sampler settings as the `result` fixture (requested so that it runs first): the
    # compiled samplers of the main and no-pool fits are reused, so this costs sampling time only
    csv = tmp_path / "runs.csv"
    data.to_csv(csv, index=False)
    out_json, out_dir = tmp_path / "out.json", tmp_path / "rep"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BayescaleWarning)
        code = main(["calibrate", str(csv), "--law", "chinchilla", "--holdout", "top-compute:0.2",
                     "--chains", str(BUDGET["chains"]), "--warmup", str(BUDGET["warmup"]),
                     "--draws", str(BUDGET["draws"]), "--n-boot", "20",
                     "--discrepancy", BUDGET["discrepancy"], "--json", str(out_json), "--report", str(out_dir),
                     "--quiet"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "48 training runs, 12 held out" in printed and "bayescale (new observation)" in printed
    summary = json.loads(out_json.read_text())
    assert JSON_KEYS <= set(summary) and summary["n_heldout"] == 12
    # the same seed and sampler as the Python API: the same posterior, so the same headline scores
    assert summary["crps"] == pytest.approx(result.summary["crps"], rel=1e-6)
    for name in ("report.html", "fit.png", "reliability.png", "pit.png"):
        assert (out_dir / name).stat().st_size > 0, name


def test_cli_natural_holdout_on_a_csv_is_a_user_error(data, tmp_path, capsys):
    csv = tmp_path / "runs.csv"
    data.to_csv(csv, index=False)
    code = main(["calibrate", str(csv), "--holdout", "natural", "--json", str(tmp_path / "x.json")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("bayescale: error:"), err
    assert "natural" in err[0] and "dataset:NAME" in err[0]
    assert not (tmp_path / "x.json").exists()


def test_cli_unknown_holdout_is_a_user_error(data, tmp_path, capsys):
    csv = tmp_path / "runs.csv"
    data.to_csv(csv, index=False)
    assert main(["calibrate", str(csv), "--holdout", "biggest:3"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown holdout 'biggest:3'" in err[0] and "top-compute:FRACTION" in err[0]


def test_the_report_says_when_the_sampling_checks_fail(result, tmp_path, monkeypatch):
    from bayescale.results import Fit

    assert not result.sampling_warnings() or "Warning" in result.sampling_warnings()[0]
    monkeypatch.setattr(Fit, "sampling_problems", lambda self: ["max r_hat 1.031 > 1.01"])
    page = result.write_report(tmp_path / "bad").read_text()
    head = page[:page.index("How to read the scores")]
    assert "sampling checks of the fit to the training runs fail (max r_hat 1.031 &gt; 1.01)" in head
    monkeypatch.setattr(Fit, "sampling_problems", lambda self: [])   # control: nothing to say
    page = result.write_report(tmp_path / "good").read_text()
    assert "sampling checks" not in page


def test_what_loading_fixed_and_a_per_group_holdout_are_recorded(data, result):
    """A table's own notes (e.g. a dataset's dropped outliers) and a per-group holdout reach the
    summary, the JSON and the title."""
    noted = data.copy()
    noted.attrs["notes"] = ["5 outliers dropped"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BayescaleWarning)
        per_family = calibrate(noted, "chinchilla", "top-compute:0.2", by="family", baselines=(), **BUDGET)
    assert per_family.summary["holdout"] == "top-compute:0.2 per family"
    assert per_family.summary["notes"][0] == "5 outliers dropped"
    assert per_family.n_heldout == 2 * round(0.2 * len(data) / 2)   # the top 0.2 of each family
    assert result.summary["holdout"] == "top-compute:0.2" and "5 outliers dropped" not in result.summary["notes"]


def test_the_explanation_does_not_credit_a_discrepancy_that_did_not_help(result):
    import copy

    s = result.summary   # its law-alone comparison set by hand: better, then worse than the fit
    better, worse = copy.deepcopy(result), copy.deepcopy(result)
    better.summary["law_alone"] = {"width_ratio_90": 1.4, "crps": s["crps"] / 2, "coverage": {"0.9": 1.0}}
    worse.summary["law_alone"] = {"width_ratio_90": 1.4, "crps": s["crps"] * 2, "coverage": {"0.9": 0.2}}
    assert "law alone scored as well or better" in better.width_explanation()
    assert "lets the curve bend" not in better.width_explanation()
    assert "lets the curve bend" in worse.width_explanation()   # control: where it helped, it is said


def test_repeated_rows_are_dropped_once_before_the_split(data, tmp_path, monkeypatch):
    """calibrate --duplicates drop: the repeat is said once, with its file line, and the split and
    its counts are of the runs fitted (it reported one training run too many, and named later
    rows by lines of the file they were not on). Control: without repeats nothing is dropped."""
    import bayescale.inference as inference
    from bayescale.cli import read_table

    path = tmp_path / "dup.csv"
    pd.concat([data, data.iloc[[0]]], ignore_index=True).to_csv(path, index=False)
    table = read_table(str(path))
    seen = []

    def stop(train, *a, **kw):
        seen.append(train)
        raise KeyboardInterrupt   # the split is what is checked: no fit needed

    monkeypatch.setattr(inference, "fit", stop)
    with pytest.warns(BayescaleWarning, match=rf"dropped 1 exact duplicate row\(s\): row {len(data)} "
                                              rf"\(line {len(data) + 2} of dup.csv") as caught:
        with pytest.raises(KeyboardInterrupt):
            calibrate(table, "chinchilla", duplicates="drop", baselines=())
    assert sum("duplicate" in str(w.message) for w in caught) == 1
    (train,) = seen
    n_test = int(np.ceil(0.1 * len(data)))
    assert len(train) == len(data) - n_test and "source_file" not in train.attrs
    with pytest.raises(KeyboardInterrupt):
        calibrate(read_table(str(path)), "chinchilla", duplicates="keep", baselines=())
    assert len(seen[1]) == len(data) + 1 - n_test

"""The command line, in process: outputs, and exit status 2 with one line on stderr for every user
error. One small CLI fit of the synthetic demo is shared by the module."""
from __future__ import annotations

import contextlib
import io
import json
import shutil
import subprocess
import warnings

import numpy as np
import pandas as pd
import pytest

import bayescale
from bayescale.cli import main
from cli_helpers import run, user_error
from bayescale.datasets import demo_data
from bayescale.models import REGISTRY

TINY = ["--chains", "1", "--warmup", "150", "--draws", "150", "--quiet"]
INTERVAL_KEYS = ["lower_90", "lower_50", "median", "upper_50", "upper_90"]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("cli")


@pytest.fixture(scope="module")
def csv(workdir):
    path = workdir / "runs.csv"
    demo_data().to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def fitted(workdir, csv):
    """(path of the saved fit, stdout of `bayescale fit`)"""
    out = workdir / "fit.nc"
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        rc = main(["fit", str(csv), "--law", "chinchilla", "--seed", "1", *TINY, "--out", str(out)])
    assert rc == 0, stderr.getvalue()
    return out, stdout.getvalue()


def write_csv(workdir, name, df) -> str:
    path = workdir / name
    df.to_csv(path, index=False)
    return str(path)


# ---- laws ------------------------------------------------------------------------------------------

def test_laws(capsys):
    rc, out, err = run(capsys, "laws")
    assert rc == 0 and err == ""
    for name in REGISTRY:
        assert f"{name}:" in out or f"{name} " in out
    assert "L = E + A·(N/N0)^-alpha + B·(D/D0)^-beta" in out
    assert "power:tokens" in out
    rc, out, _ = run(capsys, "laws", "farseer", "power:tokens")   # only the laws named, in any form
    assert rc == 0 and out.startswith("farseer: ") and "power:tokens: L = E + A·(D/D0)^-alpha" in out
    assert "chinchilla" not in out
    assert "unknown law 'nope'" in user_error(capsys, "laws", "nope")


def test_a_comment_line_where_the_header_belongs_is_named(capsys, workdir):
    path = workdir / "commented.csv"
    path.write_text("# my runs\nparams,tokens,loss\n1e8,2e9,3.0\n")
    assert "line 1 is a comment ('# my runs')" in user_error(capsys, "fit", path, "--out", workdir / "c.nc")


def test_laws_json(capsys):
    rc, out, _ = run(capsys, "laws", "--json")
    assert rc == 0
    laws = json.loads(out)
    assert {d["name"] for d in laws} == set(REGISTRY)
    for d in laws:
        assert d["formula"] and d["inputs"] and d["params"]
        assert all("prior" in v for v in d["params"].values())


# ---- fit, predict, summary, allocate ------------------------------------------------------------------

def test_fit_prints_a_summary_and_saves(fitted):
    path, out = fitted
    assert path.exists()
    assert "law chinchilla" in out and "n_obs=52" in out
    for row in ("E", "alpha", "beta", "A", "B", "log_A0[dense]"):
        assert f"\n{row} " in out, row
    assert "diagnostics:" in out and f"saved {path}" in out


def _predict_json(capsys, path, *extra):
    rc, out, err = run(capsys, "predict", path, "--at", "params=7e10,tokens=1.4e12,family=dense",
                       "--at", "params=1e9,tokens=2e10,family=wide", "--json", *extra)
    assert rc == 0, err
    return json.loads(out)


def test_predict_json(capsys, fitted):
    res = _predict_json(capsys, fitted[0], "--kind", "mean")
    assert res["law"] == "chinchilla" and res["kind"] == "mean"
    assert len(res["notes"]) == 1 and "beyond the fitted runs" in res["notes"][0]
    assert _predict_json(capsys, fitted[0])["kind"] == "observation"   # a new run, by default
    preds = res["predictions"]
    assert len(preds) == 2
    for row in preds:
        values = [row[k] for k in INTERVAL_KEYS]
        assert values == sorted(values), row
        assert 1.0 < row["median"] < 5.0
    assert preds[0]["params"] == 7e10 and preds[0]["family"] == "dense"
    assert preds[0]["median"] < preds[1]["median"]


def test_predict_observation_is_wider(capsys, fitted):
    """Inside the demo's range, where a new run's noise is a visible part of its width (far out the
    model discrepancy dominates and the two differ by Monte-Carlo error only)."""
    def predict(kind):
        rc, out, err = run(capsys, "predict", fitted[0], "--at", "params=3e8,tokens=6e9,family=dense",
                           "--at", "params=1e8,tokens=2e9,family=wide", "--json", "--kind", kind)
        assert rc == 0, err
        return json.loads(out)["predictions"]

    mean, obs = predict("mean"), predict("observation")
    for m, o in zip(mean, obs):
        assert o["upper_90"] - o["lower_90"] > m["upper_90"] - m["lower_90"]
        assert o["upper_50"] - o["lower_50"] > m["upper_50"] - m["lower_50"]


def test_predict_levels_text_and_data_file(capsys, fitted, workdir):
    rc, out, _ = run(capsys, "predict", fitted[0], "--at", "params=7e10,tokens=1.4e12", "--level", "0.8")
    assert rc == 0
    assert "lower_80" in out and "upper_80" in out and "observation of loss" in out
    assert "note:" in out  # no family given: the population is used, and said so
    pts = write_csv(workdir, "points.csv", pd.DataFrame({"n": [7e10], "tokens": [1.4e12], "family": ["dense"]}))
    rc, out, _ = run(capsys, "predict", fitted[0], "--data", pts, "--col", "params=n", "--json")
    assert rc == 0 and len(json.loads(out)["predictions"]) == 1


def test_summary(capsys, fitted):
    rc, out, _ = run(capsys, "summary", fitted[0])
    assert rc == 0
    for row in ("E", "alpha", "beta", "A", "B", "log_A0[wide]"):
        assert f"\n{row} " in out, row
    assert "r_hat" in out and "ess_bulk" in out and "diagnostics:" in out
    # N0 and D0 of the formula: the data's own (geometric mean), which the priors on log_A0, ... are about
    fit = bayescale.load(fitted[0])
    n0, d0 = (float(np.exp(fit.logref[k])) for k in ("params", "tokens"))
    assert f"reference scales (near the data's centre; the formula is written about them): N0 = {n0:.4g}, D0 = {d0:.4g}" in out
    assert 0.5 < n0 / np.exp(np.mean(np.log(fit.fitted_rows()["params"]))) < 2


def test_summary_json_matches_the_table(capsys, fitted, monkeypatch):
    from bayescale.results import Fit

    rc, out, _ = run(capsys, "summary", fitted[0], "--json")
    got = json.loads(out)
    assert rc == 0 and got["law"] == "chinchilla" and got["response"] == "loss"
    fit = bayescale.load(fitted[0])
    table = fit.summary()
    assert set(got["parameters"]) == set(table.index)   # every row of the text table, group rows too
    assert got["parameters"]["alpha"]["50%"] == pytest.approx(table.loc["alpha", "50%"])
    assert got["diagnostics"]["divergences"] == fit.diagnostics["divergences"]
    assert got["diagnostics"]["max_rhat"] is None   # one chain: no r_hat, and JSON has no NaN
    assert got["discrepancy"]["prior"].startswith("LogNormal") and got["notes"] == fit.notes
    assert got["sampling_problems"] == fit.sampling_problems()
    assert got["reference_scales"] == pytest.approx({"N0": np.exp(fit.logref["params"]), "D0": np.exp(fit.logref["tokens"])})
    monkeypatch.setattr(Fit, "sampling_problems", lambda self: ["max r_hat 1.532 > 1.01"])
    assert json.loads(run(capsys, "summary", fitted[0], "--json")[1])["sampling_problems"] == ["max r_hat 1.532 > 1.01"]


def test_fit_says_failing_sampling_checks_once(capsys, workdir, csv, caplog):
    """A one-chain fit fails the checks: fit warns once (stderr) and its summary does not repeat it;
    ArviZ's one-chain shape warning is not shown (r_hat is NaN there, and the checks say why)."""
    rc, out, err = run(capsys, "fit", csv, "--law", "chinchilla", *TINY, "--out", workdir / "once.nc")
    assert rc == 0
    assert (out + err).lower().count("sampling looks unreliable") == 1 and "r_hat not computable" in err
    assert "Shape validation" not in out + err + caplog.text
    rc, out, _ = run(capsys, "summary", workdir / "once.nc")   # control: summary has no warning to lean on
    assert "sampling looks UNRELIABLE" in out


def test_summary_says_when_the_sampling_checks_fail(capsys, fitted, monkeypatch):
    from bayescale.results import Fit

    monkeypatch.setattr(Fit, "sampling_problems", lambda self: ["max r_hat 1.532 > 1.01"])
    rc, out, _ = run(capsys, "summary", fitted[0])
    assert rc == 0 and "sampling looks UNRELIABLE: max r_hat 1.532 > 1.01" in out
    monkeypatch.setattr(Fit, "sampling_problems", lambda self: [])   # control: checks that pass say nothing
    rc, out, _ = run(capsys, "summary", fitted[0])
    assert rc == 0 and "UNRELIABLE" not in out


def test_allocate(capsys, fitted):
    rc, out, _ = run(capsys, "allocate", fitted[0], "--compute", "1e21,1e23")
    assert rc == 0 and "params_median" in out and "tokens_upper_90" in out
    rc, out, _ = run(capsys, "allocate", fitted[0], "--compute", "1e21", "--compute", "1e23",
                     "--label", "family=dense", "--json")
    assert rc == 0
    payload = json.loads(out)
    assert payload["law"] == "chinchilla" and "weights" not in payload and isinstance(payload["notes"], list)
    rows = payload["allocations"]
    assert [r["compute"] for r in rows] == [1e21, 1e23]
    assert rows[0]["params_median"] < rows[1]["params_median"]
    for r in rows:
        assert r["params_lower_90"] <= r["params_median"] <= r["params_upper_90"]
    # the loss column is the curve, and budgets far from the runs are said to be far (the demo's runs
    # span 1.2e16-2.4e20 FLOP: 1e21 and 1e23 lie 0.6 and 2.6 decades beyond)
    assert any(n.startswith("loss is the law's expected loss at N* and D*") for n in payload["notes"])
    far = [n for n in payload["notes"] if "beyond the fitted runs' compute" in n]
    assert len(far) == 1 and far[0].startswith("2 budget(s)") and "up to 2.6 decades" in far[0]
    rc, out, _ = run(capsys, "allocate", fitted[0], "--compute", "1e19", "--json")   # control: inside
    assert not any("beyond the fitted runs' compute" in n for n in json.loads(out)["notes"])


# ---- user errors: exit 2, one line, no traceback ---------------------------------------------------------

def _bad_tables():
    good = demo_data()
    def cell(col, value, row=3):
        df = good.copy()
        df[col] = df[col].astype(object)
        df.loc[row, col] = value
        return df
    tiny = good.copy()
    tiny.loc[0, "family"] = "tiny"  # one run of its own
    return {
        "missing": (good.drop(columns="tokens"), [], "missing column"),
        "non-numeric": (cell("params", "7B"), [], "must be numeric"),
        "nan": (cell("loss", float("nan")), [], "NaN or infinite"),
        "inf": (cell("tokens", float("inf")), [], "NaN or infinite"),
        "zero": (cell("params", 0), [], "must be > 0"),
        "negative-loss": (cell("loss", -1.0), [], "must be > 0"),
        "small-group": (tiny, ["--pool", "log_A0=family", "--pool", "alpha=family"], "fewer points"),
        "few-rows": (good.head(3), [], "free parameters"),
        "duplicates": (pd.concat([good, good.head(2)]), [], "duplicate row"),
        "bad-mapping": (good, ["--col", "params=n_params"], "column mapping"),
    }


@pytest.mark.parametrize("case", list(_bad_tables()))
def test_fit_bad_table(capsys, workdir, case):
    df, extra, expected = _bad_tables()[case]
    path = write_csv(workdir, f"bad-{case}.csv", df)
    msg = user_error(capsys, "fit", path, *extra, *TINY, "--out", workdir / f"{case}.nc")
    assert expected in msg
    assert not (workdir / f"{case}.nc").exists()


def test_fit_options_that_fix_the_table(capsys, workdir):
    """--duplicates drop and --col get past validation (stopped by --chains 0 before sampling)."""
    good = demo_data()
    dup = write_csv(workdir, "dup.csv", pd.concat([good, good.head(2)]))
    assert "chains must be" in user_error(capsys, "fit", dup, "--duplicates", "drop", "--chains", "0",
                                          "--out", workdir / "x.nc")
    renamed = write_csv(workdir, "renamed.csv", good.rename(columns={"params": "n_params"}))
    assert "chains must be" in user_error(capsys, "fit", renamed, "--col", "params=n_params",
                                          "--chains", "0", "--out", workdir / "x.nc")


@pytest.mark.parametrize("args, expected", [
    (["--law", "chinchila"], "unknown law 'chinchila'; choose one of ['accuracy-sigmoid', 'bnsl', 'chinchilla', "),
    (["--law", "power:flops"], "unknown option 'flops'"),
    (["--pool", "gamma=family"], "cannot pool ['gamma']"),
    (["--pool", "alpha=team"], "groupings are"),
    (["--pool", "alpha"], "--pool expects NAME=VALUE"),
    (["--prior", "alpha=Normal(0.3, -1)"], "invalid prior"),
    (["--prior", "alpha=Gaussian(0.3, 0.1)"], "unknown prior family 'Gaussian'"),
    (["--prior", "alpha=Normal(0.3, 0.1"], "cannot read prior"),
    (["--prior", "alpha=Normal(mu, 0.1)"], "arguments must be numbers"),
    (["--prior", "alpha=Uniform(1, 0)"], "invalid prior"),
    (["--prior", "alpha=Normal(0, 1e999)"], "invalid prior"),
    (["--prior", "gamma=Normal(0, 1)"], "no parameter 'gamma'"),
    (["--prior", "alpha"], "--prior expects NAME=DIST"),
    (["--col", "params"], "--col expects NAME=VALUE"),
    (["--chains", "0"], "chains must be a positive integer"),
    (["--seed", "x"], "invalid int value"),
    (["--duplicates", "maybe"], "invalid choice"),
])
def test_fit_bad_options(capsys, workdir, csv, args, expected):
    msg = user_error(capsys, "fit", csv, *args, "--out", workdir / "never.nc")
    assert expected in msg
    if "unknown law" in expected:
        for name in REGISTRY:
            assert repr(name) in msg


def test_fit_out_is_checked_before_fitting(capsys, workdir, csv):
    assert "is a folder" in user_error(capsys, "fit", csv, "--out", workdir)
    assert "does not exist" in user_error(capsys, "fit", csv, "--out", workdir / "no" / "fit.nc")


def test_missing_and_unreadable_files(capsys, workdir, csv):
    assert "no such file" in user_error(capsys, "fit", workdir / "nope.csv", "--out", workdir / "x.nc")
    empty = workdir / "empty.csv"
    empty.write_text("")
    assert "cannot read" in user_error(capsys, "fit", empty, "--out", workdir / "x.nc")
    assert "no fit file" in user_error(capsys, "predict", workdir / "nope.nc", "--at", "params=1e9,tokens=1e10")
    # a table where a fit belongs is named as a table, with the command that fits it
    msg = user_error(capsys, "summary", csv)
    assert "is a text table" in msg and "not a saved fit" in msg and "bayescale fit" in msg
    assert "HDF" not in msg and "signature" not in msg
    assert "is a text table" in user_error(capsys, "allocate", csv, "--compute", "1e21")
    garbage = workdir / "garbage.nc"   # control: bytes that are neither a table nor netCDF
    garbage.write_bytes(bytes(range(256)) * 4)
    assert "damaged or not a bayescale fit" in user_error(capsys, "summary", garbage)


@pytest.mark.parametrize("args, expected", [
    (["--at", "params"], "--at expects NAME=VALUE"),
    (["--at", "params=1e9;tokens=1e10"], "--at params expects a number, got '1e9;tokens=1e10'"),
    (["--at", "params=abc,tokens=1e10"], "--at params expects a number, got 'abc'; write 7e10, 70B"),
    (["--at", "params=1e9"], "--at lacks ['tokens']: this law needs ['params', 'tokens']; give them in --at"),
    (["--at", "params=-1e9,tokens=1e10"], "must be > 0 (sizes, losses and log-scale inputs are positive), but the --at point is -1e+09"),
    (["--at", "params=1e9,tokens=1e10", "--level", "1.5"], "between 0 and 1"),
    (["--at", "params=1e9,tokens=1e10", "--level", "ninety"],
     "--level expects interval levels between 0 and 1, got 'ninety'"),
    (["--at", "params=1e9,tokens=1e10", "--level", "0.5,0.9x"], "got '0.9x'"),
    (["--at", "params=1e9,tokens=1e10", "--kind", "noise"], "invalid choice"),
    ([], "give the points to predict"),
    (["--at", "params=70B,tokens=1.4T,params=1B"], "--at gives params twice"),
    (["--at", "params=70B,tokens=1.4T,compute=1e20"], "compute=1e+20 disagrees with 6·params·tokens = 5.88e+23"),
    (["--at", "params=70B,compute=5.88e23"], "give tokens=1.4e+12 (compute / (6·params)) instead of compute"),
])
def test_predict_bad_points(capsys, fitted, args, expected):
    assert expected in user_error(capsys, "predict", fitted[0], *args)


def test_predict_takes_a_compute_that_agrees_with_params_and_tokens(capsys, fitted):
    """Control for the compute checks above: compute within 1 % of 6ND is accepted."""
    rc, out, _ = run(capsys, "predict", fitted[0], "--at", "params=70B,tokens=1.4T,compute=5.9e23", "--json")
    assert rc == 0 and json.loads(out)["predictions"][0]["compute"] == 5.9e23


@pytest.mark.parametrize("args, expected", [
    (["--compute", "lots"], "--compute expects FLOP budgets, got 'lots'"),
    (["--compute", ","], "--compute expects FLOP budgets, got ','"),
    (["--compute", "1e22,3Q"], "--compute expects FLOP budgets, got '3Q'"),
    (["--compute=-1e21"], "compute budgets must be positive"),
    (["--compute", "1e21", "--label", "team=x"], "unknown label"),
    (["--compute", "1e21", "--label", "task=x"], "this fit does not vary by ['task'] (it varies by ['family'])"),
    (["--compute", "1e21", "--label", "family"], "--label expects NAME=VALUE"),
])
def test_allocate_bad_requests(capsys, fitted, args, expected):
    assert expected in user_error(capsys, "allocate", fitted[0], *args)


def test_usage_errors_are_one_line(capsys):
    assert "required" in user_error(capsys)
    assert "--out" in user_error(capsys, "fit", "runs.csv")
    assert "unrecognized arguments" in user_error(capsys, "laws", "--bogus")


# ---- the installed console script --------------------------------------------------------------------------

def test_console_script(workdir):
    exe = shutil.which("bayescale")
    if exe is None:
        pytest.skip("the bayescale console script is not on PATH")
    done = subprocess.run([exe, "laws"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "chinchilla" in done.stdout
    done = subprocess.run([exe, "fit", str(workdir / "nope.csv"), "--out", str(workdir / "x.nc")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [f"bayescale: error: no such file: {workdir / 'nope.csv'}; "
                                                "give a CSV or Parquet path, or dataset:NAME"]
    assert done.stdout == ""



def test_tables_with_other_separators_parquet_names_and_repeated_columns(capsys, workdir):
    demo = demo_data().iloc[:12]
    semi = workdir / "semi.csv"
    demo.to_csv(semi, index=False, sep=";")
    tab = workdir / "tab.tsv"
    demo.to_csv(tab, index=False, sep="\t")
    pq = workdir / "really_parquet.csv"
    demo.to_parquet(pq)
    from bayescale.cli import read_table
    for path in (semi, tab, pq):
        pd.testing.assert_frame_equal(read_table(str(path)), demo.reset_index(drop=True), check_dtype=False)
    dup = workdir / "dup.csv"
    dup.write_text("params,tokens,loss,loss\n1e8,2e9,3.1,3.2\n")
    msg = user_error(capsys, "fit", dup, "--out", workdir / "dup.nc")
    assert "repeated column names ['loss']" in msg


def test_output_places_are_checked_before_any_fitting(capsys, workdir, csv):
    afile = workdir / "a_file.txt"
    afile.write_text("x")
    assert "is a file" in user_error(capsys, "calibrate", csv, "--report", afile)
    assert "does not exist" in user_error(capsys, "calibrate", csv, "--json", workdir / "no" / "x.json")
    assert "is a file" in user_error(capsys, "report", workdir / "fit.nc", "--out", afile)
    assert "does not exist" in user_error(capsys, "demo", "--out", workdir / "no" / "demo.nc")


def test_at_names_are_checked_and_labels_kept_as_typed(capsys, fitted):
    msg = user_error(capsys, "predict", fitted[0], "--at", "params=7e10,tokens=1.4e12,famly=dense")
    assert "unknown column(s) ['famly']" in msg and "'family'" in msg
    from argparse import Namespace

    from bayescale.cli import _points
    pts = _points(Namespace(data=None, at=["params=7e10,tokens=1.4e12,family=1"], col=None), None)
    assert pts.loc[0, "family"] == "1" and pts.loc[0, "params"] == 7e10
    # repeated --at: a point without the label another point gives is refused, naming the point
    msg = user_error(capsys, "predict", fitted[0], "--at", "params=7e10,tokens=1.4e12,family=dense",
                     "--at", "params=7e9,tokens=1e11")
    assert "--at params=7e9,tokens=1e11 lacks ['family']" in msg
    two = _points(Namespace(data=None, at=["params=7e10,tokens=1.4e12,family=a", "params=7e9,tokens=1e11,family=b"],
                            col=None), None)
    assert list(two["family"]) == ["a", "b"]   # control: the same columns on every point


def test_strict_fit_fails_on_bad_diagnostics_and_keeps_the_fit(capsys, workdir, csv):
    """One chain of 150 draws cannot pass the diagnostics (no r_hat, low ESS): --strict exits 3,
    the fit is saved for inspection; without --strict the same fit exits 0 (the control)."""
    out = workdir / "strict.nc"
    rc, stdout, err = run(capsys, "fit", csv, *TINY, "--discrepancy", "none", "--strict", "--out", out)
    assert rc == 3 and "--strict: sampling looks unreliable" in err and out.exists()
    rc, _, _ = run(capsys, "fit", csv, *TINY, "--discrepancy", "none", "--out", out)
    assert rc == 0
    rc, _, err = run(capsys, "calibrate", csv, *TINY, "--discrepancy", "none", "--baselines", "", "--strict")
    assert rc == 3 and "--strict: sampling looks unreliable" in err
    assert "target_accept must lie strictly between 0 and 1" in user_error(
        capsys, "fit", csv, "--target-accept", "1.5", "--out", workdir / "x.nc")


def test_warnings_as_errors_keep_the_fit():
    import warnings as w

    import bayescale
    from bayescale.errors import UnreliableSampling, UnreliableSamplingError
    df = demo_data()
    with w.catch_warnings():
        w.simplefilter("error", UnreliableSampling)
        with pytest.raises(UnreliableSampling) as caught:
            bayescale.fit(df, chains=1, warmup=50, draws=50, progress=False, discrepancy="none")
    assert caught.value.fit is not None and caught.value.fit.n_draws == 50
    with pytest.raises(UnreliableSamplingError) as strict:
        bayescale.fit(df, chains=1, warmup=50, draws=50, progress=False, discrepancy="none", strict=True)
    assert strict.value.fit.n_draws == 50


# ---- help, usage errors, numbers and lists --------------------------------------------------------------

def _subcommands():
    """(words, parser) of every subcommand, nested ones included (datasets export, ...)."""
    import argparse

    from bayescale.cli import build_parser

    out, todo = [], [((), build_parser())]
    while todo:
        words, parser = todo.pop()
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    out.append(((*words, name), sub))
                    todo.append(((*words, name), sub))
    return sorted(out, key=lambda item: item[0])


def _help(capsys, *words) -> str:
    with pytest.raises(SystemExit) as done:
        main([*words, "--help"])
    assert done.value.code == 0
    return capsys.readouterr().out


# `datasets` only groups its commands
SUBCOMMANDS = [words for words, sub in _subcommands() if words != ("datasets",)]


@pytest.mark.parametrize("words", SUBCOMMANDS, ids=" ".join)
def test_every_subcommand_help_has_examples_and_defaults(capsys, words):
    text = _help(capsys, *words)
    assert "\nexamples:\n" in text
    examples = text.split("\nexamples:\n", 1)[1].strip().splitlines()
    assert 1 <= len(examples) <= 3
    assert all(line.strip().startswith("bayescale " + " ".join(words)) for line in examples), examples
    parser = dict(_subcommands())[words]
    flat = " ".join(text.split()).replace("- ", "-")   # words cut at hyphens by wrapping
    for action in parser._actions:   # every option with a default says it
        d = action.default
        if action.option_strings and not (d is None or d is False or d == "" or d == "==SUPPRESS=="):
            assert f"(default: {action.default})" in flat or "default" in (action.help or ""), action.dest


def test_top_level_help_has_examples(capsys):
    text = _help(capsys)
    assert "bayescale fit runs.csv" in text and "bayescale COMMAND --help" in text
    for words in SUBCOMMANDS:
        if len(words) == 1:
            assert f"    {words[0]} " in text or f"    {words[0]}\n" in text, words


@pytest.mark.parametrize("words", [("fit",), ("calibrate",), ("sbc",)])
def test_law_help_lists_the_registered_laws(capsys, words):
    flat = " ".join(_help(capsys, *words).split()).replace("- ", "-")   # words cut at hyphens by wrapping
    for name in REGISTRY:
        assert name in flat, name
    assert "power:tokens" in flat and "bayescale laws" in flat


@pytest.mark.parametrize("argv, command", [
    (["fit", "runs.csv", "--bogus", "--out", "x.nc"], "bayescale fit"),
    (["fit", "runs.csv", "--out", "x.nc", "--duplicates", "maybe"], "bayescale fit"),
    (["predict", "fit.nc", "--at", "params=1e9", "--levle", "0.9"], "bayescale predict"),
    (["summary", "a.nc", "b.nc"], "bayescale summary"),
    (["datasets", "export", "demo", "--out", "x.csv", "--bogus"], "bayescale datasets export"),
    (["datasets", "export", "demo"], "bayescale datasets export"),
    (["laws", "--bogus"], "bayescale laws"),
    (["fitt", "runs.csv"], "bayescale"),
    ([], "bayescale"),
])
def test_usage_errors_name_the_subcommand_help(capsys, argv, command):
    msg = user_error(capsys, *argv)
    assert msg.endswith(f"(see `{command} --help`)"), msg


@pytest.mark.parametrize("text, value", [
    ("70B", 7e10), ("1.4T", 1.4e12), ("500M", 5e8), ("3k", 3e3), ("3K", 3e3), ("2G", 2e9),
    ("1P", 1e15), ("7b", 7e9), ("1.4t", 1.4e12), ("1e24", 1e24), ("1.5E3", 1500.0), ("0.9", 0.9),
    (".5", 0.5), ("-1e9", -1e9), (" 70B ", 7e10), ("1e3k", 1e6),
])
def test_numbers_take_si_suffixes(text, value):
    from bayescale.cli import parse_number

    assert parse_number(text, "--at params") == value


@pytest.mark.parametrize("text, hint", [
    ("70X", ""), ("70m", "milli"), ("3p", "pico"), ("70 B", ""), ("B", ""), ("1.4.2", ""), ("", ""),
    ("nan", ""), ("inf", ""), ("1e", ""), ("70BB", ""), ("0x10", ""),
])
def test_bad_numbers_are_one_clear_error(text, hint):
    from bayescale.cli import parse_number
    from bayescale.errors import BayescaleError

    with pytest.raises(BayescaleError) as caught:
        parse_number(text, "--at params")
    msg = str(caught.value)
    assert "\n" not in msg and msg.startswith(f"--at params expects a number, got {text.strip()!r}; write ")
    assert "70B" in msg and "1.4T" in msg and "B/G = 1e9" in msg and hint in msg


def test_numbers_without_si_refuse_suffixes():
    from bayescale.cli import parse_number
    from bayescale.errors import BayescaleError

    assert parse_number("0.95", "--target-accept", si=False) == 0.95
    with pytest.raises(BayescaleError, match="got '1k'; write a plain number"):
        parse_number("1k", "--target-accept", si=False)


@pytest.mark.parametrize("argv, option", [
    (["allocate", "f.nc", "--compute", "1e22,,1e23"], "--compute"),
    (["predict", "f.nc", "--at", "params=1B", "--level", "0.5,"], "--level"),
    (["fit", "runs.csv", "--law", "chinchilla,", "--out", "x.nc"], "--law"),
    (["fit", "runs.csv", "--offset", "family,,task", "--out", "x.nc"], "--offset"),
    (["calibrate", "runs.csv", "--baselines", "bootstrap,,no-pool"], "--baselines"),
    (["compare", "a.nc", "b.nc", "--name", "a,,b"], "--name"),
])
def test_an_empty_item_in_a_comma_list_is_an_error_before_any_file_is_read(capsys, argv, option):
    # none of these files exist: the list is checked first, and a left-out value is not skipped
    msg = user_error(capsys, *argv)
    assert msg.startswith(f"bayescale: error: {option} '") and "has an empty item between its commas" in msg, msg
    assert "no such file" not in msg and "no fit file" not in msg
    # control: the same lists without the empty item are read (and then the missing file is the error)
    fixed = [a.replace(",,", ",").rstrip(",") if a.count(",") else a for a in argv]
    assert "empty item" not in user_error(capsys, *fixed)


def test_lists_and_repeats_parse_alike():
    from bayescale.cli import build_parser

    parse = build_parser().parse_args
    assert parse(["predict", "f.nc", "--level", "0.5,0.9"]).level == [0.5, 0.9]
    assert parse(["predict", "f.nc", "--level", "0.5", "--level", "0.9"]).level == [0.5, 0.9]
    assert parse(["predict", "f.nc", "--level", "0.5", "--level", "0.8,0.9"]).level == [0.5, 0.8, 0.9]
    assert parse(["predict", "f.nc"]).level is None
    assert parse(["allocate", "f.nc", "--compute", "1e22,3e23", "--compute", "5P"]).compute == [1e22, 3e23, 5e15]
    assert parse(["fit", "r.csv", "--out", "x.nc", "--target-accept", "0.95"]).target_accept == 0.95
    assert parse(["fit", "r.csv", "--out", "x.nc"]).target_accept is None


def test_predict_says_each_warning_once(capsys, fitted):
    """A prediction for a family the fit has not seen warns (on stderr) that its parameters and walk
    are drawn from the population; the same text is not printed again as a note, while the JSON
    keeps every note. The control: the notes that were not warned are still printed."""
    path, _ = fitted
    rc, out, err = run(capsys, "predict", path, "--at", "params=7e10,tokens=1.4e12,family=new")
    assert rc == 0
    warned = [line for line in err.splitlines() if "not in the fit" in line]
    assert len(warned) == 2 and all(line.startswith("bayescale: warning: family label(s) ['new']") for line in warned)
    assert "not in the fit" not in out
    assert "note: 1 row(s) lie beyond the fitted runs" in out
    rc, out, _ = run(capsys, "predict", path, "--at", "params=7e10,tokens=1.4e12,family=new", "--json")
    assert sum("not in the fit" in n for n in json.loads(out)["notes"]) == 2


def test_predict_takes_si_points_and_level_lists(capsys, fitted):
    plain = _predict_json(capsys, fitted[0], "--level", "0.5", "--level", "0.9")
    short = json.loads(run(capsys, "predict", fitted[0], "--at", "params=70B,tokens=1.4T,family=dense",
                           "--at", "params=1B,tokens=20B,family=wide", "--json", "--level", "0.5,0.9")[1])
    assert short["predictions"] == plain["predictions"]   # same points, same seed: the same draws


def test_allocate_takes_si_budgets(capsys, fitted):
    rc, out, _ = run(capsys, "allocate", fitted[0], "--compute", "100P,1e21", "--json")
    assert rc == 0 and [r["compute"] for r in json.loads(out)["allocations"]] == [1e17, 1e21]


def test_at_labels_under_the_users_column_names_stay_text(capsys):
    from argparse import Namespace

    from bayescale.cli import _points
    pts = _points(Namespace(data=None, at=["params=7B,tokens=2T,team=1B"], col=["family=team"]), None)
    assert pts.loc[0, "team"] == "1B" and pts.loc[0, "params"] == 7e9 and pts.loc[0, "tokens"] == 2e12



def test_calibrate_says_which_baselines_it_did_not_run(capsys, workdir):
    """A rate law gets no Huber + bootstrap baseline (it fits losses), and a table without groups
    no no-pool baseline: both are said, in the output and the report, not silently left out."""
    rows = pd.DataFrame({"compute": np.geomspace(1e18, 1e23, 10), "trials": 200.0, "chance": 0.25,
                         "p_correct": np.linspace(0.27, 0.8, 10)})
    path = workdir / "acc.csv"
    rows.to_csv(path, index=False)
    rc, out, _ = run(capsys, "calibrate", path, "--law", "accuracy-sigmoid", "--holdout", "top-compute:0.2",
                     *TINY, "--discrepancy", "none", "--report", workdir / "acc_report")
    assert rc == 0
    assert "baseline bootstrap not run: the Huber + bootstrap baseline is for losses" in out
    assert "baseline no-pool not run: no law parameter is pooled" in out
    # the report's fit plot draws the accuracy curve with the runs' chance level (it needed the column)
    page = (workdir / "acc_report" / "report.html").read_text()
    assert (workdir / "acc_report" / "fit.png").exists() and "baseline bootstrap not run" in page


def test_group_labels_are_read_as_written(workdir):
    """'007' and '0007' are two families, 'NA' is a label; a pandas guess would merge the first two
    into the number 7 and turn 'NA' into a missing label. A column mapped onto a grouping keeps its
    text too; an empty cell stays missing (validate names it). Control: pandas' own reading."""
    from bayescale.cli import read_table

    path = workdir / "labels.csv"
    path.write_text("params,tokens,loss,family,Task\n1e8,2e9,3.1,007,01\n2e8,2e9,3.0,0007,NA\n4e8,2e9,2.9,NA,\n")
    table = read_table(str(path), {"task": "Task"})
    assert table["family"].tolist() == ["007", "0007", "NA"]
    assert table["Task"].tolist()[:2] == ["01", "NA"] and pd.isna(table["Task"].iloc[2])
    assert table["params"].dtype.kind == "f"
    assert pd.read_csv(path)["family"].nunique() == 1          # control: 7, 7 and NaN


def test_calibrate_checks_the_bootstrap_count_before_fitting(capsys, csv):
    for bad in ("0", "-3"):
        msg = user_error(capsys, "calibrate", csv, "--n-boot", bad, "--quiet")
        assert f"n_boot must be a positive integer, got {bad}" in msg


def test_calibrate_checks_the_baselines_before_fitting(capsys, csv, monkeypatch):
    import bayescale.inference as inference

    def no_fit(*args, **kwargs):
        raise AssertionError("fitted before the baselines were checked")

    monkeypatch.setattr(inference, "fit", no_fit)
    msg = user_error(capsys, "calibrate", csv, "--baselines", "bootstrp", "--quiet")
    assert "unknown baseline 'bootstrp'" in msg and "'no-pool'" in msg
    with pytest.raises(AssertionError, match="before the baselines"):   # control: a known name gets to the fit
        main(["calibrate", str(csv), "--baselines", "bootstrap", "--quiet"])


def test_calibrate_checks_the_whole_table_as_fit_does_before_fitting(capsys, workdir, monkeypatch):
    """A renamed response column gets fit's error (with the --col hint), and a bad value is named
    by its row in the file, before any fit and before the split."""
    import bayescale.inference as inference
    from bayescale.datasets.demo import demo_data

    def no_fit(*args, **kwargs):
        raise AssertionError("fitted before the table was checked")

    monkeypatch.setattr(inference, "fit", no_fit)
    runs = demo_data()
    renamed = write_csv(workdir, "renamed.csv", runs.rename(columns={"loss": "val_loss"}))
    assert "--col loss=val_loss" in user_error(capsys, "calibrate", renamed, "--quiet")
    big = int(np.argmax(runs["params"] * runs["tokens"]))   # a held-out run
    broken = write_csv(workdir, "nan_loss.csv", runs.assign(loss=runs["loss"].where(runs.index != big, np.nan)))
    assert f"column 'loss' has 1 NaN or infinite value(s), first at row {big}" in \
        user_error(capsys, "calibrate", broken, "--quiet")
    with pytest.raises(AssertionError, match="table was checked"):   # control: a good table reaches the fit
        main(["calibrate", write_csv(workdir, "runs_ok.csv", runs), "--quiet"])


def test_json_as_a_flag_or_a_file_is_explained_where_it_is_the_other(capsys):
    """Quick commands print JSON (--json is a flag); long ones write it (--json FILE). Each mistake
    says which this command is; control: an unknown word is still just unrecognised."""
    msg = user_error(capsys, "predict", "f.nc", "--at", "params=1B,tokens=20B", "--json", "out.json")
    assert "predict --json prints JSON and takes no file name ('out.json')" in msg and "--json > out.json" in msg
    msg = user_error(capsys, "calibrate", "runs.csv", "--json")
    assert "--json takes the file to write, e.g. --json out.json" in msg
    msg = user_error(capsys, "predict", "f.nc", "--at", "params=1B,tokens=20B", "out.json")
    assert "unrecognized arguments: out.json" in msg and "redirect" not in msg


def test_sbc_says_why_simulations_failed_and_gives_no_verdict_on_a_selected_few(capsys, monkeypatch, tmp_path):
    import bayescale.sbc as sbc_module
    from bayescale.cli import main
    from bayescale.sbc import SBCResult

    def fake(law, design, **kw):
        failed = kw["n_sims"] // 2
        return SBCResult(law=law, n_sims=kw["n_sims"], n_draws=99, bins=10, ranks={"E": np.arange(10)},
                         pvalues={"E": 0.5}, chi2={"E": 1.0}, truths={}, n_divergent_fits=0, divergences=np.zeros(0),
                         failures=[(i, "simulated data the fit refuses: loss 0") for i in range(failed)],
                         settings={"design_rows": 10, "discrepancy": kw["discrepancy"]})

    monkeypatch.setattr(sbc_module, "sbc", fake)
    out_json = tmp_path / "sbc.json"
    assert main(["sbc", "power", "--n-sims", "20", "--quiet", "--json", str(out_json)]) == 1
    out = capsys.readouterr().out
    assert "failed: 10 simulation(s): simulated data the fit refuses: loss 0" in out
    assert "no verdict: 10 of 20 simulations failed" in out and "not rejected" not in out
    assert "model: the law alone" in out
    saved = json.loads(out_json.read_text())
    assert saved["passes"] is False and saved["failures"] == {"simulated data the fit refuses: loss 0": 10}
    assert main(["sbc", "power", "--n-sims", "200", "--quiet", "--discrepancy", "auto"]) == 1
    assert "model: the law with the discrepancy walk (auto)" in capsys.readouterr().out


def test_a_registered_dataset_takes_its_loaders_options_in_its_name():
    """dataset:NAME?OPTION=VALUE reaches the loader (as `datasets export --option` does), so the
    outlier note's exclude_outliers=false can be followed on any command; the natural holdout
    follows the rows loaded. Control: without the option the loader's default."""
    from bayescale.cli import _natural_holdout, dataset_source, read_table
    from bayescale.datasets.paths import find_home
    from bayescale.errors import BayescaleError

    assert dataset_source("dataset:gadre_overtraining?eval=all,exclude_outliers=false") == (
        "gadre_overtraining", {"eval": "all", "exclude_outliers": False})
    assert dataset_source("dataset:demo") == ("demo", {})
    with pytest.raises(BayescaleError, match="empty item"):
        dataset_source("dataset:demo?a=1,,b=2")
    if find_home() is None:
        pytest.skip("public datasets not found (set BAYESCALE_DATA)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kept = read_table("dataset:chinchilla_epoch?exclude_outliers=false")
        default = read_table("dataset:chinchilla_epoch")
    assert len(kept) == len(default) + 5
    mask = _natural_holdout("natural", "dataset:chinchilla_epoch?exclude_outliers=false", kept, "")
    assert len(mask) == len(kept)


def test_predict_reads_points_under_the_names_the_fit_was_made_with(capsys, workdir):
    """fit --col params=n_params,family=team: predict --at n_params=...,team=... and --data with
    those columns need no --col again (the fit keeps its map); schema names still work."""
    mine = demo_data().rename(columns={"params": "n_params", "family": "team"})
    path = write_csv(workdir, "mine.csv", mine)
    out = workdir / "mine.nc"
    rc, _, err = run(capsys, "fit", path, "--col", "params=n_params,family=team", *TINY, "--discrepancy", "none",
                     "--out", out)
    assert rc == 0, err
    rc, theirs, err = run(capsys, "predict", out, "--at", "n_params=7e10,tokens=1.4e12,team=dense", "--json")
    assert rc == 0, err
    rc, schema, _ = run(capsys, "predict", out, "--at", "params=7e10,tokens=1.4e12,family=dense", "--json")
    a, b = (json.loads(t)["predictions"][0] for t in (theirs, schema))
    assert a["median"] == pytest.approx(b["median"], rel=1e-12) and a["n_params"] == 7e10
    rows = write_csv(workdir, "rows.csv", pd.DataFrame({"n_params": [7e10], "tokens": [1.4e12], "team": ["dense"]}))
    rc, from_file, err = run(capsys, "predict", out, "--data", rows, "--json")
    assert rc == 0, err
    assert json.loads(from_file)["predictions"][0]["median"] == pytest.approx(b["median"], rel=1e-12)
    rc, _, err = run(capsys, "predict", out, "--at", "size=7e10,tokens=1.4e12")   # control: a name no map knows
    assert rc == 2 and "unknown column(s) ['size']" in err

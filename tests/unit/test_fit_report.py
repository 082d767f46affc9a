"""`bayescale report`: one self-contained page whose first lines give the prediction at each target
(the numbers `bayescale predict` and `bayescale allocate` print), then the plot, the sampler's
checks in words, the parameters and the priors."""
from __future__ import annotations

import json
import re
import warnings

import numpy as np
import pandas as pd
import pytest

import bayescale
from bayescale.cli import main
from cli_helpers import user_error
from bayescale.models import get_law
from bayescale.simulate import simulate

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TRUTH = {"E": 1.69, "log_A0": -0.26, "alpha": 0.34, "log_B0": -0.43, "beta": 0.28, "sigma": 0.01, "nu": 30.0}


def g(v) -> str:
    return f"{float(v):.4g}".replace("e+", "e")


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    n, r = np.meshgrid(np.geomspace(3e7, 1e9, 5), [10.0, 20.0, 40.0], indexing="ij")
    design = pd.DataFrame({"params": n.ravel(), "tokens": (n * r).ravel()})
    df, _ = simulate(get_law("chinchilla"), design, TRUTH, seed=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bayescale.BayescaleWarning)
        fit = bayescale.fit(df, "chinchilla", chains=2, warmup=300, draws=300, seed=1, progress=False)
    path = tmp_path_factory.mktemp("fit") / "fit.nc"
    fit.save(path)
    return path


def _page(out) -> str:
    return (out / "report.html").read_text()


def test_the_page_opens_with_predict_and_allocate_numbers(saved, tmp_path, capsys):
    at = "params=7e10,tokens=1.4e12"
    assert main(["predict", str(saved), "--at", at, "--json"]) == 0
    row = json.loads(capsys.readouterr().out)["predictions"][0]
    assert main(["allocate", str(saved), "--compute", "1e24", "--json"]) == 0
    alloc = json.loads(capsys.readouterr().out)["allocations"][0]
    out = tmp_path / "r"
    assert main(["report", str(saved), "--out", str(out), "--at", at, "--compute", "1e24"]) == 0
    assert "report.html" in capsys.readouterr().out
    page = _page(out)
    first = page[:page.index("<h2>From the data")]   # the numbers come before the plot
    assert f"<b>{g(row['median'])}</b>" in first
    assert f"90% interval [{g(row['lower_90'])}, {g(row['upper_90'])}]" in first
    assert f"50% interval [{g(row['lower_50'])}, {g(row['upper_50'])}]" in first
    assert "decades beyond the fitted runs" in first and "Of the squared 90 % width" in first
    assert f"N* = {g(alloc['params_median'])} parameters" in first and f"D* = {g(alloc['tokens_median'])}" in first
    # control: another seed gives other draws, so the comparison above is not vacuous
    assert main(["predict", str(saved), "--at", at, "--json", "--seed", "7"]) == 0
    other = json.loads(capsys.readouterr().out)["predictions"][0]
    assert g(other["lower_90"]) != g(row["lower_90"]) or g(other["upper_90"]) != g(row["upper_90"])


def test_the_page_is_self_contained_and_says_what_it_shows(saved, tmp_path):
    out = tmp_path / "r"
    assert main(["report", str(saved), "--out", str(out)]) == 0
    page = _page(out)
    sources = re.findall(r"src='([^']*)'", page)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    assert (out / "fit.png").read_bytes()[:8] == PNG_MAGIC
    assert "No target was given" in page and "<b>Target 2</b>" in page   # 10x and 100x the largest run
    assert "N0 = " in page and "D0 = " in page and "LogNormal" in page     # reference scales and priors
    assert "<h2>Diagnostics</h2>" in page and "r_hat" in page
    assert "<table" in page and "<th></th>" not in page.split("priors")[1].split("</table>")[0]


def test_failing_checks_are_a_visible_warning(tmp_path):
    design = pd.DataFrame({"params": np.geomspace(1e7, 1e10, 10)})
    df, _ = simulate(get_law("power"), design, {"E": 1.8, "log_A0": -0.5, "alpha": 0.3, "sigma": 0.01, "nu": 30.0},
                     seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bayescale.BayescaleWarning)
        poor = bayescale.fit(df, "power", chains=2, warmup=30, draws=30, progress=False)   # too short
        good = bayescale.fit(df, "power", chains=4, warmup=1000, draws=1000, progress=False, discrepancy="none")
    from bayescale.report import fit_report

    assert poor.sampling_problems() and not good.sampling_problems()
    bad_page = fit_report(poor, tmp_path / "poor").read_text()
    assert "class='warning'>Warning: the sampler's checks fail" in bad_page
    good_page = fit_report(good, tmp_path / "good").read_text()   # control
    assert "class='warning'" not in good_page and "The sampler's checks pass." in good_page
    assert "No compute-optimal allocation" not in good_page   # not asked for


def test_an_accuracy_fit_reports_per_task_targets(tmp_path, saved):
    compute = np.geomspace(1e18, 1e22, 8)
    design = pd.concat([pd.DataFrame({"compute": compute, "task": t, "trials": 500, "chance": 0.25})
                        for t in ("a", "b")]).reset_index(drop=True)
    sim, _ = simulate(get_law("accuracy-sigmoid"), design, seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = bayescale.fit(sim, "accuracy-sigmoid", chains=2, warmup=200, draws=200, progress=False)
    from bayescale.report import fit_report

    targets = pd.DataFrame({"compute": [1e23], "task": ["b"], "chance": [0.25]})
    page = fit_report(fit, tmp_path / "mean", targets, [1e24]).read_text()
    expected = fit.predict(targets, kind="mean", seed=0)
    assert f"<b>{g(expected['median'].iloc[0])}</b>" in page and "task = b" in page
    assert "give trials=... in --at" in page and "not a law of parameters and tokens" in page
    with_trials = targets.assign(trials=500)   # a measured score: the observation model's spread too
    page = fit_report(fit, tmp_path / "obs", with_trials).read_text()
    measured = fit.predict(with_trials, seed=0)
    assert f"<b>{g(measured['median'].iloc[0])}</b>" in page and "a new run will measure accuracy" in page
    assert measured["upper_90"].iloc[0] - measured["lower_90"].iloc[0] > \
        expected["upper_90"].iloc[0] - expected["lower_90"].iloc[0]
    from bayescale.report import plot_accuracy

    png = plot_accuracy(fit, sim, tmp_path / "acc.png", labels={"task": "b"})
    assert png.stat().st_size > 10_000
    with pytest.raises(bayescale.BayescaleError, match="downstream fit of one input"):   # a loss fit: no traceback
        plot_accuracy(bayescale.load(saved), sim, tmp_path / "loss.png")


def test_bad_budget_and_unknown_target_column_are_clear_errors(saved, tmp_path, capsys):
    assert "--compute expects FLOP budgets" in user_error(capsys, "report", saved, "--out", tmp_path / "a",
                                                          "--compute", "lots")
    assert "unknown column(s) ['parms']" in user_error(capsys, "report", saved, "--out", tmp_path / "b",
                                                       "--at", "parms=7e10,tokens=1e12")

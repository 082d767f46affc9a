"""`bayescale.plan` / `bayescale plan`: which runs would narrow a big run's interval most per FLOP."""
from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

import bayescale
from bayescale.cli import main
from bayescale.errors import UnreliableSampling
from bayescale.models import get_law
from bayescale.next_runs import _gaussian, _importance
from bayescale.simulate import simulate

TRUTH = {"E": 1.69, "log_A0": -0.26, "alpha": 0.34, "log_B0": -0.43, "beta": 0.28, "sigma": 0.01, "nu": 30.0}
TARGET = {"params": 7e10, "tokens": 1.4e12}


@pytest.fixture(scope="module")
def fit():
    n, r = np.meshgrid(np.geomspace(3e7, 1e9, 5), [10.0, 20.0, 40.0], indexing="ij")
    design = pd.DataFrame({"params": n.ravel(), "tokens": (n * r).ravel()})
    df, _ = simulate(get_law("chinchilla"), design, TRUTH, seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bayescale.BayescaleWarning)
        return bayescale.fit(df, "chinchilla", chains=2, warmup=400, draws=500, seed=0, progress=False)


@pytest.mark.parametrize("method", ["importance", "gaussian"])
def test_a_run_near_the_target_teaches_more_than_one_inside_the_data(fit, method):
    candidates = pd.DataFrame({"params": [5e8, 2e10], "tokens": [1e10, 4e11]})   # inside / near the target
    result = bayescale.plan(fit, TARGET, candidates, batch=2, method=method)
    assert result.method == method
    by_size = result.candidates.set_index("params")
    assert by_size.loc[2e10, "width_90_after"] < 0.8 * result.width_now
    assert by_size.loc[5e8, "width_90_after"] > 0.97 * result.width_now   # control: it teaches little
    widths = result.chosen["width_90_after"].to_numpy()
    assert len(widths) >= 1 and np.all(np.diff(widths) <= 1e-12) and widths[-1] < result.width_now


@pytest.mark.parametrize("method", ["importance", "gaussian"])
def test_later_picks_only_count_what_earlier_picks_did_not_teach(fit, method):
    twins = pd.DataFrame({"params": [2e10, 2.02e10, 3e8], "tokens": [4e11, 4.04e11, 6e9]})
    result = bayescale.plan(fit, TARGET, twins, batch=2, cost=lambda t: np.ones(len(t)), method=method)
    alone = result.candidates.set_index("params")["variance_removed_share"]
    first, second = result.chosen["params"].tolist()
    assert first in (2e10, 2.02e10)
    # after one twin, the other adds far less than it would alone (it repeats the same lesson)
    var_now = result.width_now ** 2
    after_one = result.chosen["width_90_after"].iloc[0] ** 2
    after_two = result.chosen["width_90_after"].iloc[1] ** 2
    assert (after_one - after_two) / var_now < 0.5 * alone.loc[second]


def test_the_budget_is_kept_and_the_default_grid_spans_ratios(fit):
    result = bayescale.plan(fit, TARGET, budget=1e21)
    assert result.chosen["cost"].sum() <= 1e21 and len(result.chosen) >= 1
    ratios = (result.candidates["tokens"] / result.candidates["params"]).round(3)
    assert ratios.nunique() >= 5
    assert (6 * result.candidates["params"] * result.candidates["tokens"] < 6 * 7e10 * 1.4e12).all()


def test_the_two_estimates_agree_on_a_simple_case():
    """Jointly Gaussian draws: the importance estimate of the variance left matches the Gaussian formula."""
    rng = np.random.default_rng(0)
    cov = np.array([[1.0, 0.6, 0.1], [0.6, 1.0, 0.0], [0.1, 0.0, 1.0]])
    m = rng.multivariate_normal(np.zeros(3), cov, size=4000)
    noise = np.array([0.05, 0.3, 0.3])
    y = m + rng.normal(size=m.shape) * np.sqrt(noise)
    gauss, imp = _gaussian(m, noise), _importance(m, y, noise, seed=1)
    for batch in ([1], [2], [1, 2]):   # as shares of what is left: the importance estimate is a squared width
        assert imp(batch)[0] / imp([])[0] == pytest.approx(gauss(batch)[0] / gauss([])[0], rel=0.15), batch
    assert gauss([1])[0] < 0.8 * gauss([])[0] and gauss([2])[0] > 0.97 * gauss([])[0]   # informative / not


def test_a_run_that_teaches_nothing_removes_nothing_under_heavy_tails():
    """The target's new-run value has Student-t noise (3 degrees of freedom) and the candidate is
    independent of it: over 8 seeds the importance estimate must leave the width as it is, up to
    its Monte-Carlo error. The control is what plan did before: the weighted variance of the
    reweighted subsample against the variance of every draw, which credited (or charged) every
    candidate with the difference between the two, by up to a fifth here."""
    rng = np.random.default_rng(4)
    n = 4000
    m = np.column_stack([rng.normal(0, 0.05, n), rng.normal(0, 0.05, n)])
    y = m + np.column_stack([0.02 * rng.standard_t(3, n), rng.normal(0, 0.01, n)])
    noise = np.mean((y - m) ** 2, axis=0)
    left = np.array([(lambda imp: imp([1])[0] / imp([])[0])(_importance(m, y, noise, seed)) for seed in range(8)])
    assert np.abs(left - 1.0).max() < 0.07 and abs(left.mean() - 1.0) < 0.02, left
    old = []
    for seed in range(8):   # control: the weighted variance against the variance of all draws
        r = np.random.default_rng([seed, 7])
        keep = r.choice(n, size=1000, replace=False)
        sims = r.integers(1000, size=100)
        logw = -0.5 * (y[keep][sims][:, [1]] - m[keep][None, :, 1]) ** 2 / noise[1]
        w = np.exp(logw - logw.max(axis=1, keepdims=True))
        w /= w.sum(axis=1, keepdims=True)
        var = w @ y[keep, 0] ** 2 - (w @ y[keep, 0]) ** 2
        old.append(var.mean() / np.var(y[:, 0]))
    assert np.abs(np.array(old) - 1.0).max() > 0.1, old


def test_bad_input_is_a_clear_error(fit):
    with pytest.raises(bayescale.BayescaleError, match="inside the fitted runs' range"):
        bayescale.plan(fit, {"params": 1e8, "tokens": 2e9})
    with pytest.raises(bayescale.BayescaleError, match="smaller than the cheapest candidate"):
        bayescale.plan(fit, TARGET, budget=1e10)
    with pytest.raises(bayescale.BayescaleError, match="one target run"):
        bayescale.plan(fit, pd.DataFrame([TARGET, TARGET]))
    with pytest.raises(bayescale.BayescaleError, match="cost must be"):
        bayescale.plan(fit, TARGET, cost="dollars")
    with pytest.raises(bayescale.BayescaleError, match="method must be one of"):
        bayescale.plan(fit, TARGET, method="bald")



def test_a_fit_whose_chains_disagree_is_named_in_the_plan(fit, monkeypatch):
    """Plan's widths come from the fit's draws: a fit the diagnostics flag (5 runs for a
    5-parameter law gave r_hat 3.9 in the retrospective) is named in a note and a warning; a fit
    whose diagnostics pass (control) gets neither. (The short fixture fit itself is flagged.)"""
    monkeypatch.setattr(fit, "sampling_problems", lambda: [])
    with warnings.catch_warnings():
        warnings.simplefilter("error", bayescale.BayescaleWarning)
        healthy = bayescale.plan(fit, TARGET, budget=1e21)
    assert not any("sampler diagnostics" in n for n in healthy.notes)
    monkeypatch.setattr(fit, "sampling_problems", lambda: ["max r_hat 3.900 > 1.01"])
    with pytest.warns(UnreliableSampling, match="max r_hat 3.900") as caught:
        flagged = bayescale.plan(fit, TARGET, budget=1e21)
    assert caught[0].message.fit is fit
    with warnings.catch_warnings():   # bad input: the error alone, no warning before it
        warnings.simplefilter("error", bayescale.BayescaleWarning)
        with pytest.raises(bayescale.BayescaleError, match="smaller than the cheapest candidate"):
            bayescale.plan(fit, TARGET, budget=1e10)
    assert any("sampler diagnostics fail (max r_hat 3.900" in n for n in flagged.notes)
    assert flagged.to_json()["notes"] == flagged.notes


def test_cli_prints_a_failing_fits_diagnostics_once(fit, tmp_path, capsys):
    """The CLI prints the plan's notes; the fit's failing diagnostics appear there, not a second
    time as a warning (the short fixture fit is flagged: its r_hat and ESS fail)."""
    assert fit.sampling_problems()
    saved = tmp_path / "fit.nc"
    fit.save(saved)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["plan", str(saved), "--at", "params=7e10,tokens=1.4e12", "--budget", "1e21"]) == 0
    out = capsys.readouterr()
    assert out.out.count("sampler diagnostics fail") == 1
    assert not [w for w in caught if "sampler diagnostics fail" in str(w.message)]

def test_cli_prints_a_batch_and_writes_json_and_report(fit, tmp_path, capsys):
    saved = tmp_path / "fit.nc"
    fit.save(saved)
    out, js = tmp_path / "plan", tmp_path / "plan.json"
    assert main(["plan", str(saved), "--at", "params=7e10,tokens=1.4e12", "--budget", "1e21",
                 "--json", str(js), "--report", str(out)]) == 0
    text = capsys.readouterr().out
    assert "run(s) chosen" in text and "expected width after them" in text
    got = json.loads(js.read_text())
    assert got["chosen"] and sum(r["cost"] for r in got["chosen"]) <= 1e21
    page = (out / "report.html").read_text()
    assert "data:image/png;base64," in page and "is expected to narrow the 90% interval" in page
    assert (out / "width_vs_cost.png").exists()
    assert main(["plan", str(saved), "--at", "params=7e10,tokens=1.4e12", "--budget", "1e3"]) != 0
    assert "smaller than the cheapest candidate" in capsys.readouterr().err


def test_picks_that_overlap_on_the_plot_share_one_label():
    """Cheap picks after an expensive one sit on one spot of the width-against-cost plot: they get
    one "i-j" label; picks spread out keep their own (the control)."""
    from bayescale.next_runs import _pick_labels

    cost = np.array([0, 6.46e20, 9.8e20, 9.83e20, 9.84e20, 9.85e20, 9.96e20, 9.96e20, 9.97e20])
    width = np.array([0.3375, 0.2945, 0.288, 0.2866, 0.2852, 0.284, 0.2832, 0.2826, 0.2817])
    labels = [lab for lab, _ in _pick_labels(cost, width)]
    assert labels[0] == "1" and len(labels) < 8 and any("-" in lab for lab in labels)
    covered = [k for lab in labels for k in range(int(lab.split("-")[0]), int(lab.split("-")[-1]) + 1)]
    assert covered == list(range(1, 9))       # every pick is named once, in order
    spread = _pick_labels(np.array([0, 1e20, 2e20, 3e20]), np.array([0.35, 0.3, 0.25, 0.2]))
    assert spread == [("1", 1), ("2", 2), ("3", 3)]   # each label at its own pick
    assert _pick_labels(np.array([0.0]), np.array([0.35])) == []


def test_a_candidates_file_is_checked_and_its_cost_column_used(fit, tmp_path, capsys):
    saved = tmp_path / "fit.nc"
    fit.save(saved)
    at = ["--at", "params=7e10,tokens=1.4e12", "--budget", "1e21"]

    def plan_with(table, *extra):
        path = tmp_path / "cands.csv"
        pd.DataFrame(table).to_csv(path, index=False)
        return main(["plan", str(saved), *at, "--candidates", str(path), *extra])

    runs = {"params": [2e9, 3e9], "tokens": [4e10, 6e10]}   # 6ND: 4.8e20 and 1.08e21
    assert plan_with({**runs, "cost": [5e20, 5e20]}, "--json", str(tmp_path / "p.json")) == 0
    got = json.loads((tmp_path / "p.json").read_text())
    assert {r["cost"] for r in got["candidates"]} == {5e20}          # the file's costs, not 6ND
    assert any("'cost' column" in n for n in got["notes"])
    capsys.readouterr()
    assert plan_with(runs, "--json", str(tmp_path / "q.json")) == 0   # control: no column, 6ND
    costs = sorted(r["cost"] for r in json.loads((tmp_path / "q.json").read_text())["candidates"])
    assert costs == pytest.approx([4.8e20, 1.08e21])
    capsys.readouterr()
    assert plan_with({**runs, "cost": ["abc", 5e20]}) == 2
    assert "column 'cost' gives 'abc' for row 0 (line 2 of cands.csv" in capsys.readouterr().err
    assert plan_with({"params": ["2B", "3e9"], "tokens": [4e10, 6e10]}) == 2
    assert "('2B' as 2e+09)" in capsys.readouterr().err                # a size as written: the number to write
    assert plan_with({"params": [-2e9, 3e9], "tokens": [4e10, 6e10]}) == 2
    err = capsys.readouterr().err
    assert "column 'params' must be > 0" in err and "cost" not in err  # the size is named, not the cost


def test_candidates_of_a_pooled_fit_take_the_targets_group(tmp_path):
    n, r = np.meshgrid(np.geomspace(3e7, 1e9, 4), [10.0, 40.0], indexing="ij")
    design = pd.DataFrame({"params": n.ravel(), "tokens": (n * r).ravel()})
    df = pd.concat([simulate(get_law("chinchilla"), design, TRUTH, seed=s)[0].assign(family=f)
                    for s, f in ((1, "a"), (2, "b"))], ignore_index=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bayescale.BayescaleWarning)
        pooled = bayescale.fit(df, "chinchilla", chains=2, warmup=300, draws=300, seed=0, progress=False)
        runs = pd.DataFrame({"params": [2e9, 3e9], "tokens": [4e10, 6e10]})
        for_a = bayescale.plan(pooled, {**TARGET, "family": "a"}, runs, budget=1e21)
        new = bayescale.plan(pooled, TARGET, runs, budget=1e21)
    assert (for_a.candidates["family"] == "a").all()
    assert any("they are runs of the target's (family a)" in n for n in for_a.notes)
    assert not any("new family" in n for n in for_a.notes)      # control: a fitted family is no new one
    assert any("predicted for a new family" in n for n in new.notes)
    assert not any("'all'" in n for n in new.notes)              # the placeholder label is not shown


def test_the_width_now_is_predicts_whatever_the_candidates(fit):
    """The target's width before any run is what predict reports for it (same seed), not a value
    that moves with the number of candidates drawn beside it; control: another seed moves it."""
    pred = fit.predict(pd.DataFrame([TARGET]), levels=(0.9,), seed=0)
    width = float(pred["upper_90"].iloc[0] - pred["lower_90"].iloc[0])
    few = bayescale.plan(fit, TARGET, pd.DataFrame({"params": [2e10], "tokens": [4e11]}))
    many = bayescale.plan(fit, TARGET, pd.DataFrame({"params": np.geomspace(1e9, 3e10, 9), "tokens": 4e11}))
    assert few.width_now == many.width_now == pytest.approx(width, rel=1e-12)
    assert bayescale.plan(fit, TARGET, pd.DataFrame({"params": [2e10], "tokens": [4e11]}), seed=1).width_now != width


def test_a_target_written_as_text_is_read_as_predict_reads_it_and_a_bad_budget_is_named(fit):
    as_text = bayescale.plan(fit, {"params": "7e10", "tokens": "1.4e12"}, budget=1e21)
    as_numbers = bayescale.plan(fit, TARGET, budget=1e21)
    pd.testing.assert_frame_equal(as_text.chosen, as_numbers.chosen)   # control: the same plan
    assert bayescale.plan(fit, TARGET, budget="1e21").budget == 1e21
    for bad in ("lots", True, -1.0, float("nan")):
        with pytest.raises(bayescale.BayescaleError, match=r"budget must be a positive number of FLOP such as 1e21"):
            bayescale.plan(fit, TARGET, budget=bad)

"""Chaining a loss fit into a downstream fit (bayescale.chain) and its CLI (predict --chain).

Synthetic runs: losses from Chinchilla's law (Hoffmann et al.'s exponents, 3 % noise), accuracies
from Gadre's loss-to-error law at those losses (1000 questions per run). The chain must
* cover the true accuracy at new, larger (N, D) with its 90 % interval (mean curve);
* carry the loss's uncertainty: its intervals are wider than the downstream fit's own intervals
  at the loss fit's median loss; a chain that used a point loss would fail this;
* pair draws one to one and refuse a downstream law that is not a law of the loss.
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import bayescale
from bayescale import BayescaleError, get_law
from bayescale.chaining import rate_draws
from bayescale.cli import main
from bayescale.simulate import simulate
from fit_helpers import fit_quietly, grid

LOSS_TRUTH = {"E": 1.69, "log_A0": -0.26, "alpha": 0.34, "log_B0": -0.43, "beta": 0.28, "sigma": 0.03, "nu": 30.0}
EPS, LOG_K0 = 0.72, -2.3  # loss-to-error in the published form (log_k0 = log k at the mean loss)
ERR_TRUTH = {**get_law("loss-to-error").from_published(EPS, LOG_K0), "gamma": 1.2, "phi": 3000.0}


@pytest.fixture(scope="module")
def fits():
    # the (N, D) grid and budget of tests/statistical/test_recovery.py, so that a session reuses that
    # compiled sampler
    design = grid()
    runs, _ = simulate(get_law("chinchilla"), design, LOSS_TRUTH, seed=0)
    runs["trials"] = 1000.0
    # the error law's parameters are centred at the training runs' mean loss
    acc, _ = simulate(get_law("loss-to-error"), runs[["loss", "trials"]], ERR_TRUTH, seed=1)
    runs["p_correct"] = acc["p_correct"]
    ref = float(runs["loss"].mean())
    return (fit_quietly(runs[["params", "tokens", "loss"]], "chinchilla"),
            fit_quietly(runs[["loss", "p_correct", "trials"]], "loss-to-error"), ref)


NEW = pd.DataFrame({"params": [3e9, 1e10], "tokens": [3e11, 1e12]})


def true_accuracy(ref):
    law = get_law("chinchilla")
    logref = {"params": np.log(1e8), "tokens": np.log(1e10)}  # the grid's geometric means
    x = {k: np.log(NEW[k].to_numpy()) - logref[k] for k in ("params", "tokens")}
    loss = np.asarray(law.mean(x, LOSS_TRUTH), dtype=np.float64)
    return 1 - EPS + np.exp(LOG_K0 - ERR_TRUTH["gamma"] * (loss - ref)), loss


def test_chain_covers_truth_and_carries_loss_uncertainty(fits):
    loss_fit, err_fit, ref = fits
    pred, draws = bayescale.chain(loss_fit, err_fit).predict(NEW, levels=(0.5, 0.9), return_draws=True)
    truth, true_loss = true_accuracy(ref)
    assert draws.shape == (min(loss_fit.n_draws, err_fit.n_draws), len(NEW))
    assert np.all((pred["lower_90"] <= truth) & (truth <= pred["upper_90"])), (pred, truth)
    assert np.all((pred["loss_lower_90"] <= true_loss) & (true_loss <= pred["loss_upper_90"])), pred
    # the downstream fit alone, at the loss fit's median loss: narrower than the chain
    at_median = rate_draws(err_fit, NEW.assign(loss=pred["loss_median"]), "mean")
    width_point = np.subtract(*np.quantile(at_median, [0.95, 0.05], axis=0))
    width_chain = (pred["upper_90"] - pred["lower_90"]).to_numpy()
    assert np.all(width_chain > 1.2 * width_point), (width_chain, width_point)  # a point loss gives ~1.0
    # observation intervals (a new run, 1000 questions) contain the mean-curve intervals
    obs = bayescale.chain(loss_fit, err_fit).predict(NEW.assign(trials=1000.0), kind="observation",
                                                     loss_kind="observation")
    assert np.all(obs["upper_90"] >= pred["upper_90"]) and np.all(obs["lower_90"] <= pred["lower_90"])


def test_chain_carries_discrepancy_in_both_steps(fits):
    """With a model-discrepancy term in the loss fit, the downstream fit, or both, the chain's
    intervals far beyond the runs widen step by step; the chain of laws alone is the narrowest
    (the control that ignores both discrepancies)."""
    loss_fit, err_fit, _ = fits
    design = grid()
    runs, _ = simulate(get_law("chinchilla"), design, LOSS_TRUTH, seed=0)
    runs["trials"] = 1000.0
    acc, _ = simulate(get_law("loss-to-error"), runs[["loss", "trials"]], ERR_TRUTH, seed=1)
    runs["p_correct"] = acc["p_correct"]
    prior = "HalfNormal(0.05)"
    loss_disc = fit_quietly(runs[["params", "tokens", "loss"]], "chinchilla", discrepancy=prior)
    err_disc = fit_quietly(runs[["loss", "p_correct", "trials"]], "loss-to-error", discrepancy=prior)
    far = NEW.iloc[[1]]   # 2 decades of compute beyond the grid

    def width(a, b):
        p = bayescale.chain(a, b).predict(far, levels=(0.9,), seed=5)
        return float(p["upper_90"].iloc[0] - p["lower_90"].iloc[0])

    neither = width(loss_fit, err_fit)
    assert width(loss_disc, err_fit) > 1.2 * neither        # the loss step's discrepancy reaches the accuracy
    assert width(loss_disc, err_disc) > 1.2 * neither
    # the downstream step's own walk: at a loss 3 sd below the fitted losses its interval widens
    low = pd.DataFrame({"loss": [runs["loss"].min() - 3 * runs["loss"].std()]})
    spread = lambda f: np.subtract(*np.quantile(rate_draws(f, low, "mean", seed=6), [0.95, 0.05], axis=0))[0]  # noqa: E731
    assert spread(err_disc) > 1.2 * spread(err_fit), (spread(err_disc), spread(err_fit))


def test_chain_rejects_wrong_pairs(fits):
    loss_fit, err_fit, _ = fits
    with pytest.raises(BayescaleError, match="chaining needs a law of the loss"):
        bayescale.chain(loss_fit, loss_fit)
    with pytest.raises(BayescaleError, match="must predict loss"):
        bayescale.chain(err_fit, err_fit)
    with pytest.raises(BayescaleError, match="missing column.*trials"):
        bayescale.chain(loss_fit, err_fit).predict(NEW, kind="observation")


def test_cli_predict_chain(fits, tmp_path, capsys):
    loss_fit, err_fit, ref = fits
    a, b = loss_fit.save(tmp_path / "loss.nc"), err_fit.save(tmp_path / "err.nc")
    NEW.to_csv(tmp_path / "new.csv", index=False)
    assert main(["predict", "--chain", str(a), str(b), "--data", str(tmp_path / "new.csv"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["law"] == "loss-to-error" and out["loss_law"] == "chinchilla"
    direct = bayescale.chain(loss_fit, err_fit).predict(NEW)
    got = pd.DataFrame(out["predictions"])
    np.testing.assert_allclose(got["median"], direct["median"], rtol=1e-6)
    assert {"loss_median", "lower_90", "upper_90"} <= set(got)
    assert main(["predict", "--chain", str(a), str(b), "--data", str(tmp_path / "new.csv"), "--kind", "curve"]) == 2
    assert "--kind curve is for one fit; with --chain use --kind mean" in capsys.readouterr().err


def test_the_chain_says_how_far_it_reaches(fits, tmp_path, capsys):
    """The chain carries the loss fit's distance and notes and says when its loss leaves the
    downstream fit's losses; the caller's index is kept, as Fit.predict keeps it."""
    loss_fit, err_fit, _ = fits
    far = NEW.assign(params=[3e9, 1e12], tokens=[3e11, 1e14]).set_index(pd.Index(["a", "b"]))
    pred = bayescale.chain(loss_fit, err_fit).predict(far)
    assert list(pred.index) == ["a", "b"]
    direct = loss_fit.predict(far, kind="mean")
    np.testing.assert_allclose(pred["decades_beyond_data"], direct["decades_beyond_data"])
    notes = pred.attrs["notes"]
    assert any(n.startswith("loss fit: 2 row(s) lie beyond the fitted runs") for n in notes), notes
    assert any("chained loss (median) outside the downstream fit's losses" in n for n in notes), notes
    inside = bayescale.chain(loss_fit, err_fit).predict(NEW.iloc[:1].assign(params=1e8, tokens=1e10))
    assert not inside.attrs["notes"]   # control: a run among the fitted ones
    a, b = loss_fit.save(tmp_path / "loss.nc"), err_fit.save(tmp_path / "err.nc")
    far.to_csv(tmp_path / "far.csv", index=False)
    assert main(["predict", "--chain", str(a), str(b), "--data", str(tmp_path / "far.csv"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["notes"] == notes

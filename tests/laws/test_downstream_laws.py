"""Downstream laws: loss-to-error, accuracy-sigmoid, pass-until, pass-at-k.

* closed forms of each mean and of the Beta-Binomial / Beta likelihood (against scipy);
* parameter recovery on simulated accuracies (2 chains x 300 + 300, as tests/statistical/test_recovery.py):
  z = |posterior mean - truth| / sd < 3.5 for every law parameter; the control fits data with a
  chance floor of 0.5 as if there were none (chance = 0) and must violate the bound;
* SBC (slow, ``--run-slow``): rank uniformity for every law and a failing control that drops the
  between-run scatter (phi fixed at 1e5, i.e. a plain Binomial).
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from scipy import stats

import bayescale
from bayescale import BayescaleError, get_law
from bayescale.models.loss_to_error import RateObservation
from bayescale.simulate import simulate
from fit_helpers import MAX_DIVERGENCES, Z_MAX, fit_quietly, z_scores
from sbc_helpers import assert_calibrated, assert_control_fails, sbc_in_fresh_process

L = np.linspace(2.6, 4.0, 12)


def test_rate_likelihood_matches_scipy():
    rate, phi = np.array([0.3, 0.3, 0.8, 0.05]), np.array([50.0, 50.0, 400.0, 20.0])
    trials = np.array([100.0, 0.0, 1000.0, 0.0])
    y = np.array([27.0, 0.35, 790.0, 0.01])  # counts where trials > 0, rates where trials == 0
    got = np.asarray(RateObservation(rate, phi, trials).log_prob(jnp.asarray(y)))
    a, b = rate * phi, (1 - rate) * phi
    want = np.where(trials > 0, stats.betabinom.logpmf(y, trials.astype(int), a, b), stats.beta.logpdf(y, a, b))
    np.testing.assert_allclose(got, want, rtol=2e-4)


def test_means_match_the_published_forms():
    law = get_law("loss-to-error")
    p = {**law.from_published(0.7, -2.0), "gamma": 1.3}
    ref = 3.2
    d = law.derived(p, {"loss": ref})
    assert d["eps"] == pytest.approx(0.7) and d["log_k0"] == pytest.approx(-2.0)
    err = 1 - np.asarray(law.mean({"loss": L - ref}, p))
    np.testing.assert_allclose(err, 0.7 - d["k"] * np.exp(-1.3 * L), rtol=1e-4)
    # where the published curve passes accuracy 1 (low loss) the error is floored smoothly:
    # accuracy stays below 1 and never rises with loss, and is the published one where Err >= 0.02
    p = {**law.from_published(0.5, -1.0), "gamma": 4.0}
    d = law.derived(p, {"loss": ref})
    published = 0.5 - d["k"] * np.exp(-4.0 * L)
    acc = np.asarray(law.mean({"loss": L - ref}, p), dtype=np.float64)
    assert published.min() < -1 and np.all(acc < 1) and np.all(np.diff(acc) <= 0)
    ok = published >= 0.02
    np.testing.assert_allclose(1 - acc[ok], published[ok], rtol=1e-3)
    with pytest.raises(BayescaleError, match="0 < exp\\(log_k0\\) < eps < 1"):
        law.from_published(0.3, -1.0)

    sig = get_law("accuracy-sigmoid")
    c = np.geomspace(1e18, 1e23, 7)
    p = {"a": -0.4, "log_b": -0.3, "lapse": 0.1, "floor": 0.02}
    ref = np.log(1e20)
    q = np.asarray(sig.mean({"compute": np.log(c) - ref}, p))
    acc = np.asarray(sig.observation.expected(q, {"chance": np.full(7, 0.25)}, np))
    b = np.exp(-0.3)
    want = 0.25 + (1 - 0.25) * (0.02 + 0.98 * 0.9 / (1 + np.exp(-(-0.4 + b * (np.log(c) - ref)))))
    np.testing.assert_allclose(acc, want, rtol=1e-4)
    # at the derived midpoint the rise above the floor is halfway to its ceiling
    mid = sig.derived(p, {"compute": ref})["log_C_mid"]
    q_mid = float(np.asarray(sig.mean({"compute": np.array([mid - ref])}, p))[0])
    assert q_mid == pytest.approx(0.02 + 0.98 * 0.45, rel=1e-4)
    # in loss, accuracy falls as loss rises
    q_loss = np.asarray(get_law("accuracy-sigmoid:loss").mean({"loss": L - 3.2}, {"a": 0.0, "log_b": 1.5,
                                                                                  "lapse": 0.0, "floor": 0.0}))
    assert np.all(np.diff(q_loss) < 0)

    for spec, col in (("pass-until", "params"), ("pass-at-k", "attempts")):
        law = get_law(spec)
        x = np.geomspace(1e7, 1e10, 6) if col == "params" else np.geomspace(1, 1e4, 6)
        p = {"log_c0": 1.0, "alpha": 0.4}
        ref = float(np.mean(np.log(x)))
        c = law.derived(p, {col: ref})["c"]
        np.testing.assert_allclose(np.asarray(law.mean({col: np.log(x) - ref}, p)),
                                   np.exp(-c * x ** -0.4), rtol=1e-4)


def test_rate_responses_are_checked():
    df = pd.DataFrame({"loss": L[:4], "p_correct": [0.2, 0.3, 1.2, 0.4], "trials": 100.0})
    with pytest.raises(BayescaleError, match="must lie in \\[0, 1\\].*row 2"):
        bayescale.fit(df, "loss-to-error", chains=1, warmup=5, draws=5, progress=False)
    df = pd.DataFrame({"loss": L[:4], "p_correct": [0.0, 0.3, 0.2, 0.4], "trials": 0.0})
    with pytest.raises(BayescaleError, match="trials = 0 need 0 < p_correct < 1"):
        bayescale.fit(df, "loss-to-error", chains=1, warmup=5, draws=5, progress=False)
    df = pd.DataFrame({"compute": [1e18, 1e19, 1e20, 1e21, 1e22], "p_correct": 0.3, "trials": 10.0, "chance": 1.0})
    with pytest.raises(BayescaleError, match="'chance' must lie in \\[0, 1\\)"):
        bayescale.fit(df, "accuracy-sigmoid", chains=1, warmup=5, draws=5, progress=False)
    with pytest.raises(BayescaleError, match="missing column.*chance"):
        bayescale.fit(df.drop(columns="chance"), "accuracy-sigmoid", chains=1, warmup=5, draws=5, progress=False)


def test_a_fixed_floor_needs_no_data_point_of_its_own():
    from bayescale.baselines import huber_bootstrap
    from bayescale.spec import build

    df = pd.DataFrame({"compute": [1e19, 1e20, 1e21], "p_correct": [0.3, 0.4, 0.6], "trials": 100.0, "chance": 0.25})
    with pytest.raises(BayescaleError, match="3 row\\(s\\) but the law has 4 free parameters"):
        build(df, "accuracy-sigmoid")
    spec, _ = build(df, "accuracy-sigmoid", priors={"floor": "Delta(0.0)"})   # 3 free: enough
    assert spec.law.name == "accuracy-sigmoid"
    # the loss baseline refuses a rate law rather than fit log(curve) to the accuracy
    with pytest.raises(BayescaleError, match="fits losses.*accuracy-sigmoid.*rate"):
        huber_bootstrap(df, "accuracy-sigmoid", n_boot=2)


def compute_design(chance: float) -> pd.DataFrame:
    return pd.DataFrame({"compute": np.geomspace(1e18, 1e23, 12), "trials": 500.0, "chance": chance})


LTE = get_law("loss-to-error")
# (id, law, design, truth (law + noise parameters), fit table transform, must_pass)
CASES = [
    ("loss-to-error", "loss-to-error", pd.DataFrame({"loss": L, "trials": 1000.0}),
     {**LTE.from_published(0.7, -2.5), "gamma": 2.0, "phi": 500.0}, None, True),
    ("loss-to-error:rates", "loss-to-error", pd.DataFrame({"loss": L, "trials": 0.0}),
     {**LTE.from_published(0.6, -2.0), "gamma": 1.5, "phi": 2000.0}, None, True),
    ("accuracy-sigmoid", "accuracy-sigmoid", compute_design(0.25),
     {"a": -0.5, "log_b": -0.3, "lapse": 0.1, "floor": 0.02, "phi": 300.0}, None, True),
    ("accuracy-sigmoid:loss", "accuracy-sigmoid:loss", pd.DataFrame({"loss": L, "trials": 500.0, "chance": 0.25}),
     {"a": 0.2, "log_b": 1.5, "lapse": 0.1, "floor": 0.02, "phi": 300.0}, None, True),
    ("pass-until", "pass-until", pd.DataFrame({"params": np.geomspace(1e7, 1e10, 10), "trials": 2000.0}),
     {"log_c0": 1.5, "alpha": 0.5, "phi": 50.0}, None, True),
    ("pass-at-k", "pass-at-k", pd.DataFrame({"attempts": np.geomspace(1, 1e4, 12), "trials": 128.0}),
     {"log_c0": 0.0, "alpha": 0.3, "phi": 300.0}, None, True),
    # control: a four-choice task fitted as if it had two choices (chance 0.5). (Chance ignored,
    # 0 instead of 0.5, is no longer a wrong model: the floor then takes the chance level's place.)
    ("control:wrong-chance", "accuracy-sigmoid", compute_design(0.25),
     {"a": -0.5, "log_b": -0.3, "lapse": 0.1, "floor": 0.02, "phi": 300.0}, lambda d: d.assign(chance=0.5), False),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_recovery(case):
    _, spec, design, truth, transform, must_pass = case
    df, _ = simulate(get_law(spec), design, truth, seed=1)
    if transform is not None:
        df = transform(df)
    fit = fit_quietly(df, spec, seed=1)
    # the noise too: a wrong chance level can be absorbed by the floor and lapse, not by phi
    z = z_scores(fit, truth)
    report = f"{spec}: z={ {k: round(v, 2) for k, v in z.items()} } diagnostics={fit.diagnostics}"
    if must_pass:
        assert max(z.values()) < Z_MAX, report
        assert fit.diagnostics["divergences"] <= MAX_DIVERGENCES, report
    else:
        assert max(z.values()) > Z_MAX, report   # fails the criterion the true model passes


def test_predicted_mean_is_the_expected_accuracy():
    # a 4-choice task still near chance: the law's curve q = (acc - chance)/(1 - chance) is ~0 there,
    # the accuracy ~0.25. kind="mean" must be the accuracy (it was q), kind="curve" q itself.
    design = compute_design(0.25)
    truth = {"a": -4.0, "log_b": -0.3, "lapse": 0.1, "floor": 0.02, "phi": 300.0}
    law = get_law("accuracy-sigmoid")
    df, _ = simulate(law, design, truth, seed=2)
    fit = fit_quietly(df, law, seed=2)
    new = design[["compute", "chance"]].iloc[:4]
    x = {"compute": np.log(new["compute"].to_numpy()) - fit.spec.logref["compute"]}
    true_acc = law.observation.expected(np.asarray(law.mean(x, truth), dtype=np.float64), {"chance": 0.25}, np)
    pred, acc = fit.predict(new, kind="mean", return_draws=True)
    assert np.all(acc.values >= 0.25), pred
    np.testing.assert_allclose(pred["median"], true_acc, atol=0.02)
    _, curve = fit.predict(new, kind="curve", return_draws=True)
    np.testing.assert_allclose(acc.values, 0.25 + 0.75 * curve.values, rtol=1e-6)
    # the chance floor is applied once: rate_draws agrees, and new runs scatter around the accuracy
    from bayescale.chaining import rate_draws

    np.testing.assert_allclose(rate_draws(fit, new, "mean"), acc.values, rtol=1e-6)
    obs = fit.predict(new.assign(trials=500.0), kind="observation", seed=1)
    np.testing.assert_allclose(obs["mean"], pred["mean"], atol=0.01)
    with pytest.raises(BayescaleError, match="missing column.*'chance'.*kind='curve'"):
        fit.predict(new.drop(columns="chance"), kind="mean")
    assert len(fit.predict(new.drop(columns="chance"), kind="curve")) == 4


def test_floor_lets_an_emergent_task_rise_beyond_the_runs():
    """An exact-match task (chance 0) sits at a 1 % floor, then rises near the largest fitted run.
    With the floor the fit's 90 % intervals cover the larger runs; with the floor fixed at 0 (the
    control: the law before it had one) the sigmoid's slope is learned from the flat points and
    the larger runs lie above the intervals."""
    law = get_law("accuracy-sigmoid")
    design = pd.DataFrame({"compute": np.geomspace(1e18, 1e24, 16), "trials": 500.0, "chance": 0.0})
    # midpoint at 1e23 (the design's reference is 1e21), 0.8 logits per e-fold
    truth = {"a": -0.8 * np.log(100.0), "log_b": np.log(0.8), "lapse": 0.05, "floor": 0.01, "phi": 300.0}
    df, _ = simulate(law, design, truth, seed=1)
    train, test = df[df.compute <= 1.01e22], df[df.compute > 1.01e22]
    y = test.p_correct.to_numpy()

    def placed(priors):
        p = fit_quietly(train, law, seed=1, priors=priors).predict(test, kind="observation", levels=(0.9,), seed=1)
        return int(((y >= p["lower_90"]) & (y <= p["upper_90"])).sum()), int((y > p["upper_90"]).sum())

    covered, _ = placed(None)
    assert covered >= 4, f"{covered} of {len(y)} covered"
    covered, above = placed({"floor": "Delta(0.0)"})
    assert covered <= 2 and above >= 3, f"control: {covered} covered, {above} above, of {len(y)}"


# ---- SBC (slow) ---------------------------------------------------------------------------------

SBC_SETTINGS = {"chains": 1, "warmup": 200, "draws": 300, "thin": 3, "bins": 10}
# pass rates far below 1/trials give all-zero tables (which the fit takes, and so sbc); these
# priors (used to simulate and to fit) keep most of the pass-rate laws' draws in the measurable
# range, where the ranks test more than the prior (the default priors are in the sweep)
SBC_PRIORS = {k: {"log_c0": "Normal(-0.5, 0.75)", "alpha": "LogNormal(-0.9, 0.4)", "phi": "LogNormal(5.3, 1.0)"}
              for k in ("pass-until", "pass-at-k")}
# two decades of the input around the reference (the default design spans three or four)
SBC_DESIGNS = {"pass-until": pd.DataFrame({"params": np.geomspace(1e8, 1e10, 12), "trials": 1000.0}),
               "pass-at-k": pd.DataFrame({"attempts": np.geomspace(1.0, 100.0, 12), "trials": 1000.0})}
SBC_SPECS = ["loss-to-error", "accuracy-sigmoid", "accuracy-sigmoid:loss", "pass-until", "pass-at-k"]


@pytest.mark.slow
@pytest.mark.parametrize("spec", SBC_SPECS)
def test_sbc_downstream_law(spec):
    result = sbc_in_fresh_process(spec, SBC_DESIGNS.get(spec), n_sims=100, seed=0,
                                  priors=SBC_PRIORS.get(spec), **SBC_SETTINGS)
    assert_calibrated(result)


@pytest.mark.slow
def test_sbc_control_without_run_scatter_fails():
    # simulated with phi from its prior (runs scatter around the curve), fitted as a plain Binomial
    assert_control_fails(sbc_in_fresh_process("accuracy-sigmoid", n_sims=40, seed=0,
                                              fit_priors={"phi": "Delta(100000.0)"}, **SBC_SETTINGS))

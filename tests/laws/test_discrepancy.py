"""The model-discrepancy walk (bayescale.discrepancy): its PyMC twin, its saved form, and what it
does to predictions near and far from the fitted runs."""
from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from numpyro.handlers import seed, trace
from numpyro.infer.util import log_density

import bayescale as bs
from bayescale import discrepancy
from bayescale.design import centre
from bayescale.discrepancy import walk_inputs
from bayescale.inference import build, make_model
from bayescale.models import get_law

pytest.importorskip("pymc")
from pymc.model.transform.conditioning import remove_value_transforms  # noqa: E402

from bayescale.pymc_interop import to_pymc  # noqa: E402

PRIOR = "HalfNormal(0.02)"
BEND = 0.012   # curvature of log loss per squared decade of N, which the Chinchilla law lacks
BUDGET = dict(chains=2, warmup=400, draws=400, progress=False)


def ladder(seed_=0, bend=0.0):
    """Chinchilla runs over 1.5 decades of N at 5-80 tokens per parameter, 0.5% noise; ``bend``
    adds a curvature in log N that the law lacks (the law is then only approximately right)."""
    rng = np.random.default_rng(seed_)
    n, r = np.meshgrid(np.geomspace(5e7, 1.5e9, 8), np.array([5.0, 20.0, 80.0]), indexing="ij")
    df = pd.DataFrame({"params": n.ravel(), "tokens": (n * r).ravel()})
    df["loss"] = true_loss(df["params"], df["tokens"], bend) * np.exp(rng.normal(0, 0.005, len(df)))
    return df


def true_loss(n, d, bend):
    u = np.log10(np.asarray(n, float) / 3e8)
    return (1.7 + 400.0 * np.asarray(n, float) ** -0.34 + 410.0 * np.asarray(d, float) ** -0.28) * np.exp(bend * u ** 2)


def _twin_densities(df, law, n_points):
    """Prior draws of the NumPyro model with the walk, and the log densities of NumPyro and of the
    PyMC twin (``to_pymc``) at them: (points, NumPyro's, PyMC's)."""
    spec, data = build(df, law, discrepancy=PRIOR)
    model = make_model(spec, natural=True)
    x = {k: jnp.asarray(v) for k, v in centre(law, data.inputs, spec.logref).items()}
    y = jnp.asarray(np.log(data.response))
    walk = {k: jnp.asarray(v) for k, v in walk_inputs(spec.discrepancy, x).items()}
    points, ours = [], []
    for s in range(n_points):
        tr = trace(seed(model, jax.random.PRNGKey(s))).get_trace(x, {}, None, None, walk)
        point = {k: np.asarray(v["value"], np.float64) for k, v in tr.items() if v["type"] == "sample" and k != "y"}
        points.append(point)
        ours.append(float(log_density(model, (x, {}, y, None, walk), {}, point)[0]))
    free = remove_value_transforms(to_pymc(df, law, discrepancy=PRIOR, natural=True))
    logp = free.compile_fn(free.logp(), mode="FAST_COMPILE")
    return points, ours, [float(logp(p)) for p in points]


def test_pymc_twin_matches_numpyro_with_discrepancy():
    law = get_law("chinchilla")
    df = ladder()
    spec, _ = build(df, law, discrepancy=PRIOR)
    assert spec.discrepancy is not None and spec.discrepancy.size >= 8
    points, ours, theirs = _twin_densities(df, law, 4)
    np.testing.assert_allclose(theirs, ours, rtol=1e-6, atol=1e-3)
    # control: the law alone is a different model (its density at the same law parameters differs)
    alone = remove_value_transforms(to_pymc(df, law, natural=True))
    logp_alone = alone.compile_fn(alone.logp(), mode="FAST_COMPILE")
    p0 = {k: v for k, v in points[0].items() if not k.startswith("disc_")}
    assert abs(float(logp_alone(p0)) - ours[0]) > 1e-2


@pytest.fixture(scope="module")
def fits():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bs.BayescaleWarning)
        df = ladder(seed_=1, bend=BEND)
        return (bs.fit(df, "chinchilla", seed=0, discrepancy=PRIOR, **BUDGET),
                bs.fit(df, "chinchilla", seed=0, discrepancy="none", **BUDGET), df)


def far_points():
    n = 3e8 * 10.0 ** np.array([0.0, 1.0, 2.0, 3.0])   # 0 to 3 decades above the ladder's centre
    return pd.DataFrame({"params": n, "tokens": 20.0 * n})


def test_width_grows_beyond_the_data_and_saved_fit_predicts_the_same(fits, tmp_path):
    with_disc, alone, _ = fits
    pts = far_points()
    a = with_disc.predict(pts, levels=(0.9,), kind="mean", seed=3)
    b = alone.predict(pts, levels=(0.9,), kind="mean", seed=3)
    wa = np.log(a["upper_90"] / a["lower_90"]).to_numpy()
    wb = np.log(b["upper_90"] / b["lower_90"]).to_numpy()
    assert np.all(np.diff(wa) > 0)                      # wider with every decade
    assert wa[-1] > 2.5 * wb[-1]                        # far out, much wider than the law alone
    assert wa[0] < 3 * wb[0] + 0.01                     # at the data's centre, about as sharp
    path = with_disc.save(tmp_path / "fit.nc")
    again = bs.load(path).predict(pts, levels=(0.9,), kind="mean", seed=3)
    np.testing.assert_array_equal(again[["lower_90", "upper_90"]].to_numpy(), a[["lower_90", "upper_90"]].to_numpy())
    assert bs.load(path).spec.discrepancy.to_json() == with_disc.spec.discrepancy.to_json()


def test_discrepancy_covers_a_bent_truth_the_law_alone_misses(fits):
    """The truth bends away from the law (curvature in log N); 2-3 decades out, the law alone's
    90% intervals miss it, the walk's intervals hold it. A control that must fail: the law alone."""
    with_disc, alone, _ = fits
    pts = far_points().iloc[2:]
    truth = true_loss(pts["params"], pts["tokens"], BEND)
    a = with_disc.predict(pts, levels=(0.9,), kind="mean", seed=4)
    b = alone.predict(pts, levels=(0.9,), kind="mean", seed=4)
    inside = lambda p: (p["lower_90"].to_numpy() <= truth) & (truth <= p["upper_90"].to_numpy())  # noqa: E731
    assert inside(a).all()
    assert not inside(b).any()


def test_bad_discrepancy_settings_are_errors():
    df = ladder()
    with pytest.raises(bs.BayescaleError, match="discrepancy must be 'none', 'auto' or a prior"):
        bs.fit(df, "chinchilla", discrepancy=3, progress=False)
    with pytest.raises(bs.BayescaleError, match="s >= 0"):
        bs.fit(df, "chinchilla", discrepancy="Normal(0, 1)", progress=False)


def test_knots_cover_the_data_on_both_sides():
    law = get_law("chinchilla")
    spec, data = build(ladder(), law, discrepancy=PRIOR)
    d = spec.discrepancy
    axes = discrepancy.coordinates(law.inputs, centre(law, data.inputs, spec.logref))
    assert set(d.knots) == {"params", "tokens", "compute", "tokens_per_param"}   # N, D, C and D/N
    for k in d.knots:
        v = axes[k] / d.units[k]
        assert d.knots[k] and min(d.knots[k]) > v.min() and max(d.knots[k]) < v.max()
        # one knot per side for every 8 distinct values along the axis (8 sizes of N: one per side)
        per_side = discrepancy.knots_per_side(v)
        assert per_side == min(max(len(np.unique(np.round(v, 9))) // 8, 1), 4)
        assert np.isclose(d.steps[k], max(v.max(), -v.min()) / per_side)
    assert len(d.labels()) == d.size == len(set(d.labels()))
    assert discrepancy.basis(d, {k: np.zeros(1) for k in law.inputs}, np).sum() == 0   # anchored at the reference


def test_the_walk_bends_no_finer_than_the_data_allow():
    """A few-point curve gets one knot per side (a walk with as many bends as points would compete
    with the noise); long ladders get up to four; a walk per group counts the thinnest group."""
    assert discrepancy.knots_per_side(np.linspace(-1, 1, 5)) == 1
    assert discrepancy.knots_per_side(np.linspace(-1, 1, 17)) == 2
    assert discrepancy.knots_per_side(np.linspace(-1, 1, 200)) == 4
    v = np.concatenate([np.linspace(-1, 1, 40), np.linspace(-1, 1, 9)])
    assert discrepancy.knots_per_side(v, np.repeat([0, 1], [40, 9])) == 1
    assert discrepancy.knots_per_side(np.repeat(np.linspace(-1, 1, 9), 5)) == 1   # repeats are not new points


def test_default_is_the_shipped_cross_study_prior():
    """bs.fit's default discrepancy is "auto": the prior of the walk's scale shipped in
    discrepancy_prior.json for the observation's link, whose provenance says how it was learned."""
    import json
    from importlib import resources

    table = json.loads(resources.files("bayescale").joinpath(discrepancy.PRIOR_FILE).read_text())
    assert set(table["priors"]) == {"log", "logit"}
    prov = table["provenance"]
    assert prov["learned_from"]["log"] and prov["learned_from"]["logit"] and "rebuild" in prov
    for link, text in table["priors"].items():
        prior = discrepancy.learned_prior(link)
        assert np.all(np.asarray(prior.sample(jax.random.PRNGKey(0), (64,))) > 0)
        assert bs.priors.describe(prior) == bs.priors.describe(bs.priors.parse(text))
    law = get_law("chinchilla")
    spec, data = build(ladder(), law, discrepancy="auto")
    assert spec.discrepancy.to_json()["prior"] == discrepancy.resolve(law, table["priors"]["log"], {
        k: v for k, v in centre(law, data.inputs, spec.logref).items()}).to_json()["prior"]
    rate = get_law("accuracy-sigmoid")
    assert discrepancy.learned_prior(rate.observation.link_name) is not None
    with pytest.raises(bs.BayescaleError, match="no learned discrepancy prior for the probit link"):
        discrepancy.learned_prior("probit")
    import inspect
    assert inspect.signature(bs.fit).parameters["discrepancy"].default == "auto"


def test_calibrate_says_why_the_default_is_wider_than_the_law_alone():
    """With the discrepancy on, calibrate also fits the law alone on the same split and its
    explanation gives the width ratio and both coverages (the question a user asks first)."""
    from bayescale.heldout import calibrate

    df = ladder(seed_=2, bend=BEND)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bs.BayescaleWarning)
        res = calibrate(df, "chinchilla", "top-compute:0.2", baselines=(), discrepancy=PRIOR, seed=0, **BUDGET)
    alone = res.summary["law_alone"]
    assert alone["width_ratio_90"] > 1.0          # the walk widens the held-out runs' intervals
    assert "narrower_without_discrepancy" not in res.summary   # the refit's ratio, not a second estimate
    text = res.width_explanation()
    assert "law's posterior alone" in text and f"{alone['coverage']['0.9']:.2f}" in text
    assert "bayescale, law alone (new observation)" in res.table().index
    assert len(res.pit["bayescale, law alone (new observation)"]) == len(res.heldout)   # in the PIT plot too
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bs.BayescaleWarning)
        plain = calibrate(df, "chinchilla", "top-compute:0.2", baselines=(), discrepancy="none", seed=0, **BUDGET)
    assert "law_alone" not in plain.summary and "no model-discrepancy term" in plain.width_explanation()
    assert "bayescale, law alone (new observation)" not in plain.pit


def _loglik_by_hand(fit, df, knots_from):
    """Pointwise log likelihood of the first draws of ``fit`` (of ``df``), recomputed in NumPy with
    the walk's basis built from ``knots_from`` (a Discrepancy)."""
    from scipy import stats

    law = fit.law
    spec, data = build(df, law, discrepancy=PRIOR)
    x = centre(law, data.inputs, spec.logref)
    post = fit.idata.posterior.isel(chain=0, draw=slice(0, 20))
    p = {k: post[k].values[:, None] for k in ("E", "log_A0", "alpha", "log_B0", "beta", "sigma", "nu")}
    walk = discrepancy.basis(knots_from, x, np) @ post[discrepancy.STEPS].values.T   # rows x draws
    loc = np.log(law.mean({k: v[None, :] for k, v in x.items()}, p, xp=np)) + post[discrepancy.SCALE].values[:, None] * walk.T
    return stats.t.logpdf(np.log(data.response)[None, :], p["nu"], loc, p["sigma"])


def test_a_compiled_sampler_reused_for_new_data_uses_the_new_data_knots():
    # Two ladders of the same shape and knot counts but different spans share one compiled
    # program; its walk must bend at the second ladder's knots, not the first's.
    a = ladder(seed_=2)
    b = a.copy()
    b["params"] = 3e8 * (a["params"] / 3e8) ** 1.5
    b["tokens"] = b["params"] * a["tokens"] / a["params"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bs.BayescaleWarning)
        fit_a = bs.fit(a, "chinchilla", seed=0, discrepancy=PRIOR, chains=2, warmup=50, draws=20, progress=False)
        fit_b = bs.fit(b, "chinchilla", seed=0, discrepancy=PRIOR, chains=2, warmup=50, draws=20, progress=False)
    da, db = fit_a.spec.discrepancy, fit_b.spec.discrepancy
    assert da.key() == db.key() and da.knots != db.knots            # one compiled program, two knot sets
    stored = fit_b.idata.log_likelihood["y"].isel(chain=0, draw=slice(0, 20)).values
    np.testing.assert_allclose(stored, _loglik_by_hand(fit_b, b, db), rtol=1e-3, atol=1e-3)
    # control: the first ladder's knots give a different likelihood
    assert np.abs(stored - _loglik_by_hand(fit_b, b, da)).max() > 1e-2


def test_a_fixed_ratio_ladder_widens_predictions_off_its_line():
    """Every run at 20 tokens per parameter: the walk has no fitted knots along D/N, but beyond the
    runs it goes on from the prior, so a run at 200 tokens per parameter (one decade off the line)
    gets the walk's variance; the control, a run on the line at the same compute, almost none."""
    n = np.geomspace(5e7, 1.5e9, 8)
    df = pd.DataFrame({"params": n, "tokens": 20 * n})
    df["loss"] = true_loss(df["params"], df["tokens"], 0.0) * np.exp(np.random.default_rng(1).normal(0, 0.005, 8))
    spec, _ = build(df, "chinchilla", discrepancy=PRIOR)
    assert spec.discrepancy.knots["tokens_per_param"] == [] and spec.discrepancy.steps["tokens_per_param"] > 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bs.BayescaleWarning)
        fit = bs.fit(df, "chinchilla", discrepancy=PRIOR, seed=0, **BUDGET)
    c = 6 * 3e8 * 6e9                                           # inside the runs' compute range
    points = pd.DataFrame({"params": [np.sqrt(c / 120), np.sqrt(c / 1200)]})
    points["tokens"] = c / (6 * points["params"])
    from bayescale.predict import prepare, response_draws

    stages: dict = {}
    response_draws(fit, prepare(fit, points, "observation").frame, "observation", np.random.default_rng(0), [],
                   stages=stages)
    delta = np.log(stages["discrepancy"]) - np.log(stages["parameters"])   # the walk, on log loss
    on_line, off_line = np.std(delta, axis=0)
    assert off_line > 0.003 and on_line < 0.2 * off_line, (on_line, off_line)
    assert fit.predict(points, seed=0)["decades_beyond_data"].tolist() == pytest.approx([0.0, 1.0], abs=1e-6)


def short_curve(n_runs, seed_=0):
    """One loss curve of ``n_runs`` token counts (a power law in D, 1 % noise)."""
    d = np.geomspace(1e8, 1.6e9, n_runs)
    loss = (1.8 + 30.0 * d ** -0.2) * np.exp(np.random.default_rng(seed_).normal(0, 0.01, n_runs))
    return pd.DataFrame({"tokens": d, "loss": loss})


def test_a_walk_on_fewer_than_8_runs_has_no_fitted_knots():
    """With 5 runs a bend between them could pass through every point (and trade the scatter with
    the noise): no fitted knots, the walk starts at the runs' edge; 8 runs get one knot per side.
    Runs of different groups at the same inputs are different runs of a shared walk."""
    law = get_law("power:tokens")
    spec, data = build(short_curve(5), law, discrepancy=PRIOR)
    d = spec.discrepancy
    v = centre(law, data.inputs, spec.logref)["tokens"] / d.units["tokens"]
    assert d.size == 0 and d.knots == {"tokens": []}
    assert d.edges["tokens"] == pytest.approx([v.min(), v.max()])
    assert discrepancy.basis(d, {"tokens": v}, np).shape == (5, 0)
    # beyond the runs the walk's knots start at their edge, half a decade apart
    more = discrepancy.extended_knots(d, {"tokens": v.min() - 1.0}, {"tokens": v.max() + 1.0})["tokens"]
    assert min(t for t in more if t > 0) == pytest.approx(v.max() + 0.25)
    assert max(t for t in more if t < 0) == pytest.approx(v.min() - 0.25)
    assert discrepancy.Discrepancy.from_json(d.to_json()).edges == d.edges
    # control: 8 runs get fitted knots
    spec8, _ = build(short_curve(8), law, discrepancy=PRIOR)
    assert spec8.discrepancy.size == 2 and not spec8.discrepancy.edges
    # five curves of 5 runs at the same token counts, pooled by task: 25 runs for one shared walk
    pooled = pd.concat([short_curve(5, s).assign(task=f"t{s}") for s in range(5)], ignore_index=True)
    spec_p, _ = build(pooled, law, pool={"E": "task"}, discrepancy=PRIOR, discrepancy_by="none")
    assert spec_p.discrepancy.size == 2


def test_a_walk_without_fitted_knots_is_zero_over_the_runs_and_widens_beyond(tmp_path):
    df = short_curve(5, seed_=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bs.BayescaleWarning)
        fit = bs.fit(df, "power:tokens", seed=0, discrepancy=PRIOR, **BUDGET)
    assert discrepancy.SCALE in fit.posterior and discrepancy.STEPS not in fit.posterior
    assert fit.diagnostics["max_rhat"] < 1.05
    # no data inform s: its posterior is its prior, HalfNormal(0.02) (median 0.0135)
    assert np.median(fit.draws(discrepancy.SCALE)) == pytest.approx(0.02 * 0.6745, rel=0.15)
    points = pd.DataFrame({"tokens": [df.tokens.iloc[2], df.tokens.max(), 1.6e10, 1.6e11]})
    p = fit.predict(points, seed=0)
    assert p["share_discrepancy"].iloc[:2].tolist() == [0.0, 0.0]        # over the runs: the law alone
    assert 0 < p["share_discrepancy"].iloc[2] < p["share_discrepancy"].iloc[3]
    alone = fit.predict(points, seed=0, kind="curve")
    assert np.log(p["upper_90"] / p["lower_90"]).iloc[3] > np.log(alone["upper_90"] / alone["lower_90"]).iloc[3]
    path = fit.save(tmp_path / "short.nc")
    again = bs.load(path)
    assert again.spec.discrepancy.to_json() == fit.spec.discrepancy.to_json()
    pd.testing.assert_frame_equal(again.predict(points, seed=0), p)


def test_pymc_twin_matches_numpyro_without_fitted_knots():
    points, ours, theirs = _twin_densities(short_curve(5), get_law("power:tokens"), 3)
    assert all(discrepancy.STEPS not in p for p in points)
    np.testing.assert_allclose(theirs, ours, rtol=1e-6, atol=1e-3)

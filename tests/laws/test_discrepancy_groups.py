"""A discrepancy walk per group (``discrepancy_by``): where the law's curves differ by group, each
group's curve misses the law in its own way; the walks share one scale.

The statistical test: two families whose losses bend away from the power law in opposite
directions. A walk per family follows each bend beyond the runs; the control, one walk shared by
both, cannot bend one up and the other down, and its medians miss."""
from __future__ import annotations

import warnings
from dataclasses import replace

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from numpyro.handlers import seed, trace
from numpyro.infer.util import log_density

import bayescale as bs
from bayescale.design import centre
from bayescale import discrepancy
from bayescale.discrepancy import walk_inputs
from bayescale.errors import BayescaleError, BayescaleWarning
from bayescale.inference import build, make_model

PRIOR = "HalfNormal(0.02)"
BEND = {"up": 0.02, "down": -0.02}   # curvature of log loss per squared decade of N, by family
SIZES = np.geomspace(1e7, 1e9, 8)
FAR = np.array([1e10, 3e10])


def true_loss(n, bend):
    u = np.log10(np.asarray(n, float) / 1e8)
    return (1.7 + 400.0 * np.asarray(n, float) ** -0.3) * np.exp(bend * u ** 2)


def families(seed_: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed_)
    rows = [{"params": n, "family": f, "loss": float(true_loss(n, b) * np.exp(rng.normal(0, 0.003)))}
            for f, b in BEND.items() for n in SIZES]
    return pd.DataFrame(rows)


def quiet_fit(df, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BayescaleWarning)
        return bs.fit(df, "power", discrepancy=PRIOR, seed=0, chains=2, warmup=500, draws=500, progress=False, **kw)


@pytest.fixture(scope="module")
def fits():
    df = families()
    return df, quiet_fit(df), quiet_fit(df, discrepancy_by="none")


def test_auto_gives_a_walk_per_group_of_the_law_pooling():
    df = families()
    spec, _ = build(df, "power", discrepancy=PRIOR)
    assert spec.pooled == {"log_A0": "family"}
    assert spec.discrepancy.group == "family" and spec.discrepancy.n_groups == 2
    assert build(df, "power", discrepancy=PRIOR, discrepancy_by="none")[0].discrepancy.group is None
    assert build(df, "power", pool="none", discrepancy=PRIOR)[0].discrepancy.group is None
    # a family with fewer than 8 distinct runs cannot identify a walk of its own: one is shared
    thin = df.drop(index=df.index[df.family.eq("down")][:3])
    spec, _ = build(thin, "power", discrepancy=PRIOR)
    assert spec.discrepancy.group is None
    assert any("a walk per family needs 8 distinct runs in each, and 1 have fewer (e.g. 'down': 5)" in n
               for n in spec.notes)
    assert build(thin, "power", discrepancy=PRIOR, discrepancy_by="family")[0].discrepancy.group == "family"
    with pytest.raises(BayescaleError, match=r"discrepancy_by must be 'auto', 'none' or a grouping column"):
        build(df, "power", discrepancy=PRIOR, discrepancy_by="colour")


def test_a_walk_per_family_follows_each_bend_and_one_shared_walk_does_not(fits):
    df, per_group, shared = fits
    pts = pd.DataFrame({"params": np.tile(FAR, 2), "family": np.repeat(list(BEND), len(FAR))})
    truth = np.array([true_loss(n, BEND[f]) for n, f in zip(pts["params"], pts["family"])])
    ours = per_group.predict(pts, kind="mean", seed=1)
    theirs = shared.predict(pts, kind="mean", seed=1)
    inside = (ours["lower_90"] <= truth) & (truth <= ours["upper_90"])
    assert inside.all(), ours
    err_ours = np.abs(np.log(ours["median"].to_numpy() / truth))
    err_theirs = np.abs(np.log(theirs["median"].to_numpy() / truth))
    assert err_ours.max() < 0.5 * err_theirs.max(), (err_ours, err_theirs)
    assert err_theirs.max() > 0.03


def test_saved_fit_keeps_the_walks_and_an_unseen_family_gets_a_new_walk(fits, tmp_path):
    _, per_group, _ = fits
    path = per_group.save(tmp_path / "fit.nc")
    again = bs.load(path)
    assert again.spec.discrepancy.to_json() == per_group.spec.discrepancy.to_json()
    assert again.posterior["disc_z"].dims[2:] == ("family", "disc_knot")
    pts = pd.DataFrame({"params": [3e10, 3e10], "family": ["up", "new"]})
    with pytest.warns(BayescaleWarning, match=r"\['new'\] not in the fit: their discrepancy walk is drawn"):
        out = again.predict(pts, seed=2)
    pd.testing.assert_frame_equal(out, per_group.predict(pts, seed=2))
    assert np.all(np.isfinite(out[["lower_90", "upper_90"]].to_numpy()))


def test_pymc_twin_matches_numpyro_with_a_walk_per_group(fits):
    pytest.importorskip("pymc", reason="PyMC not installed (pip install bayescale[pymc])")
    from pymc.model.transform.conditioning import remove_value_transforms

    from bayescale.pymc_interop import to_pymc

    df = families()
    spec, data = build(df, "power", discrepancy=PRIOR)
    model = make_model(spec, natural=True)
    x = {k: jnp.asarray(v) for k, v in centre(spec.law, data.inputs, spec.logref).items()}
    idx = {g: jnp.asarray(data.group_index[g]) for g in spec.coords}
    y = jnp.asarray(np.log(data.response))
    walk = {k: jnp.asarray(v) for k, v in walk_inputs(spec.discrepancy, x, data.group_index).items()}
    points, ours = [], []
    for s in range(3):
        tr = trace(seed(model, jax.random.PRNGKey(s))).get_trace(x, idx, None, None, walk)
        point = {k: np.asarray(v["value"], np.float64) for k, v in tr.items() if v["type"] == "sample" and k != "y"}
        points.append(point)
        ours.append(float(log_density(model, (x, idx, y, None, walk), {}, point)[0]))
    assert points[0]["disc_z"].shape == (2, spec.discrepancy.size)
    free = remove_value_transforms(to_pymc(df, "power", discrepancy=PRIOR, natural=True))
    logp = free.compile_fn(free.logp(), mode="FAST_COMPILE")
    np.testing.assert_allclose([float(logp(p)) for p in points], ours, rtol=1e-6, atol=1e-3)
    # control: at a posterior draw (where the likelihood is sharp), swapping the two families'
    # walks gives another density
    post = fits[1].posterior.isel(chain=0, draw=0)
    at = {k: np.asarray(post[k].values, np.float64) for k in points[0]}
    swapped = {**at, "disc_z": at["disc_z"][::-1]}
    assert abs(float(logp(swapped)) - float(logp(at))) > 1.0


def test_rows_that_name_no_family_are_predicted_for_a_new_family_with_one_warning(fits):
    """A table without the family column reads as the label "all": one warning says the rows are
    predicted for a new family and how to name a fitted one, not one warning per part drawn
    for an unseen label "all"."""
    _, per_group, _ = fits
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        out = per_group.predict(pd.DataFrame({"params": [3e10]}), seed=2)
    texts = [str(w.message) for w in seen if issubclass(w.category, BayescaleWarning)]
    assert len(texts) == 1, texts
    assert texts[0].startswith("the rows name no family, so they are predicted for a new family (its log_A0 drawn")
    assert "discrepancy walk" in texts[0] and "one of 'down', 'up'" in texts[0]
    assert "'all'" not in texts[0] and texts[0] in out.attrs["notes"]
    # the same draws as naming an unseen family outright
    named = per_group.predict(pd.DataFrame({"params": [3e10], "family": ["all"]}), seed=2)
    pd.testing.assert_frame_equal(out, named.drop(columns="family"))


def test_a_thin_groups_walk_starts_at_its_own_runs_edge():
    """Two 5-run families with a walk each (no fitted knots): 'short' ends a decade below 'long'.
    Between the two edges, 'short' is beyond its runs, so its walk has begun there; for 'long' the
    same point is inside its runs and its walk is zero. The control is the edge of all the runs,
    which left 'short' with no walk there."""
    df = families()
    short = df[(df.family == "up") & df.params.isin(SIZES[:5])].assign(family="short")
    long_ = df[(df.family == "down") & df.params.isin(SIZES[3:])].assign(family="long")
    spec, _ = build(pd.concat([short, long_], ignore_index=True), "power", discrepancy=PRIOR,
                    discrepancy_by="family")
    disc = spec.discrepancy
    assert disc.size == 0 and set(disc.group_edges) == {"params"}
    _, hi_short = disc.group_edges["params"][spec.coords["family"].index("short")]
    assert hi_short < disc.edges["params"][1] - 0.5          # ends well inside all the runs' edge
    rows = np.array([spec.coords["family"].index("short"), spec.coords["family"].index("long")])
    scale = np.full(2000, 0.05)
    steps = np.zeros((2000, 2, 0))
    x = centre(spec.law, {"params": np.full(2, SIZES[6])}, spec.logref)
    delta = discrepancy.predict_term(disc, scale, steps, x, np.random.default_rng(0), rows)
    assert delta[:, 0].std() > 1e-3 and np.all(delta[:, 1] == 0.0)
    control = discrepancy.predict_term(replace(disc, group_edges={}), scale, steps, x, np.random.default_rng(0), rows)
    assert np.all(control == 0.0)
    assert discrepancy.Discrepancy.from_json(disc.to_json()).group_edges == disc.group_edges

"""Group offsets (bayescale.group_offset): a shift of the curve per family, shared across scales.

The statistical test fits runs from five families whose losses differ by a constant factor at every
size, and predicts each family's next, ten-times-larger run. With offsets, each family's own shift
is learned from its small runs; the control (no offsets) predicts every family on the population's
curve and misses by the family's shift."""
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
from bayescale.design import centre
from bayescale.errors import BayescaleError, BayescaleWarning
from bayescale.inference import build, make_model

SHIFTS = {"f0": -0.10, "f1": -0.05, "f2": 0.0, "f3": 0.05, "f4": 0.10}   # log-loss offset per family
SIZES = np.geomspace(1e7, 1e9, 6)
NEXT = 1e10                                                              # each family's held-out run


def loss(n, shift, rng):
    return (1.7 + 400.0 * n ** -0.3) * np.exp(shift + 0.01 * rng.standard_normal(np.shape(n)))


def family_runs(seed_: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed_)
    train = pd.DataFrame([{"params": n, "family": f, "loss": float(loss(n, b, rng))}
                          for f, b in SHIFTS.items() for n in SIZES])
    test = pd.DataFrame([{"params": NEXT, "family": f, "loss": float(loss(NEXT, b, rng))} for f, b in SHIFTS.items()])
    return train, test


def quiet_fit(df, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BayescaleWarning)
        return bs.fit(df, "power", pool="none", discrepancy="none", seed=0, chains=2, warmup=500, draws=500,
                      progress=False, **kw)


@pytest.fixture(scope="module")
def fits():
    train, test = family_runs()
    return train, test, quiet_fit(train, offset="family"), quiet_fit(train)


def test_offsets_predict_each_familys_next_run_and_the_control_misses(fits):
    _, test, with_offsets, control = fits
    ours = with_offsets.predict(test, levels=(0.9, 0.98))
    theirs = control.predict(test)
    err_ours = np.abs(np.log(ours["median"] / test["loss"]))
    err_theirs = np.abs(np.log(theirs["median"] / test["loss"]))
    # 5 runs at 90 %: all 5 inside happens only 59 % of the time even when calibrated (this one's
    # edge moved by 0.06 % when the compiled code's rounding changed), so at least 4 of 5, and all
    # 5 inside the 98 % intervals
    inside = (test["loss"] >= ours["lower_90"]) & (test["loss"] <= ours["upper_90"])
    assert inside.sum() >= 4, ours
    assert ((test["loss"] >= ours["lower_98"]) & (test["loss"] <= ours["upper_98"])).all(), ours
    assert err_ours.max() < 0.03, err_ours
    # the control predicts every family on one curve: off by the family's shift (up to 0.10)
    assert err_theirs.max() > 0.07, err_theirs
    # the families' shifts are recovered (about their mean: the curve's level absorbs a common shift),
    # within 2.5 times the 1 % noise
    b = with_offsets.draws("offset_by_family").mean(axis=0)
    truth = np.array(list(SHIFTS.values()))
    np.testing.assert_allclose(b - b.mean(), truth - truth.mean(), atol=0.025)


def test_an_unseen_family_gets_the_spread_between_families(fits):
    _, test, with_offsets, _ = fits
    rows = pd.DataFrame({"params": [NEXT, NEXT], "family": ["f2", "new"]})
    with pytest.warns(BayescaleWarning, match=r"\['new'\] not in the fit: their offset is drawn"):
        out = with_offsets.predict(rows)
    width = out["upper_90"] - out["lower_90"]
    assert width[1] > 2.5 * width[0]   # offsets spread ~0.08 in log loss, far above one family's noise


def test_saved_fit_keeps_the_offsets(fits, tmp_path):
    _, test, with_offsets, _ = fits
    path = tmp_path / "fit.nc"
    with_offsets.save(path)
    again = bs.load(path)
    assert [t.to_json() for t in again.spec.offsets] == [t.to_json() for t in with_offsets.spec.offsets]
    pd.testing.assert_frame_equal(again.predict(test), with_offsets.predict(test))
    assert "offset[f4]" in again.summary().index and "offset_family_tau" in again.summary().index
    assert list(again.posterior["offset_by_family"].coords["family"].values) == list(SHIFTS)


@pytest.mark.parametrize("setting, expected", [
    ("colour", r"an offset term must be a grouping column \['family', 'dataset', 'task'\] or two joined by '\*', got 'colour'"),
    ("family*family", r"two joined by '\*', got 'family\*family'"),
    ("dataset", r"needs at least two dataset labels in the data, found 1 \(\['all'\]\)"),
    ({"group": "family", "prior": "Normal(0, 1)"}, r"must be on tau >= 0"),
    ({"grp": "family"}, r"takes keys 'group' and optionally 'prior'"),
    (["family", "family"], r"offset terms repeat a grouping"),
])
def test_bad_offset_settings_are_clear_errors(setting, expected):
    train, _ = family_runs()
    with pytest.raises(BayescaleError, match=expected):
        build(train, "power", pool="none", offset=setting)


def test_an_offset_on_a_grouping_that_pools_a_law_parameter_is_refused():
    train, _ = family_runs()
    with pytest.raises(BayescaleError, match=r"would duplicate the law parameter\(s\) \['log_A0'\] pooled by family"):
        build(train, "power", pool={"log_A0": "family"}, offset="family")


def test_pymc_twin_has_the_same_density_with_offsets():
    pytest.importorskip("pymc", reason="PyMC not installed (pip install bayescale[pymc])")
    from pymc.model.transform.conditioning import remove_value_transforms

    from bayescale.pymc_interop import to_pymc

    train, _ = family_runs()
    train = pd.concat([train.assign(task="a"), train.assign(task="b", loss=train.loss * 1.1)], ignore_index=True)
    terms = ["family", "family*task"]
    spec, data = build(train, "power", pool="none", offset=terms)
    assert spec.coords["family_x_task"][:2] == ["f0 / a", "f0 / b"] and len(spec.coords["family_x_task"]) == 10
    model = make_model(spec, natural=True)
    x = {k: jnp.asarray(v, dtype=jnp.float32) for k, v in centre(spec.law, data.inputs, spec.logref).items()}
    idx = {g: jnp.asarray(data.group_index[g]) for g in spec.coords}
    y = jnp.asarray(np.log(data.response), jnp.float32)
    points = []
    for s in range(3):
        tr = trace(seed(model, jax.random.PRNGKey(s))).get_trace(x, idx, None, None)
        points.append({k: np.asarray(v["value"], np.float64) for k, v in tr.items()
                       if v["type"] == "sample" and k != "y"})
    ours = np.array([float(log_density(model, (x, idx, y, None), {}, p)[0]) for p in points])
    pm_model = to_pymc(train, "power", pool="none", offset=terms, natural=True)
    free = remove_value_transforms(pm_model)
    logp = free.compile_fn(free.logp(), mode="FAST_COMPILE")
    theirs = np.array([float(logp(p)) for p in points])
    np.testing.assert_allclose(theirs, ours, rtol=2e-5, atol=1e-3)
    assert pm_model.named_vars_to_dims["offset_by_family"] == ("family",)
    assert pm_model.named_vars_to_dims["offset_by_family_x_task"] == ("family_x_task",)
    # control: the same points with the interaction's offsets moved give another density
    moved = [{**p, "offset_family_x_task_z": p["offset_family_x_task_z"] + 1.0} for p in points]
    assert np.all(np.abs(np.array([float(logp(p)) for p in moved]) - ours) > 1.0)


def test_a_familys_floor_is_its_curves_floor_with_its_offset(fits):
    """min_loss(family=f) is the family's own asymptote, E shifted by f's offset, as predict's
    expected value gives it far beyond the data; control: the two extreme families differ by
    their shifts, and without a label the typical group (no offset) is used."""
    _, _, with_offsets, _ = fits
    far = pd.DataFrame({"params": [1e30] * 2, "family": ["f0", "f4"]})
    curve = with_offsets.predict(far, kind="mean")["median"].to_numpy()
    floors = [float(with_offsets.min_loss(family=f)["loss_median"].iloc[0]) for f in ("f0", "f4")]
    np.testing.assert_allclose(floors, curve, rtol=1e-6)
    assert 0.15 < np.log(floors[1] / floors[0]) < 0.25    # f4 - f0 = 0.20 in log loss
    typical = with_offsets.min_loss()
    assert any("no group offset" in n for n in typical.attrs["notes"])
    assert float(typical["loss_median"].iloc[0]) == pytest.approx(float(np.median(with_offsets.draws("E"))), rel=1e-9)


def test_allocation_and_tokens_for_a_loss_carry_the_familys_offset():
    """With offset='family', a family that sits 20 % higher in loss at every size needs more tokens
    for a given loss and reaches a higher loss at the optimum; N* and D* do not move (a constant
    factor does not move the minimum). Control: two families with the same label set, same answer."""
    rng = np.random.default_rng(1)
    n, r = np.meshgrid(np.geomspace(3e7, 1e9, 5), [10.0, 40.0], indexing="ij")
    rows = []
    for family, shift in (("low", -0.1), ("high", 0.1)):
        mu = 1.7 + np.exp(-0.3 - 0.34 * np.log(n / 2e8)) + np.exp(-0.4 - 0.28 * np.log(n * r / 4e9))
        rows += [{"params": a, "tokens": a * b, "family": family, "loss": float(m * np.exp(shift + 0.005 * e))}
                 for a, b, m, e in zip(n.ravel(), r.ravel(), mu.ravel(), rng.standard_normal(n.size))]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BayescaleWarning)
        fit = bs.fit(pd.DataFrame(rows), "chinchilla", pool="none", offset="family", discrepancy="none", seed=0,
                     chains=2, warmup=300, draws=300, progress=False)
    low, high = (fit.optimal_allocation([1e21], family=f) for f in ("low", "high"))
    assert 0.15 < np.log(high["loss_median"].iloc[0] / low["loss_median"].iloc[0]) < 0.25
    assert high["params_median"].iloc[0] == pytest.approx(low["params_median"].iloc[0], rel=1e-9)
    target = float(low["loss_median"].iloc[0]) * 1.3
    need_low, need_high = (fit.tokens_for_loss(target, params=1e9, family=f)["tokens_median"].iloc[0]
                           for f in ("low", "high"))
    assert need_high > 2 * need_low
    again = fit.optimal_allocation([1e21], family="low")
    pd.testing.assert_frame_equal(again, low)

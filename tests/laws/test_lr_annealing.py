"""The LR-annealing law (Tissue et al. 2024): schedule areas S1 / S2, the law, recovery, SBC, Gemstones.

Recovery: one simulated run (8 constant-LR checkpoints + 6 cooldown ends, lambda 0.99, truth near
the Gemstones fits: L0 2.5, A 0.4 at S1_0, alpha 0.48, C 0.08, 0.2 % noise as in Gemstones),
2 chains x 300 + 300; every law parameter must satisfy |mean - truth| / sd < 3.5. The control fits
the same data with the annealing term removed (C fixed at ~0): the robust Student-t likelihood then
treats the cooldowns as outliers, so the parameters barely move, but the data must reject that law:
its leave-one-out ELPD must fall short of the correct law's by more than 4 standard errors (offline,
seed 3: correct law z <= 1.3, ELPD difference 18.8 with SE 2.4).
"""
from __future__ import annotations

import arviz as az
import numpy as np
import pytest

from bayescale import schedules
from bayescale.sbc import sbc
from sbc_helpers import assert_calibrated, assert_control_fails
from bayescale.datasets.paths import find_home
from bayescale.errors import BayescaleError
from bayescale.models import get_law
from bayescale.datasets.schedule_curves import gemstones_curves
from bayescale.models.lr_annealing import schedule_design
from bayescale.simulate import simulate
from fit_helpers import Z_MAX, fit_quietly, z_scores

TRUTH = {"L0": 2.5, "log_A0": np.log(0.4), "alpha": 0.48, "C": 0.08}
NOISE = {"sigma": 0.002, "nu": 30.0}


def naive_areas(lrs, decay, warmup=0):
    """The paper's recursion written out step by step."""
    s1 = s2 = m = 0.0
    out = []
    for i, lr in enumerate(lrs):
        s1 += lr
        if i >= max(warmup, 1):
            m = decay * m + (lrs[i - 1] - lr)
        s2 += m
        out.append((s1, s2))
    return np.asarray(out).T


def test_areas_closed_forms_and_recursion():
    s1, s2 = schedules.schedule_areas("constant", 500, unit=1.0)
    assert np.allclose(s1, np.arange(1, 501)) and np.all(s2 == 0)
    # lambda = 0: m_i is the step's drop, so S2 is the total drop so far (peak - lr)
    lrs = schedules.lr_schedule("wsd", 1000, cooldown=0.2, final=0.1)
    _, s2 = schedules.annealing_areas(lrs, decay=0.0, unit=1.0)
    assert s2[-1] == pytest.approx(0.9) and np.all(s2[:800] == 0)
    # general lambda, cosine with warmup: matches the recursion step by step
    lrs = schedules.lr_schedule("cosine", 3000, warmup=100, peak=3e-4)
    a = schedules.annealing_areas(lrs, warmup=100, decay=0.999, unit=1.0)
    b = naive_areas(lrs, 0.999, warmup=100)
    assert np.allclose(a, b, rtol=1e-9, atol=1e-12)
    assert lrs[0] == pytest.approx(3e-6) and lrs[99] == pytest.approx(3e-4) and lrs[-1] == pytest.approx(0.0)
    # a long anneal from the peak to 0 has S2 -> 1 in the default unit 1 / (1 - lambda)
    for lrs in (np.r_[np.ones(10), np.zeros(5000)], np.r_[np.ones(10), np.linspace(1, 0, 20000)]):
        assert schedules.annealing_areas(lrs, decay=0.99)[1][-1] == pytest.approx(1.0, rel=0.01)


def test_cooldown_areas_equal_a_wsd_schedule():
    s1, s2 = schedules.schedule_areas("wsd", 11000, [11000], cooldown=1000 / 11000, decay=0.99)
    c1, c2 = schedules.cooldown_areas(10000, 11000, decay=0.99)
    assert c1 == pytest.approx(s1[0], rel=1e-3) and c2 == pytest.approx(s2[0], rel=2e-2)


def test_schedule_errors_name_the_problem():
    with pytest.raises(BayescaleError, match="unknown schedule 'linear'.*cosine"):
        schedules.lr_schedule("linear", 100)
    with pytest.raises(BayescaleError, match="steps must lie in 1..10"):
        schedules.annealing_areas(np.ones(10), [11])
    with pytest.raises(BayescaleError, match="begin < end"):
        schedules.cooldown_areas(100, 100)


def test_law_matches_the_paper_form():
    law = get_law("lr-annealing")
    design = schedule_design([1000, 4000, 9000], [3000, 8000])
    df, _ = simulate(law, design, {**TRUTH, **NOISE}, noise=False)
    ref = df.attrs["logref"]
    raw = law.derived({k: np.asarray(v) for k, v in TRUTH.items()}, ref)
    expected = raw["L0_raw"] + raw["A"] * design["S1"] ** -TRUTH["alpha"] - TRUTH["C"] * design["S2"]
    assert np.allclose(df["loss"], expected, rtol=1e-5)


def _fit(df, **kw):
    return fit_quietly(df, "lr-annealing", seed=1, **kw)


def test_recovery_and_no_annealing_control():
    law = get_law("lr-annealing")
    df, _ = simulate(law, law.sbc_design(), {**TRUTH, **NOISE}, seed=3)
    fit = _fit(df)
    z = z_scores(fit, TRUTH)
    assert max(z.values()) < Z_MAX, z
    assert fit.diagnostics["divergences"] <= 6, fit.diagnostics
    wrong = _fit(df, priors={"C": "Delta(1e-6)"})
    cmp = az.compare({"law": fit.idata, "no_annealing": wrong.idata})
    assert cmp.index[0] == "law"
    assert cmp.loc["no_annealing", "elpd_diff"] > 4 * cmp.loc["no_annealing", "dse"], cmp


@pytest.mark.slow
def test_sbc_lr_annealing():
    assert_calibrated(sbc("lr-annealing", n_sims=200, seed=0, chains=1, warmup=200, draws=300, thin=3, bins=20))
    assert_control_fails(sbc("lr-annealing", n_sims=40, seed=0, chains=1, warmup=200, draws=300, thin=3, bins=8,
                             fit_priors={"sigma": "Delta(0.0005)"}))


HOME = find_home()


@pytest.mark.skipif(HOME is None or not (HOME / "gemstones").is_dir(),
                    reason="Gemstones data not found (set BAYESCALE_DATA)")
def test_gemstones_curves_have_both_schedules():
    df = gemstones_curves(decay=0.99)
    assert set(df["schedule"]) == {"constant", "cooldown"}
    hot, cool = df[df.schedule == "constant"], df[df.schedule == "cooldown"]
    assert len(hot) == 770 and len(cool) == 199 and (hot["S2"] == 0).all()
    # a 10 % cooldown ends at 1.1 x its start, with S1 = start + half the cooldown (in peak-LR units)
    assert np.allclose(cool["step"] / cool["branch_step"], 1.1, atol=0.002)
    assert np.allclose(cool["S1"] * 100, cool["branch_step"] + (cool["step"] - cool["branch_step"]) / 2, rtol=1e-3)
    assert ((cool["S2"] > 0.5) & (cool["S2"] < 1)).all()
    assert df["family"].nunique() == 22

"""A family with only 3 points borrows strength from the other families.

Data: the saturating power law L = E + exp(log_A0[family] - alpha log(N/N0)) with shared E = 1.8
and alpha = 0.34 and a family-specific log_A0. Four families have 12 runs each (N from 1e7 to 1e9);
family "small" has 3 runs at N = 2e7, 5e7, 1e8. Noise: 2 % on log loss (sigma 0.02, nu 30).

What is compared (both fits with the law's default priors and the same budget):
  * pooled:   all 51 runs, ``pool={"log_A0": "family"}`` (partial pooling of log_A0; E and alpha
              shared by every family);
  * unpooled: the 3 runs of "small" alone (3 points, 3 law parameters: the minimum the validator
              accepts; a 5-parameter law could not be fitted to them at all).
The quantity: the 90 % credible interval of the law's mean loss (``predict(kind="mean")``) for
"small" at N = 1e9, ten times its largest run. The pooled interval must be narrower than the
unpooled one and must contain the true mean loss; the pooled 90 % interval of log_A0 for "small"
must also contain its true value.

Honest caveat: the pooled fit gains from two things at once, the shared E and alpha (learnt from
the 48 other runs) and the partial pooling of log_A0 across families; this test checks that the
small family benefits from the rest of the data, not which of the two mechanisms does more.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bayescale.models import get_law
from bayescale.simulate import simulate
from fit_helpers import fit_quietly

TRUTH = {
    "E": 1.8,
    "alpha": 0.34,
    "log_A0": {"f1": -0.55, "f2": -0.35, "f3": -0.75, "f4": -0.45, "small": -0.60},
    "sigma": 0.02,
    "nu": 30.0,
}
# Fixed seed. Offline, seeds 0-4 all passed with margin: the pooled 90 % interval at N = 1e9 was
# 5-13x narrower than the unpooled one and always covered the truth, and the pooled log_A0[small]
# interval always covered -0.60. Seed 3 (used here): pooled [2.019, 2.103], unpooled [1.710, 2.520],
# true mean loss 2.053; log_A0[small] in [-0.755, -0.250].
SEED = 3
TARGET_N = 1e9
LEVEL = 0.9


def design() -> pd.DataFrame:
    rows = []
    for i, fam in enumerate(["f1", "f2", "f3", "f4"]):
        for n in np.geomspace(1e7, 1e9, 12) * (1 + 0.05 * i):
            rows.append({"family": fam, "params": n})
    for n in (2e7, 5e7, 1e8):
        rows.append({"family": "small", "params": n})
    return pd.DataFrame(rows)


def true_mean(n: float, logref: float) -> float:
    return TRUTH["E"] + np.exp(TRUTH["log_A0"]["small"] - TRUTH["alpha"] * (np.log(n) - logref))


@pytest.fixture(scope="module")
def fits():
    law = get_law("power")
    df, _ = simulate(law, design(), TRUTH, seed=SEED, pool={"log_A0": "family"})
    logref = df.attrs["logref"]["params"]
    pooled = fit_quietly(df, "power", pool={"log_A0": "family"}, seed=SEED)
    alone = fit_quietly(df[df["family"] == "small"], "power", seed=SEED)
    target = pd.DataFrame({"family": ["small"], "params": [TARGET_N]})
    key = f"{LEVEL * 100:g}"
    out = {"pooled": pooled, "alone": alone, "truth": true_mean(TARGET_N, logref), "logref": logref}
    for name, f in (("pooled", pooled), ("alone", alone)):
        p = f.predict(target, levels=(LEVEL,), kind="mean").iloc[0]
        out[f"{name}_interval"] = (p[f"lower_{key}"], p[f"upper_{key}"])
    return out


def test_pooled_fit_is_hierarchical_and_clean(fits):
    pooled = fits["pooled"]
    assert pooled.spec.pooled["log_A0"] == "family"
    assert "small" in pooled.spec.coords["family"]
    assert pooled.diagnostics["divergences"] <= 6  # of 600 draws


def test_small_family_interval_narrower_with_pooling(fits):
    (lo_p, hi_p), (lo_a, hi_a) = fits["pooled_interval"], fits["alone_interval"]
    width_p, width_a = hi_p - lo_p, hi_a - lo_a
    assert width_p < width_a, (
        f"pooled 90% interval at N=1e9 {(lo_p, hi_p)} is not narrower than the unpooled {(lo_a, hi_a)}")


def test_small_family_pooled_interval_covers_truth(fits):
    lo, hi = fits["pooled_interval"]
    truth = fits["truth"]
    assert lo < truth < hi, f"pooled 90% interval {(lo, hi)} misses the true mean loss {truth:.4f} at N=1e9"


def test_small_family_log_A0_interval_covers_truth(fits):
    # simulate and the pooled fit use the same rows, hence the same reference N0: directly comparable
    s = fits["pooled"].summary(quantiles=(0.05, 0.95)).loc["log_A0[small]"]
    truth = TRUTH["log_A0"]["small"]
    assert s["5%"] < truth < s["95%"], f"log_A0[small] 90% interval {(s['5%'], s['95%'])} misses {truth}"


def test_auto_parametrisation_centres_only_well_observed_groups():
    """Groups with >= 8 points each are sampled centred, a 3-point group forces non-centred."""
    from bayescale.datasets import demo_data
    from bayescale.inference import build

    demo = demo_data()
    spec, _ = build(demo, "chinchilla", pool={"log_A0": "family"})
    assert spec.centred == ("log_A0",)
    thin = pd.concat([demo[demo["family"] != "wide"], demo[demo["family"] == "wide"].head(3)])
    spec, _ = build(thin, "chinchilla", pool={"log_A0": "family"})
    assert spec.centred == ()
    spec, _ = build(demo, "chinchilla", pool={"log_A0": "family"}, parametrisation="non-centred")
    assert spec.centred == ()

"""Tissue et al. (2024), "Scaling Law with Learning Rate Annealing": L(s) = L0 + A·S1^-alpha - C·S2.

S1 (forward area) and S2 (annealing area with momentum) come from the learning-rate schedule; see
``bayescale.schedules``. S1 is centred on the log scale, S2 (often 0: no annealing yet) linearly.
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pandas as pd

from .. import schedules
from .base import Law, Param
from .registry import register

SOFT = 0.01


@register
class LRAnnealing(Law):
    """L = L0 + A·(S1/S1_0)^-alpha - C·(S2 - S2_0), with S1_0 the geometric and S2_0 the arithmetic
    mean of the data's areas. ``L0`` is the floor at S2 = S2_0; the paper's L0 (at S2 = 0) is the
    derived ``L0_raw``. Areas in the units of ``bayescale.schedules`` (peak LR x 1/(1-lambda) steps),
    where a long anneal to 0 has S2 ~ 1, so C is about the loss drop of a full anneal."""

    name = "lr-annealing"
    formula = "L = L0 + A·S1^-alpha - C·S2"
    derived_doc = {"A": "A of the raw form, with S1 unnormalised", "L0_raw": "L0 of the raw form, with S2 unnormalised"}
    inputs = ("S1", "S2")
    linear_inputs = ("S2",)
    params = {
        "L0": Param(dist.LogNormal(0.5, 0.5), pool="family", doc="loss floor at S2 = S2_0"),
        "log_A0": Param(dist.Normal(-1.5, 1.5), pool="family", doc="log forward term at S1_0"),
        "alpha": Param(dist.LogNormal(np.log(0.5), 0.6), doc="forward-area exponent"),
        "C": Param(dist.LogNormal(np.log(0.1), 1.0), pool="family", group_scale=0.5,
                   doc="loss drop per unit of annealing area"),
    }

    def mean(self, x, p, xp=jnp):
        raw = p["L0"] + xp.exp(p["log_A0"] - p["alpha"] * x["S1"]) - p["C"] * x["S2"]
        # the subtraction can go below 0 for extreme draws (a large C); a softplus with a 0.01-nat
        # knee keeps the loss positive and equals the raw law (to < 1e-6) wherever raw > 0.15
        return SOFT * (xp.logaddexp(raw / SOFT, 0.0) + 1e-6)

    def sbc_design(self) -> pd.DataFrame:
        """One run: 8 constant-LR checkpoints (2k-30k steps) and 6 ends of 10 % cooldowns (lambda 0.99)."""
        return schedule_design(np.geomspace(2000, 30000, 8).round(), np.geomspace(2000, 20000, 6).round())

    def derived(self, p, logref):
        return {
            "A": np.exp(p["log_A0"] + p["alpha"] * logref["S1"]),
            "L0_raw": p["L0"] + p["C"] * logref["S2"],
        }


def schedule_design(hot_steps, cooldown_begins, *, cooldown: float = 0.1, decay: float = 0.99) -> pd.DataFrame:
    """Rows (S1, S2) of one run: constant-LR checkpoints at ``hot_steps`` and the ends of linear
    cooldowns to 0 that begin at ``cooldown_begins`` and last ``cooldown`` of the steps so far."""
    hot = np.asarray(hot_steps, dtype=np.int64)
    s1, s2 = schedules.annealing_areas(np.ones(int(hot.max())), hot, decay=decay)
    rows = [{"step": int(s), "S1": a, "S2": b, "schedule": "constant"} for s, a, b in zip(hot, s1, s2)]
    for b in np.asarray(cooldown_begins, dtype=np.int64):
        end = int(round(b * (1 + cooldown)))
        a1, a2 = schedules.cooldown_areas(int(b), end, decay=decay)
        rows.append({"step": end, "S1": a1, "S2": a2, "schedule": "cooldown"})
    return pd.DataFrame(rows)

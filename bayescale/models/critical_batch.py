"""Critical batch size against loss: B_crit(L) = B*·L^(-1/alpha_B).

The form is Kaplan et al. (2020, eq. 5.4; B* ~ 2e8 tokens, alpha_B ~ 0.21), which Su et al. (2024,
"Unraveling the Mystery of Scaling Laws: Part I") re-fit. The response is a critical batch size
(tokens or sequences, stated by the user) and the input is the loss the batch size is critical at.
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pandas as pd

from .base import Law, Param
from .registry import register


@register
class CriticalBatch(Law):
    """B_crit = B_0·(L/L_0)^(-1/alpha_B) around the data's reference loss L_0; B* = B_0·L_0^(1/alpha_B)
    (the paper's coefficient, at L = 1 nat) is derived. Student-t noise on log B_crit."""

    name = "critical-batch"
    formula = "B_crit = B*·L^(-1/alpha_B)"
    derived_doc = {'B_star': 'B* of the raw form B_crit = B*·L^(-1/alpha_B)'}
    inputs = ("loss",)
    response = "critical_batch"
    params = {
        "log_B0": Param(dist.Normal(np.log(1e6), 3.0), pool="family", doc="log critical batch at L_0"),
        "alpha_B": Param(dist.LogNormal(np.log(0.2), 0.75), doc="loss exponent (B ~ L^(-1/alpha_B))"),
    }

    def mean(self, x, p, xp=jnp):
        return xp.exp(p["log_B0"] - x["loss"] / p["alpha_B"])

    def sbc_design(self) -> pd.DataFrame:
        """12 losses from 2 to 4 nats (the range of LLM pre-training losses)."""
        return pd.DataFrame({"loss": np.geomspace(2.0, 4.0, 12)})

    def derived(self, p, logref):
        return {"B_star": np.exp(p["log_B0"] + logref["loss"] / p["alpha_B"])}


def step_law_critical_batch(df: pd.DataFrame, tolerance: float = 0.01) -> pd.DataFrame:
    """A critical-batch proxy per (N, D) cell of a Step Law grid: the largest batch size whose best
    loss (over learning rates) is within ``tolerance`` (relative) of the cell's best loss.

    This is not Kaplan's B_crit (which needs steps-to-target-loss curves at many batch sizes): at fixed
    tokens, batches beyond it cost more loss than ``tolerance``. Returns one row per cell with
    params, tokens, loss (the cell's best loss), critical_batch (in the batch_size column's unit) and
    n_batch (how many batch sizes the cell has).
    """
    best = df.groupby(["params", "tokens", "batch_size"], as_index=False)["loss"].min()
    rows = []
    for (n, d), cell in best.groupby(["params", "tokens"]):
        floor = cell["loss"].min()
        ok = cell[cell["loss"] <= floor * (1 + tolerance)]
        rows.append({"params": n, "tokens": d, "loss": floor, "critical_batch": ok["batch_size"].max(),
                     "n_batch": len(cell), "at_grid_edge": ok["batch_size"].max() == cell["batch_size"].max()})
    return pd.DataFrame(rows)

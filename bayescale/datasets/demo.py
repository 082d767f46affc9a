"""The embedded demo: SYNTHETIC runs of three model families, simulated by bayescale itself from
known Chinchilla-law parameters, so that a prediction can be compared with the truth."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..models import get_law
from ..simulate import simulate

TRUTH_RAW = {  # literature parametrisation: L = E + A_f / N^alpha + B / D^beta
    "E": 1.80, "alpha": 0.34, "beta": 0.28, "B": 410.0,
    "A": {"dense": 420.0, "parallel": 470.0, "wide": 380.0},
}
NOISE_SIGMA = 0.012  # log-loss noise
DATASET = "synthetic-web"
SEED = 20240501


def _design() -> pd.DataFrame:
    rows = []
    sizes = {"dense": [2e7, 5e7, 1.2e8, 3e8, 7e8, 1e9],
             "parallel": [3e7, 8e7, 2e8, 5e8],
             "wide": [2.5e7, 1e8, 4e8]}
    for family, ns in sizes.items():
        for n in ns:
            for tpp in (5, 10, 20, 40):
                rows.append({"family": family, "dataset": DATASET, "params": n, "tokens": tpp * n})
    return pd.DataFrame(rows)


def true_loss(params, tokens, family: str) -> np.ndarray:
    t = TRUTH_RAW
    return (t["E"] + t["A"][family] * np.asarray(params, float) ** -t["alpha"]
            + t["B"] * np.asarray(tokens, float) ** -t["beta"])


def demo_data() -> pd.DataFrame:
    """The synthetic demo table (deterministic; same rows on every machine)."""
    design = _design()
    logref = {k: float(np.mean(np.log(design[k]))) for k in ("params", "tokens")}
    t = TRUTH_RAW
    centred = {
        "E": t["E"], "alpha": t["alpha"], "beta": t["beta"],
        "log_A0": {f: np.log(a) - t["alpha"] * logref["params"] for f, a in t["A"].items()},
        "log_B0": np.log(t["B"]) - t["beta"] * logref["tokens"],
        "sigma": NOISE_SIGMA, "nu": 1e6,
    }
    df, _ = simulate(get_law("chinchilla"), design, centred, seed=SEED, pool={"log_A0": "family"})
    df.attrs["synthetic"] = True
    df.attrs["response"] = "loss"   # as the public tables say theirs
    df.attrs["description"] = ("SYNTHETIC demo data simulated by bayescale from known chinchilla "
                               f"parameters {TRUTH_RAW}, log-noise sd {NOISE_SIGMA}")
    return df


def demo_target(df: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """One point per family at 100x the largest demo run's compute (10x N, 10x D), and the truth."""
    largest = df.loc[(df["params"] * df["tokens"]).idxmax()]
    n, d = 10 * largest["params"], 10 * largest["tokens"]
    target = pd.DataFrame({"family": sorted(TRUTH_RAW["A"]), "dataset": DATASET, "params": n, "tokens": d})
    truth = np.array([true_loss(n, d, f) for f in target["family"]])
    return target, truth

"""Chinchilla (Hoffmann et al. 2022) final losses, as extracted from Figure 4 by Epoch AI."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ._common import Notes, finish, read_csv
from .registry import Card, Source, Table, register

EPOCH_PREFIX = "epoch-research_analyzing-chinchilla/"
SCHAEFFER_PREFIX = "RylanSchaeffer_KoyejoLab-Robustness-Chinchilla-Compute-Optimal-Scaling/"
MAIN = EPOCH_PREFIX + "data/svg_extracted_data.csv"
REFITS = SCHAEFFER_PREFIX + "notebooks/01_epoch_research_fitting/data/chinchilla_fits.csv"
N_OUTLIERS = 5   # Epoch's nr_of_models_excluded

SOURCE = Source(
    folder="chinchilla_epoch",
    repos=((EPOCH_PREFIX, "epoch-research/analyzing-chinchilla", "92258837425e1b5f2851d624287f0120583a3d0e"),
           (SCHAEFFER_PREFIX, "RylanSchaeffer/KoyejoLab-Robustness-Chinchilla-Compute-Optimal-Scaling",
            "ad412e61aa4c8e4247d4dbe6f9dab6380a2900bc")),
    license="no license file in either repository (public data extracted from a published figure)",
    citation=("Besiroglu, Erdil, Barnett, You (Epoch AI), 'Chinchilla Scaling: A replication attempt', "
              "2024, arXiv:2404.10102; data from Hoffmann et al. 2022, arXiv:2203.15556, Figure 4"),
)

# Epoch's table (PROVENANCE.md, from data_analysis.ipynb): estimate, bootstrap s.e., 95% CI; Hoffmann's Approach 3.
EPOCH_FIT = pd.DataFrame(
    [("A", 482.01, 124.52, 285.2, 743.6, 406.4),
     ("B", 2085.43, 1293.28, 1042.4, 5810.3, 410.7),
     ("E", 1.8169, 0.0257, 1.769, 1.871, 1.69),
     ("alpha", 0.3478, 0.0154, 0.317, 0.373, 0.34),
     ("beta", 0.3658, 0.0206, 0.331, 0.415, 0.28)],
    columns=["param", "epoch", "epoch_se", "epoch_ci95_low", "epoch_ci95_high", "hoffmann"],
).set_index("param")
# Hoffmann's unrounded values as used by Epoch (log A, log B, log E, alpha, beta).
HOFFMANN_LOG = {"log_A": 6.0073404, "log_B": 6.0179186, "log_E": 0.5267228, "alpha": 0.33917084, "beta": 0.2849083}


def load(data_home=None, exclude_outliers: bool = True) -> pd.DataFrame:
    notes = Notes("chinchilla_epoch")
    raw = read_csv(SOURCE.folder, MAIN, data_home)
    df = pd.DataFrame({
        "params": raw["Model Size"].astype(float),
        "compute": raw["Training FLOP"].astype(float),
        "loss": raw["loss"].astype(float),
    })
    df["tokens"] = df["compute"] / (6.0 * df["params"])
    notes.append("chinchilla_epoch: tokens derived as D = C / (6 N), as Epoch do")
    df["family"], df["dataset"], df["task"] = "chinchilla", "massivetext", "train_loss"
    df["hex_color"] = raw["hex_color"]
    if exclude_outliers:
        order = np.argsort(-df["loss"].to_numpy(), kind="stable")[:N_OUTLIERS]
        mask = np.zeros(len(df), bool)
        mask[order] = True
        df = df.loc[~mask].reset_index(drop=True)
        notes.fix(f"dropped the {N_OUTLIERS} highest-loss points of {len(mask)} (Epoch's outlier rule; "
                  "exclude_outliers=False keeps them; CLI: dataset:chinchilla_epoch?exclude_outliers=false)")
    return finish(df, notes, response="loss")


def holdout(df: pd.DataFrame) -> np.ndarray:
    return (df["compute"] >= 1e21).to_numpy()


def reference(data_home=None) -> dict:
    """Epoch's published fit (with bootstrap CIs), Hoffmann's values, and Schaeffer et al.'s refits."""
    out = {"epoch": EPOCH_FIT.copy(), "hoffmann_log": dict(HOFFMANN_LOG),
           "model": "L(N, D) = E + A / N^alpha + B / D^beta (N, D raw counts; Huber delta=1e-3 on log loss, "
                    "5 highest-loss points excluded, 4000 bootstrap resamples)"}
    try:
        out["schaeffer_refits"] = read_csv(SOURCE.folder, REFITS, data_home, index_col=0)
    except Exception:  # the refit table is optional; the published numbers above suffice
        pass
    return out


CARD = Card(
    name="chinchilla_epoch",
    title="Chinchilla final training loss vs N and C (Epoch AI's SVG extraction of Hoffmann et al. Fig. 4)",
    measured="final training loss of Chinchilla-style transformers on MassiveText",
    response="loss: nats/token, read from the figure's colour bar (99 distinct values: quantised)",
    params_convention="total parameters, as plotted by Hoffmann et al. (column 'Model Size')",
    tokens="derived D = C / (6 N) from 'Training FLOP' (C is given, so compute is the source value)",
    groups="family='chinchilla', dataset='massivetext', task='train_loss' (one group)",
    holdout="compute >= 1e21 FLOP (the top of the compute range, incl. the C=1.3e22 point and N>1e10 models)",
    defects_fixed=("Epoch's 5 highest-loss points (outliers) are dropped by default: 245 -> 240 rows",),
    not_fixed=("values are approximate (pixel positions on log axes, colour quantisation); nothing to fix, "
               "but expect ties in loss",),
    options=(("exclude_outliers=True", "drop the 5 highest-loss points as Epoch do (False: all 245)"),),
    rows="240 (245 with exclude_outliers=False)",
    reference="reference('chinchilla_epoch'): Epoch's A, B, E, alpha, beta with s.e. and 95% CI, "
              "Hoffmann's Approach 3 values, Schaeffer et al.'s refits per parameter-count convention",
)

register(Table("chinchilla_epoch", SOURCE, CARD, load, holdout, reference, primary=True))

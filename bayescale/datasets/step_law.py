"""Step Law (Li et al. 2025): ~2,600 runs over (N, D, learning rate, batch size), dense and MoE."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ._common import Notes, check_option, drop_exact_duplicates, drop_rows, finish, read_csv
from .registry import Card, Source, Table, register

SOURCE = Source(
    folder="step_law",
    repos=(("", "step-law/steplaw", "32a8f4cc50247695fb56cc6c9117abdf67c97763"),),
    license="no license file in the repository",
    citation=("Li et al., 'Predictable Scale: Part I - Optimal Hyperparameter Scaling Law in Large Language "
              "Model Pretraining', 2025, arXiv:2503.04715"),
)
FILES = {"dense": "data/dense_lr_bs_loss.csv", "moe": "data/moe_lr_bs_loss.csv"}
BOOTSTRAP = "data/1004_fitted_lr_bs_scaling_model_parameters.csv"
SEQ_LEN = 2048
DIVERGED_GAP = 1.0   # nats above the best run of the same (N, D) cell; the data have a clear gap (0.55 vs 1.7+)


def load(data_home=None, arch: str = "dense", best_only: bool = False) -> pd.DataFrame:
    check_option("arch", arch, tuple(FILES))
    notes = Notes("step_law" if arch == "dense" else "step_law_moe")
    raw = read_csv(SOURCE.folder, FILES[arch], data_home)
    params = raw["Na"] if arch == "moe" else raw["N"]   # MoE: activated parameters
    df = pd.DataFrame({
        "params": params.astype(float), "tokens": raw["D"].astype(float),
        "loss": raw["smooth loss"].astype(float), "loss_raw": raw["loss"].astype(float),
        "family": arch, "dataset": "steplaw_corpus", "task": "train_loss",
        "lr": raw["lr"].astype(float), "batch_size": raw["bs"].astype(float),
        "batch_tokens": raw["bs"].astype(float) * SEQ_LEN, "iterations": raw["ti"],
        "hidden": raw["h"], "layers": raw["numl"], "run": raw["exp_name"],
    })
    if arch == "moe":
        df["params_total"] = raw["N"].astype(float)
        df["family"] = "moe_" + raw["moe_name"].astype(str) if "moe_name" in raw else "moe"
    df = drop_exact_duplicates(df, notes)
    cell = ["params", "tokens"] + (["params_total"] if arch == "moe" else [])
    gap = df["loss"] - df.groupby(cell)["loss"].transform("min")
    df = drop_rows(df, (gap > DIVERGED_GAP).to_numpy(), notes,
                   f"diverged runs (smoothed loss more than {DIVERGED_GAP} nats above the best run of their (N, D) cell)")
    if best_only:
        best = df.groupby(cell)["loss"].idxmin()
        df = df.loc[sorted(best)].reset_index(drop=True)
        notes.append(f"{notes.name}: best_only=True keeps the best (lr, bs) run of each (N, D) cell: {len(df)} rows")
    return finish(df, notes, response="loss")


def load_moe(data_home=None, best_only: bool = False) -> pd.DataFrame:
    return load(data_home=data_home, arch="moe", best_only=best_only)


def holdout(df: pd.DataFrame) -> np.ndarray:
    return (df["params"] > 1e9).to_numpy()


def holdout_moe(df: pd.DataFrame) -> np.ndarray:
    return (df["params"] > 1e9).to_numpy()   # the 1.24B-activated cells


def reference(data_home=None) -> pd.DataFrame:
    """The authors' 1,000 bootstrap fits: lr* = exp(lr_intercept) N^lr_coefN D^lr_coefD, bs* = exp(bs_intercept) D^bs_coefD."""
    df = read_csv(SOURCE.folder, BOOTSTRAP, data_home)
    df.attrs["formula"] = ("lr* = exp(lr_intercept) * N^lr_coefN * D^lr_coefD; "
                           "bs* = exp(bs_intercept) * D^bs_coefD; N non-embedding params, D tokens, bs* in tokens "
                           "(B(1e11) = 1.1e6 tokens = ~540 sequences of 2048)")
    df.attrs["paper"] = "eta(N, D) = 1.79 N^-0.713 D^0.307, B(D) = 0.58 D^0.571"
    return df


_OPTS = (("best_only=False", "keep only the best (lr, bs) run per (N, D) cell (for plain L(N, D) fits)"),)
_REF = "reference('step_law'): the authors' 1,000 bootstrap fits of the lr*(N, D) and bs*(D) laws"

register(Table("step_law", SOURCE, Card(
    name="step_law",
    title="Step Law dense runs: final loss over (N, D, learning rate, batch size)",
    measured="final training loss of 1,911 dense runs on 17 (N, D) cells x ~50-120 (lr, bs) settings",
    response="loss = authors' smoothed final training loss ('smooth loss', nats/token; the quantity they fit); "
             "loss_raw = last raw value",
    params_convention="non-embedding parameters (N column; gated FFN)",
    tokens="D column; compute derived as 6*N*D; lr = peak learning rate; batch_size in sequences of 2048 "
           "tokens (batch_tokens = x2048)",
    groups="family='dense'; dataset='steplaw_corpus'; task='train_loss'",
    holdout="the N = 1.07e9 cells (D = 2e10 and 5.69e10); fit on N <= 5.4e8",
    defects_fixed=("diverged runs dropped: smoothed loss > 1 nat above the best run of the same (N, D) cell "
                   "(181 of 1,911 rows; the gap between kept and dropped is 0.55 vs >= 1.7 nats)",
                   "exact duplicate rows dropped (none found)"),
    not_fixed=("the 5.69e10-token cell at N=1.07e9 has only 47 runs (coarser lr/bs grid)",),
    options=_OPTS,
    rows="1730 (1,911 - 181 diverged); best_only=True: 17",
    reference=_REF,
), load, holdout, reference, primary=True))

register(Table("step_law_moe", SOURCE, Card(
    name="step_law_moe",
    title="Step Law MoE runs: final loss over (N, N_active, D, learning rate, batch size)",
    measured="final training loss of 708 MoE runs (~2.15e9 total params, 1.9e8-1.24e9 activated)",
    response="loss = smoothed final training loss (nats/token); loss_raw = last raw value",
    params_convention="params = ACTIVATED parameters (Na); params_total = total (N)",
    tokens="D column (2e9-2e10); compute derived as 6*N_active*D",
    groups="family = 'moe_<moe_name>' (sparsity configuration); dataset='steplaw_corpus'; task='train_loss'",
    holdout="the 1.24e9-activated cells",
    defects_fixed=("diverged runs dropped by the same rule as step_law (none found)",
                   "exact duplicate rows dropped (none found)"),
    options=_OPTS,
    rows="708; best_only=True: 16",
    reference=_REF,
), load_moe, holdout_moe, reference))

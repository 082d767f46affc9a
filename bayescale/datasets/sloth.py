"""Sloth (Maia Polo et al. 2024): Open LLM Leaderboard v1 + v2 scores with family, N, D, C."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ._common import Notes, drop_exact_duplicates, drop_rows, finish, read_csv
from .registry import Card, Source, Table, register

SOURCE = Source(
    folder="sloth_leaderboard",
    repos=(("", "felipemaiapolo/statistical-scaling-law", "ec189676fb1ff21115536651f46bf9d279578cb8"),),
    license="MIT",
    citation=("Maia Polo, Somerstep, Choshen, Sun, Yurochkin, 'Sloth: scaling laws for LLM skills to predict "
              "multi-benchmark performance across families', 2024, arXiv:2412.06540"),
)
V1 = ("MMLU", "ARC", "HellaSwag", "Winogrande", "TruthfulQA", "GSM8K")
V2 = ("IFEval", "BBH", "MATH Lvl 5", "GPQA", "MUSR", "MMLU-PRO")
SUB_PREFIXES = ("bbh_", "gpqa_", "math_", "musr_", "hendrycksTest-")


def load(data_home=None, subtasks: bool = False) -> pd.DataFrame:
    notes = Notes("sloth_leaderboard")
    raw = read_csv(SOURCE.folder, "data/data_v2.csv", data_home, index_col=0)
    tasks = list(V1 + V2)
    if subtasks:
        tasks += [c for c in raw.columns if c.startswith(SUB_PREFIXES)]
    meta = pd.DataFrame({
        "model": raw["Model"].astype(str), "params": raw["#Params (B)"] * 1e9,
        "tokens": raw["Pretraining Data Size (T)"] * 1e12, "compute": raw["FLOPs (1E21)"] * 1e21,
        "family": raw["Family2"].astype(str), "dataset": raw["Family"].astype(str),
        "instruct": raw["Instruct"].astype(bool),
    })
    wide = pd.concat([meta, raw[tasks]], axis=1)
    unknown = wide["tokens"].isna().to_numpy()
    if unknown.any():
        notes.fix(f"dropped {int(unknown.sum())} of {len(wide)} model(s) with unknown pretraining tokens "
                  f"({', '.join(wide.loc[unknown, 'model'])}); the schema needs N, D and C")
    wide = wide.loc[~unknown]
    long = wide.melt(id_vars=list(meta.columns), value_vars=tasks, var_name="task", value_name="p_correct")
    long["leaderboard"] = np.where(long["task"].isin(V1) | long["task"].str.startswith("hendrycksTest-"), "v1", "v2")
    long = drop_rows(long, long["p_correct"].isna().to_numpy(), notes,
                     "missing scores (the model was not on that leaderboard)")
    long = drop_exact_duplicates(long, notes)
    return finish(long, notes, response="p_correct")


def holdout(df: pd.DataFrame) -> np.ndarray:
    """The largest model of each family that has at least two sizes."""
    sizes = df.groupby("family")["params"]
    largest = df["params"] == sizes.transform("max")
    several = sizes.transform("nunique") >= 2
    return (largest & several).to_numpy()


register(Table("sloth_leaderboard", SOURCE, Card(
    name="sloth_leaderboard",
    title="Open LLM Leaderboard v1 + v2 scores of 188 base and instruct models (Sloth metadata table)",
    measured="leaderboard scores: v1 MMLU, ARC, HellaSwag, Winogrande, TruthfulQA, GSM8K; "
             "v2 IFEval, BBH, MATH Lvl 5, GPQA, MUSR, MMLU-PRO (subtasks=True adds the per-subtask columns)",
    response="p_correct: score in [0,1] (no loss in this source; no question counts)",
    params_convention="'#Params (B)' x 1e9: total parameters as listed by the Sloth authors",
    tokens="'Pretraining Data Size (T)' x 1e12; compute = 'FLOPs (1E21)' x 1e21 (= 6 N D in the source)",
    groups="family = 'Family2' (68: instruct variants are their own family, as Sloth fit them); dataset = "
           "'Family' (35: base family, i.e. shared pretraining data); task = benchmark; leaderboard = v1/v2; "
           "instruct = bool",
    holdout="the largest model of each family with >= 2 sizes (e.g. Falcon-180B, Llama-3-70B); the paper "
            "predicts a family's largest model from its smaller members",
    defects_fixed=("13 models with unknown D dropped (Mixtral, Qwen1.5-110B, GPT-2, CodeLlama-instruct, "
                   "RecurrentGemma): N, D, C are required",
                   "missing scores dropped and counted (v2 covers 113 models, v1 160)"),
    not_fixed=("overlaps obsscaling (same public models, partly the same numbers): not independent evidence",
               "df_full*.csv (fine-tuned descendants copying their base model's N/D/C) are not loaded"),
    options=(("subtasks=False", "also load the bbh_*, gpqa_*, math_*_hard, musr_* and 57 MMLU subject columns"),),
    rows="1524 (175 models with known D x 12 scores = 2100, minus 576 missing; subtasks=True: 13238)",
), load, holdout, primary=True))

"""Large Language Monkeys power laws (Schaeffer et al. 2025): per-token log-probs and pass@k data."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import BayescaleError
from ._common import Notes, drop_exact_duplicates, drop_rows, finish, read_csv, read_parquet
from .registry import Card, Source, Table, register

SOURCE = Source(
    folder="monkeys_power_pertoken",
    repos=(("", "RylanSchaeffer/KoyejoLab-Large-How-Do-Language-Monkey-Power-Get-Their-Power",
            "cd078aef2a13e4310fab204860b99c4c39c25d40"),),
    license="no license file in the repository",
    citation=("Schaeffer et al., 'How Do Large Language Monkeys Get Their Power (Laws)?', ICML 2025; pass@k data "
              "from Brown et al. 2024, 'Large Language Monkeys'"),
)
MODELS = "data/raw_data/pretraining_scaling/models.csv"
PERTOKEN = "data/processed_data/pretraining_probability.parquet"
PASS_AT_K = "data/processed_data/large_language_monkeys_pass_at_k.parquet"


def _models(data_home) -> pd.DataFrame:
    m = read_csv(SOURCE.folder, MODELS, data_home)
    return m.set_index("Model Nickname")[["Parameters", "Tokens", "Model Family"]]


def load(data_home=None) -> pd.DataFrame:
    notes = Notes("monkeys_power_pertoken")
    raw = read_parquet(SOURCE.folder, PERTOKEN, data_home)
    models = _models(data_home)
    unknown = sorted(set(raw["Model"]) - set(models.index))
    if unknown:
        raise BayescaleError(f"monkeys_power_pertoken: models {unknown} have no row in {MODELS}")
    df = pd.DataFrame({
        "params": raw["Model"].map(models["Parameters"]).astype(float),
        "tokens": raw["Model"].map(models["Tokens"]).astype(float),
        "loss": raw["Neg Log Score"].astype(float), "family": "cerebras_gpt", "dataset": "pile",
        "task": "lambada_openai", "model": raw["Model"], "problem": raw["Problem Idx"],
        "position": raw["Seq Idx"], "p_token": raw["Score"].astype(float),
    })
    df = drop_exact_duplicates(df, notes)
    return finish(df, notes, response="loss")


def _pythia_final(models: pd.DataFrame, name: str) -> tuple[float, float]:
    key = name.replace(" ", "_") + "_300B"          # 'Pythia 12B' -> 'Pythia_12B_300B' (final checkpoint)
    if key not in models.index:
        raise BayescaleError(f"monkeys_pass_at_k: model {name!r} has no row {key!r} in {MODELS}")
    return float(models.loc[key, "Parameters"]), float(models.loc[key, "Tokens"])


def load_pass_at_k(data_home=None, all_k: bool = False) -> pd.DataFrame:
    notes = Notes("monkeys_pass_at_k")
    raw = read_parquet(SOURCE.folder, PASS_AT_K, data_home)
    models = _models(data_home)
    sizes = {name: _pythia_final(models, name) for name in raw["Model"].unique()}
    base = pd.DataFrame({
        "params": raw["Model"].map(lambda m: sizes[m][0]), "tokens": raw["Model"].map(lambda m: sizes[m][1]),
        "correct": raw["Num. Samples Correct"].astype(float), "trials": raw["Num. Samples"].astype(float),
        "family": "pythia", "dataset": "pile", "task": raw["Benchmark"].str.lower(),
        "model": raw["Model"], "problem": raw["Problem Idx"], "level": raw["Level"].fillna("none"),
        "attempts": raw["Scaling Parameter"].astype(int), "pass_at_k": raw["Score"].astype(float),
    })
    if all_k:
        df = drop_rows(base, (base["attempts"] > base["trials"]).to_numpy(), notes,
                       "pass@k with k larger than the number of samples n: the unbiased estimator is undefined and "
                       "the source reports 1.0 even for problems with 0 correct samples")
        df["p_correct"] = df["pass_at_k"]
    else:
        df = base.drop_duplicates(["model", "task", "problem"]).drop(columns=["attempts", "pass_at_k"])
        df = df.reset_index(drop=True)
        df["p_correct"] = df["correct"] / df["trials"]
    return finish(df, notes, response="p_correct", counts=True)


def holdout_pertoken(df: pd.DataFrame) -> np.ndarray:
    return (df["params"] >= 6e9).to_numpy()      # Cerebras-GPT 6.7B


def holdout_pass(df: pd.DataFrame) -> np.ndarray:
    return (df["params"] >= 6e9).to_numpy()      # Pythia 6.9B and 12B


_SRC = "models.csv 'Parameters' (nominal, e.g. 1.3e9)"

register(Table("monkeys_power_pertoken", SOURCE, Card(
    name="monkeys_power_pertoken",
    title="Per-token LAMBADA log-probabilities of Cerebras-GPT 111M-6.7B (Large Language Monkeys study)",
    measured="natural-log probability of each target token of 10 LAMBADA problems, per model",
    response="loss = -log p(token) in nats (the source's 'Neg Log Score'); p_token = probability",
    params_convention=_SRC + " and 'Tokens' (20 tokens/param for Cerebras-GPT)",
    tokens="models.csv 'Tokens' (Chinchilla-style 20 tokens/param); compute = 6*N*D",
    groups="family='cerebras_gpt'; dataset='pile'; task='lambada_openai'; problem and position identify the token",
    holdout="Cerebras-GPT-6.7B (the largest size in the LAMBADA set)",
    defects_fixed=("exact duplicate rows dropped (none found)",),
    not_fixed=("the raw per-model files lack 6.7B; the processed file is used (it matches the 5 raw files exactly)",),
    rows="5244 (6 models x 874 tokens)",
), load, holdout_pertoken, primary=True))

register(Table("monkeys_pass_at_k", SOURCE, Card(
    name="monkeys_pass_at_k",
    title="Pythia 70M-12B repeated sampling on GSM8K and MATH (128 problems each): successes per problem",
    measured="number of correct samples out of n sampled attempts per problem, and pass@k estimates",
    response="default: one row per (model, benchmark, problem) with correct / trials (samples) and "
             "p_correct = correct/trials; all_k=True: one row per k with attempts = k and p_correct = pass@k",
    params_convention=_SRC + "; final Pythia checkpoints (300B tokens)",
    tokens="3e11 (models.csv, final checkpoint)",
    groups="family='pythia'; dataset='pile'; task = gsm8k / math; level = MATH difficulty ('none' for GSM8K)",
    holdout="Pythia 6.9B and 12B",
    defects_fixed=("all_k=True: 15,857 pass@k rows with k > n samples dropped (the estimator is undefined there; "
                   "the source reports pass@k = 1.0 even for 8,567 such rows with 0 correct samples)",),
    options=(("all_k=False", "one row per k (43,008 rows before the fix) instead of one per problem"),),
    rows="1792 (7 models x 2 benchmarks x 128 problems); all_k=True: 27151",
), load_pass_at_k, holdout_pass))

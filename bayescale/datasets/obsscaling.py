"""Observational Scaling Laws (Ruan et al. 2024): ~150 public base models x benchmarks, with N, D, C."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import BayescaleError
from ._common import Notes, drop_exact_duplicates, drop_rows, finish, read_csv
from .registry import Card, Source, Table, register

SOURCE = Source(
    folder="obsscaling",
    repos=(("", "ryoungj/ObsScaling", "4d6e1e43fd2635d04654aa77d1df9d5266ea0382"),),
    license="Apache-2.0",
    citation=("Ruan, Maddison, Hashimoto, 'Observational Scaling Laws and the Predictability of Language Model "
              "Performance', NeurIPS 2024, arXiv:2405.10938"),
)
MAIN = "eval_results/base_llm_benchmark_eval.csv"
META = ["Model", "Model Family", "Model Size (B)", "Pretraining Data Size (T)", "FLOPs (1E21)"]
CUTOFF = 8.4e22   # the paper's example FLOP cutoff (about Llama-2-7B): fit below, predict above
BTLM = "cerebras/btlm-3b-8k-base"


def _models(data_home, notes: Notes) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(model metadata with the known defects fixed, N/D/C in raw units; the raw main table)."""
    raw = read_csv(SOURCE.folder, MAIN, data_home)
    meta = raw[META].copy()
    bad = (meta["Model"] == BTLM) & (meta["Pretraining Data Size (T)"] > 100)
    if bad.any():
        meta.loc[bad, "Pretraining Data Size (T)"] /= 1000.0
        meta.loc[bad, "FLOPs (1E21)"] /= 1000.0
        notes.fix(f"{int(bad.sum())} row(s) changed: {BTLM} pretraining tokens 627T -> 0.627T "
                  "(BTLM used 627B tokens) and FLOPs divided by 1000 to match")
    out = pd.DataFrame({
        "Model": meta["Model"], "params": meta["Model Size (B)"] * 1e9,
        "tokens": meta["Pretraining Data Size (T)"] * 1e12, "compute": meta["FLOPs (1E21)"] * 1e21,
        "family": meta["Model Family"].astype(str),
    })
    out["dataset"] = out["family"]
    return out, raw


def _long(meta: pd.DataFrame, scores: pd.DataFrame, columns, notes: Notes) -> pd.DataFrame:
    missing = [c for c in columns if c not in scores.columns]
    if missing:
        raise BayescaleError(f"{notes.name}: columns {missing} missing from the score table; re-fetch obsscaling")
    merged = scores[["Model", *columns]].merge(meta, on="Model", how="left", validate="one_to_one")
    unknown = merged["tokens"].isna().to_numpy()
    if unknown.any():
        notes.fix(f"dropped {int(unknown.sum())} of {len(merged)} model(s) with unknown pretraining tokens "
                  "(D and C are NaN or absent in the source metadata; the schema needs them)")
    merged = merged.loc[~unknown]
    long = merged.melt(id_vars=[c for c in merged.columns if c not in columns], value_vars=list(columns),
                       var_name="task", value_name="p_correct")
    long = drop_rows(long, long["p_correct"].isna().to_numpy(), notes, "missing scores (NaN in the source)")
    long = long.rename(columns={"Model": "model"})
    return drop_exact_duplicates(long, notes)


def load(data_home=None) -> pd.DataFrame:
    notes = Notes("obsscaling")
    meta, raw = _models(data_home, notes)
    tasks = [c for c in raw.columns if c not in META]
    return finish(_long(meta, raw, tasks, notes), notes, response="p_correct")


def load_emergent(data_home=None) -> pd.DataFrame:
    notes = Notes("obsscaling_emergent")
    meta, _ = _models(data_home, notes)
    scores = read_csv(SOURCE.folder, "eval_results/base_llm_emergent_capability_eval.csv", data_home)
    tasks = [c for c in scores.columns if c != "Model" and not c.endswith("_bleu")]
    notes.append("obsscaling_emergent: ipa_transliterate_2_bleu (BLEU, 0-100, not a probability) is not loaded")
    return finish(_long(meta, scores, tasks, notes), notes, response="p_correct")


def load_leaderboard_v2(data_home=None) -> pd.DataFrame:
    notes = Notes("obsscaling_leaderboard_v2")
    meta, _ = _models(data_home, notes)
    scores = read_csv(SOURCE.folder, "eval_results/base_llm_leaderboard_v2_eval.csv", data_home)
    tasks = [c for c in scores.columns if c != "Model"]
    return finish(_long(meta, scores, tasks, notes), notes, response="p_correct")


def holdout(df: pd.DataFrame) -> np.ndarray:
    return (df["compute"] > CUTOFF).to_numpy()


_COMMON = dict(
    params_convention="'Model Size (B)' x 1e9: total parameters as reported by the authors (MoE: their count)",
    tokens="'Pretraining Data Size (T)' x 1e12; compute = 'FLOPs (1E21)' x 1e21 (= 6 N D in the source)",
    groups="family = 'Model Family' (47); dataset = the same label (each family has its own pretraining data); "
           "task = benchmark; model = Hugging Face id",
    holdout=f"models above the paper's example FLOP cutoff, C > {CUTOFF:.1e} (about Llama-2-7B compute); "
            "a family-wise alternative is each family's largest model",
)
_FIX = ("cerebras/btlm-3b-8k-base: tokens 627T -> 0.627T and FLOPs / 1000 (1 model changed)",
        "models with unknown D (25 of 148: Qwen2, Mistral/Mixtral, GPT-2, RWKV, ...) dropped, since N, D, C "
        "are required")
_NOT = ("no question counts: scores are aggregate fractions (p_correct only, no correct/trials)",
        "not loaded: base_llm_benchmark_eval_sub_10b.csv (the authors' N < 10B subset of the main table), "
        "base_llm_post_training_eval.csv (CoT / self-consistency metrics, some baseline-adjusted and negative), "
        "instruct_llm_*.csv (instruction-tuned / API models, N/D/C mostly missing)",
        "overlaps sloth_leaderboard (same public models, partly the same numbers): not independent evidence")

register(Table("obsscaling", SOURCE, Card(
    name="obsscaling", title="ObsScaling base models x 8 standard benchmarks (with N, D, C)",
    measured="accuracy of public base LLMs on MMLU, ARC-C, HellaSwag, Winograd, TruthfulQA, GSM8K, XWinograd, "
             "HumanEval (pass@1)",
    response="p_correct: score in [0,1] (no loss in this source)",
    defects_fixed=(*_FIX, "missing scores (NaN: ARC-C, XWinograd, HumanEval for some models) dropped, counted"),
    not_fixed=_NOT, rows="963 (123 models with known D x 8 benchmarks = 984, minus 21 missing scores)",
    **_COMMON,
), load, holdout, primary=True))

register(Table("obsscaling_emergent", SOURCE, Card(
    name="obsscaling_emergent", title="ObsScaling 'emergent' BIG-bench-style tasks (2-shot)",
    measured="accuracy / exact match on parsinlu_qa, word_unscrambling, ipa_transliterate, 4 arithmetic tasks",
    response="p_correct in [0,1] (many near-zero values for small models)",
    defects_fixed=(*_FIX, "missing scores dropped, counted"),
    not_fixed=(*_NOT, "ipa_transliterate_2_bleu (BLEU 0-100) is not loaded: not a probability"),
    rows="489 (73 of 84 models have known D; x 7 tasks = 511, minus 22 missing scores)", **_COMMON,
), load_emergent, holdout))

register(Table("obsscaling_leaderboard_v2", SOURCE, Card(
    name="obsscaling_leaderboard_v2", title="ObsScaling: Open LLM Leaderboard v2 tasks for 72 base models",
    measured="BBH, GPQA, IFEval, MATH-hard, MMLU-Pro, MuSR raw scores",
    response="p_correct: raw score in [0,1]",
    defects_fixed=_FIX, not_fixed=_NOT, rows="330 (55 of 72 models have known D; x 6 tasks)", **_COMMON,
), load_leaderboard_v2, holdout))

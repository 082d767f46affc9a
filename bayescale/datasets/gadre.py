"""Gadre et al. 2024: 104 open_lm models over (N, tokens/param, corpus); 8 validation losses, 46 tasks."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import BayescaleError
from ._common import Notes, check_option, finish, read_csv, read_json
from .paths import source_dir
from .registry import Card, Source, Table, register

SOURCE = Source(
    folder="gadre_overtraining",
    repos=(("", "mlfoundations/scaling", "a003c4913793ac2ae7ef87b28ecb562955d026d5"),),
    license="MIT",
    citation=("Gadre et al., 'Language models scale reliably with over-training and on downstream tasks', "
              "2024, arXiv:2403.08540"),
)

# validation set label <- a distinctive part of its path in results[].val_data
VAL_SETS = {
    "val_tok_mult/openlm/": "openlm_val", "c4_val/": "c4_val", "paloma_c4_en": "paloma_c4_en",
    "paloma_dolma_100_programing_languages": "paloma_dolma_100_code", "paloma_falcon-refinedweb": "paloma_refinedweb",
    "paloma_ptb": "paloma_ptb", "paloma_redpajama": "paloma_redpajama", "de-en": "de_en",
}
LARGE = ("open_lm_1b", "open_lm_7b")


def _val_label(paths) -> str:
    text = " ".join(paths)
    for key, label in VAL_SETS.items():
        if key in text:
            return label
    raise BayescaleError(f"gadre_overtraining: unknown validation set {paths}; expected one of {list(VAL_SETS.values())}")


def _model_files(data_home):
    root = source_dir(SOURCE.folder, data_home) / "exp_data" / "models"
    files = sorted(root.glob("*.json"))
    if not files:
        raise BayescaleError(f"no model JSON files in {root}; re-fetch with `bayescale datasets fetch gadre_overtraining`")
    return [f"exp_data/models/{f.name}" for f in files]


def _runs(data_home) -> list[dict]:
    return [read_json(SOURCE.folder, rel, data_home) for rel in _model_files(data_home)]


def _shape(model: str) -> str:
    return model.rsplit("/", 1)[-1].removesuffix(".json")


def load(data_home=None, eval: str = "c4_val") -> pd.DataFrame:  # noqa: A002
    check_option("eval", eval, ["all", *VAL_SETS.values()])
    notes = Notes("gadre_overtraining")
    rows = []
    for run in _runs(data_home):
        h = run["hyperparameters"]
        for res in run["results"]:
            rows.append({
                "params": float(h["params"]), "tokens": float(h["tokens"]), "loss": float(res["loss"]),
                "family": "open_lm", "dataset": run["dataset_name"], "task": _val_label(res["val_data"]),
                "model": _shape(h["model"]), "multiplier": float(h["chinchilla_multiplier"]),
                "params_no_embed": float(h["params_no_embed"]), "run": run["name"],
                "loss_tokens_lower_95": res.get("loss_tokens_lower_95", np.nan),
                "loss_tokens_upper_95": res.get("loss_tokens_upper_95", np.nan),
            })
    df = pd.DataFrame(rows)
    if eval != "all":
        df = df[df["task"] == eval].reset_index(drop=True)
    return finish(df, notes, response="loss")


def load_downstream(data_home=None) -> pd.DataFrame:
    notes = Notes("gadre_downstream")
    meta = read_csv(SOURCE.folder, "exp_data/eval_metadata.csv", data_home).set_index("Eval Task")
    rows = []
    for run in _runs(data_home):
        h = run["hyperparameters"]
        ev = read_json(SOURCE.folder, f"exp_data/evals/evaluation_{run['name']}_heavy.json", data_home)
        for task, acc in ev["eval_metrics"]["icl"].items():
            if task not in meta.index:
                raise BayescaleError(f"gadre_downstream: task '{task}' has no row in eval_metadata.csv")
            m = meta.loc[task]
            rows.append({
                "params": float(h["params"]), "tokens": float(h["tokens"]), "p_correct": float(acc),
                "trials": float(m["#datapoints"]), "family": "open_lm", "dataset": run["dataset_name"],
                "task": task, "model": _shape(h["model"]), "multiplier": float(h["chinchilla_multiplier"]),
                "chance": float(m["Random baseline"]) / 100.0, "task_type": str(m["Task Type"]),
                "run": run["name"],
            })
    df = pd.DataFrame(rows)
    exact = df["p_correct"] * df["trials"]
    df["correct"] = np.round(exact)
    off = (exact - df["correct"]).abs().groupby(df["task"]).transform("max") > 0.01
    df["counts_exact"] = ~off.to_numpy()
    if off.any():
        notes.append(f"gadre_downstream: for {sorted(df.loc[off, 'task'].unique())} p_correct*trials is not an "
                     "integer (averages over sub-categories): counts_exact=False, correct is approximate")
    notes.append("gadre_downstream: correct = round(p_correct * trials) with trials = '#datapoints' of "
                 "eval_metadata.csv (accuracies are float32, so counts are reconstructed)")
    return finish(df, notes, response="p_correct", counts=True)


def holdout(df: pd.DataFrame) -> np.ndarray:
    return df["model"].isin(LARGE).to_numpy()


_HOLDOUT = ("the 1.4B (open_lm_1b) and 6.9B (open_lm_7b) runs of each corpus (9 models); the training part "
            "is the <= 411M models, as in the paper's Table 2 protocol")
_SOURCE_NOTE = "models/<dataset>-<shape>-<M>.json; C4 has 7 (not 8) multipliers for d=1024: 34 C4 models, 104 in all"

register(Table("gadre_overtraining", SOURCE, Card(
    name="gadre_overtraining",
    title="Gadre et al. over-training grid: validation loss of 104 open_lm models",
    measured="next-token cross-entropy on validation sets, for models trained at 5-640 tokens/param on 3 corpora",
    response="loss: nats/token (mean over evaluated tokens); 95% token-level bounds in loss_tokens_lower/upper_95",
    params_convention="total parameters incl. embeddings (hyperparameters.params); params_no_embed also given",
    tokens="hyperparameters.tokens; compute derived as 6*N*D as the authors do",
    groups="family='open_lm'; dataset = training corpus (c4_original, rpj, rw_original); "
           "task = validation set (c4_val by default, the paper's loss)",
    holdout=_HOLDOUT,
    defects_fixed=(),
    not_fixed=("none known; " + _SOURCE_NOTE,),
    options=(("eval='c4_val'", "validation set: 'all' or one of " + ", ".join(VAL_SETS.values())),),
    rows="104 (832 with eval='all')",
), load, holdout, primary=True))

register(Table("gadre_downstream", SOURCE, Card(
    name="gadre_downstream",
    title="Gadre et al.: 46 downstream tasks (LLM-Foundry 'heavy' suite) for the 104 open_lm models",
    measured="accuracy (top-1 for multiple choice; exact match for generative tasks) per task",
    response="p_correct in [0,1]; trials = task size ('#datapoints' of eval_metadata.csv); correct = "
             "round(p_correct*trials); chance = random baseline (fraction)",
    params_convention="total parameters incl. embeddings",
    tokens="hyperparameters.tokens; compute = 6*N*D",
    groups="family='open_lm'; dataset = training corpus; task = evaluation task (46)",
    holdout=_HOLDOUT,
    defects_fixed=(),
    not_fixed=("the paper's downstream target is average top-1 error over all 46 (or a 17-task subset); "
               "average p_correct per run yourself (1 - mean) to reproduce it",
               "correct counts are reconstructed from float32 accuracies; for arc_challenge, bbq, jeopardy, mmlu and "
               "mmlu_zeroshot the accuracy is an average over sub-categories, so counts_exact=False there"),
    rows="4784 (104 models x 46 tasks)",
), load_downstream, holdout))

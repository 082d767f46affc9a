"""Gemstones (McLeish et al. 2025): 22 width x depth shapes trained to 350B tokens."""
from __future__ import annotations

import re

import numpy as np
import pandas as pd

from ..errors import BayescaleError
from ._common import (Notes, check_option, counts_from_stderr, drop_exact_duplicates, finish, read_json,
                      read_jsonl, read_parquet)
from .paths import source_dir
from .registry import Card, Source, Table, register

SOURCE = Source(
    folder="gemstones",
    repos=(("", "mcleish7/gemstone-scaling-laws", "5f420478f6057b0cbb4d13405fb10ca64675bccb"),),
    license="MIT",
    citation=("McLeish et al., 'Gemstones: A Model Suite for Multi-Faceted Scaling Laws', NeurIPS 2025, "
              "arXiv:2502.06857"),
)
TOKENS_PER_STEP = 2048 * 2048      # sequence length x global batch
FINAL_STEP = 83475                 # the 'main' checkpoint
VARIANTS = ("hot", "hot_477", "hot_100b+", "hot_100b+_477", "hot_100b+_512x", "hot_120b+_only",
            "hot_120b+_only_477", "cool_begin", "cool_end", "lr_ablation_hot", "lr_ablation_hot_477",
            "hot_sampled_like_chinchilla", "lr_ablation_hot_sampled_like_chinchilla")
TASK_FILES = {"arc_challenge": "arcc", "arc_easy": "arce", "coqa": "coqa", "openbookqa": "openbook",
              "piqa": "piqa", "siqa": "siqa", "winogrande": "winogrande"}
LARGE = 9e8   # the 1B and 2B classes


def _shape(run_name: str) -> str:
    m = re.search(r"(\d+x\d+)", run_name)
    if not m:
        raise BayescaleError(f"gemstones: cannot read a <width>x<depth> shape from run name {run_name!r}")
    return m.group(1)


def _trajectory(raw: pd.DataFrame, task: str) -> pd.DataFrame:
    df = pd.DataFrame({
        "params": raw["params_active_precise"].astype(float), "tokens": raw["tokens"].astype(float),
        "loss": raw["final_loss"].astype(float), "family": "gemstone", "dataset": "gemstone_mix", "task": task,
        "shape": raw["run_name"].map(_shape), "width": raw["width"], "depth": raw["depth"], "step": raw["step"],
        "run": raw["run_name"],
    })
    for col in ("seconds_per_step", "num_nodes"):
        if col in raw and raw[col].notna().all():
            df[col] = raw[col]
    return df


def load(data_home=None, variant: str = "hot_100b+") -> pd.DataFrame:
    check_option("variant", variant, VARIANTS)
    notes = Notes("gemstones")
    raw = read_jsonl(SOURCE.folder, f"wandb_dfs/wandb_df_for_fitting_{variant}.jsonl", data_home)
    df = _trajectory(raw, "val_loss")
    df["variant"] = variant
    df = drop_exact_duplicates(df, notes)
    return finish(df, notes, response="loss")


def load_other_losses(data_home=None) -> pd.DataFrame:
    notes = Notes("gemstones_other_losses")
    parts = [_trajectory(read_jsonl(SOURCE.folder, f"benchmarks/{f}_losses_combined.jsonl", data_home), task)
             for f, task in (("fineweb_edu", "fineweb_edu"), ("fineweb_dclm", "dclm"))]
    df = drop_exact_duplicates(pd.concat(parts, ignore_index=True), notes)
    return finish(df, notes, response="loss")


def _index_parts(index) -> tuple[list[str], list[int]]:
    shapes, steps = [], []
    for key in index:
        m = re.fullmatch(r"Gemstone-(\d+x\d+)-(main|step_(\d+))", str(key))
        if not m:
            raise BayescaleError(f"gemstones_downstream: unexpected row label {key!r}; expected Gemstone-<w>x<d>-<main|step_N>")
        shapes.append(m.group(1))
        steps.append(FINAL_STEP if m.group(2) == "main" else int(m.group(3)))
    return shapes, steps


def _params_by_shape(data_home) -> dict[str, float]:
    raw = read_jsonl(SOURCE.folder, "wandb_dfs/wandb_df_for_fitting_hot_100b+.jsonl", data_home)
    return dict(zip(raw["run_name"].map(_shape), raw["params_active_precise"].astype(float)))


def load_downstream(data_home=None) -> pd.DataFrame:
    notes = Notes("gemstones_downstream")
    acc = read_parquet(SOURCE.folder, "benchmarks/light_eval_df.parquet", data_home)
    err = read_parquet(SOURCE.folder, "benchmarks/light_eval_df_err.parquet", data_home)
    if not acc.index.equals(err.index) or list(acc.columns) != list(err.columns):
        raise BayescaleError("gemstones_downstream: light_eval_df and light_eval_df_err do not line up; re-fetch gemstones")
    shapes, steps = _index_parts(acc.index)
    params = _params_by_shape(data_home)
    base = pd.DataFrame({"shape": shapes, "step": steps})
    base["params"] = base["shape"].map(params)
    base["tokens"] = base["step"].astype(float) * TOKENS_PER_STEP
    frames = []
    for task in acc.columns:
        part = base.copy()
        part["p_correct"] = acc[task].to_numpy(float)
        part["stderr"] = err[task].to_numpy(float)
        part["task"] = task
        frames.append(part)
    df = pd.concat(frames, ignore_index=True)
    df["family"], df["dataset"] = "gemstone", "gemstone_mix"
    df = counts_from_stderr(df, df["stderr"], notes)
    return finish(df, notes, response="p_correct", counts=True)


def load_task_losses(data_home=None) -> pd.DataFrame:
    notes = Notes("gemstones_task_losses")
    root = source_dir(SOURCE.folder, data_home) / "benchmarks" / "bhagia_task_losses"
    params = _params_by_shape(data_home)
    frames = []
    for model_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        shape = _shape(model_dir.name)
        for task, stem in TASK_FILES.items():
            rel = f"benchmarks/bhagia_task_losses/{model_dir.name}/main/losses_{stem}.json"
            values = np.asarray(read_json(SOURCE.folder, rel, data_home)["main"], dtype=float)
            frames.append(pd.DataFrame({"loss": values, "question": np.arange(len(values)), "task": task,
                                        "shape": shape}))
    if not frames:
        raise BayescaleError(f"no per-question loss files under {root}; re-fetch gemstones")
    df = pd.concat(frames, ignore_index=True)
    df["params"] = df["shape"].map(params)
    df["tokens"] = float(FINAL_STEP * TOKENS_PER_STEP)
    df["step"] = FINAL_STEP
    df["family"], df["dataset"] = "gemstone", "gemstone_mix"
    df["p_choice_correct"] = np.exp(-df["loss"])
    return finish(df, notes, response="loss")


def holdout(df: pd.DataFrame) -> np.ndarray:
    return (df["params"] >= LARGE).to_numpy()


def reference(data_home=None) -> pd.DataFrame:
    """The authors' fitted laws: Approach 1 (log-linear N*(C), D*(C)) and Approach 3 (Huber delta 1e-3 / 1e-4)."""
    root = source_dir(SOURCE.folder, data_home)
    rows = []
    for folder, delta in (("parameters", None), ("parameters_delta-3", 1e-3), ("parameters_delta-4", 1e-4)):
        for path in sorted((root / folder).glob("*.json")):
            d = read_json(SOURCE.folder, f"{folder}/{path.name}", data_home)
            row = {"file": f"{folder}/{path.name}", "fit": path.stem, "huber_delta": delta}
            if "approach" in d:   # Approach 1: linear fit in log space (base: see the authors' approach_1.py)
                row.update(approach=1, label=d.get("label"), coef=d["coef"][0], intercept=d["intercept"])
            else:                 # Approach 3: pandas-style {"0": value} columns
                one = {k: (v["0"] if isinstance(v, dict) and "0" in v else v) for k, v in d.items()}
                row.update(approach=3, width_depth="width_depth" in path.stem,
                           exponents=one.get("exponents"), coefficients=one.get("coefficients"),
                           E=one.get("irreducible_error"), objective=one.get("loss"), success=one.get("success"))
            rows.append(row)
    if not rows:
        raise BayescaleError(f"no fitted-law JSON files under {root}/parameters*; re-fetch gemstones")
    return pd.DataFrame(rows)


_TOK = "step x 4,194,304 (2048 seq x 2048 batch); final step 83475 = 3.5e11 tokens"
_HOLD = ("the 1B and 2B classes (N >= 9e8: 1280x36, 2560x8, 1792x18, 3072x12, 1536x50, 2048x27), all "
         "their rows (every checkpoint the table holds); fit on N <= 5.4e8")
_PARAMS = "params_active_precise: total parameters incl. embeddings, as counted by the authors"

register(Table("gemstones", SOURCE, Card(
    name="gemstones",
    title="Gemstones loss trajectories: 22 shapes (48M-2B) x checkpoints to 350B tokens",
    measured="validation loss at each checkpoint of constant-LR ('hot') runs, or cooldown / LR-ablation variants",
    response="loss: nats/token",
    params_convention=_PARAMS,
    tokens=_TOK,
    groups="family='gemstone' (shape in 'shape', width, depth); dataset='gemstone_mix'; task='val_loss'",
    holdout=_HOLD,
    defects_fixed=("exact duplicate rows are dropped (none in the shipped variants)",),
    not_fixed=("wandb_dfs/summary_df.jsonl and wandb_df_raw.jsonl are absent from the snapshot; not needed",
               "slim_chinchilla variants are a subset of the Epoch/Chinchilla points, not Gemstones: not offered "
               "(use chinchilla_epoch)",
               "checkpoints of one run are not independent observations (same run, same data order)"),
    options=(("variant='hot_100b+'", "which authors' table: " + ", ".join(VARIANTS)),),
    rows="770 (22 runs x 35 checkpoints; variant='hot' 220, 'cool_end' 199)",
    reference="reference('gemstones'): the authors' Approach 1 and Approach 3 fits (exponents, coefficients, E)",
), load, holdout, reference, primary=True))

register(Table("gemstones_other_losses", SOURCE, Card(
    name="gemstones_other_losses",
    title="Gemstones losses on other corpora: FineWeb-Edu and DCLM validation sets",
    measured="validation loss of the 22 Gemstones at 35 checkpoints on two external corpora",
    response="loss: nats/token",
    params_convention=_PARAMS, tokens=_TOK,
    groups="family='gemstone'; dataset='gemstone_mix' (training data); task = evaluation corpus (fineweb_edu, dclm)",
    holdout=_HOLD,
    defects_fixed=("exact duplicate rows are dropped (none found)",),
    not_fixed=("other_validation_losses/fineweb_losses has only a few late checkpoints: not loaded",),
    rows="1540 (770 per corpus)",
), load_other_losses, holdout))

register(Table("gemstones_downstream", SOURCE, Card(
    name="gemstones_downstream",
    title="Gemstones downstream accuracy: 9 lighteval tasks x 22 shapes x 35 checkpoints",
    measured="accuracy on ARC-C/E, CommonsenseQA, HellaSwag, MMLU, OpenBookQA, PIQA, SIQA, WinoGrande",
    response="p_correct in [0,1]; stderr; trials derived from stderr (1000 questions, OpenBookQA 500); "
             "correct = round(p_correct*trials); MMLU averages subjects so counts_exact=False",
    params_convention=_PARAMS, tokens=_TOK + " ('main' = final step)",
    groups="family='gemstone'; dataset='gemstone_mix'; task = benchmark",
    holdout=_HOLD,
    defects_fixed=(),
    not_fixed=("needs pyarrow to read the Parquet files",),
    rows="6930 (770 checkpoints x 9 tasks)",
), load_downstream, holdout))

register(Table("gemstones_task_losses", SOURCE, Card(
    name="gemstones_task_losses",
    title="Gemstones per-question task losses (Bhagia et al. style) at the final checkpoint",
    measured="negative log-likelihood of the correct answer, one row per question",
    response="loss: nats per question (normalisation as in the authors' bhagia_fit.py); "
             "p_choice_correct = exp(-loss)",
    params_convention=_PARAMS, tokens="final checkpoint only: 3.5e11 tokens",
    groups="family='gemstone'; dataset='gemstone_mix'; task = benchmark (7); question = index within the task",
    holdout=_HOLD,
    defects_fixed=(),
    not_fixed=("only the final checkpoint and 7 tasks are in the snapshot (intermediate checkpoints, HellaSwag "
               "and MMLU, ~700 MB, were not copied)",),
    rows="227216 (22 models x 10,328 questions)",
), load_task_losses, holdout))

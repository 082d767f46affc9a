"""Pythia (Biderman et al. 2023) benchmark accuracies over training checkpoints, plus OPT and BLOOM."""
from __future__ import annotations

import re

import numpy as np
import pandas as pd

from ..errors import BayescaleError
from ._common import Notes, check_option, counts_from_stderr, drop_rows, finish, read_json
from .paths import source_dir
from .registry import Card, Source, Table, register

SOURCE = Source(
    folder="pythia_evals",
    repos=(("", "EleutherAI/pythia", "a19eecb807ec2c79a39ebf18108816e6ffffc1d5"),),
    license="Apache-2.0",
    citation=("Biderman et al., 'Pythia: A Suite for Analyzing Large Language Models Across Training and "
              "Scaling', ICML 2023, arXiv:2304.01373"),
)
TOKENS_PER_STEP = 1024 * 2048
# total parameters per size, from the Pythia README's model table
PYTHIA_PARAMS = {"70m": 70_426_624, "160m": 162_322_944, "410m": 405_334_016, "1b": 1_011_781_632,
                 "1.4b": 1_414_647_808, "2.8b": 2_775_208_960, "6.9b": 6_857_302_016, "12b": 11_846_072_320}
# final-checkpoint baselines: pretraining tokens from the OPT (180B) and BLOOM (366B) papers
BASELINES = {"opt": ("opt_corpus", 1.8e11), "bloom": ("roots", 3.66e11)}
HOLDOUT_SIZES = {"pythia": 6.8e9, "opt": 3e10, "bloom": 7e9}
SUSPECT_MIN_STEP, SUSPECT_SHARE = 1000, 0.5


def _nominal(size: str) -> float:
    m = re.fullmatch(r"([\d.]+)([mb])(\d*)", size)    # 350m, 6.7b, BLOOM's 1b1 = 1.1b
    if not m:
        raise BayescaleError(f"pythia_evals: cannot read a size from {size!r} (expected e.g. 350m, 6.7b, 1b1)")
    value = float(m.group(1) + ("." + m.group(3) if m.group(3) else ""))
    return value * (1e6 if m.group(2) == "m" else 1e9)


def _rows(results: dict, base: dict) -> list[dict]:
    out = []
    for task, r in results.items():
        if "acc" not in r:          # CrowS-Pairs bias sets: no accuracy
            continue
        out.append({**base, "task": task, "p_correct": float(r["acc"]), "stderr": float(r["acc_stderr"]),
                    "p_correct_norm": float(r.get("acc_norm", np.nan))})
    return out


def _read_all(data_home) -> pd.DataFrame:
    root = source_dir(SOURCE.folder, data_home) / "evals"
    rows = []
    for path in sorted(root.glob("pythia-v1/*/*/*.json")):
        folder = path.parent.parent.name                       # pythia-1.4b-deduped, pythia-1b-bf16, ...
        size = folder.removeprefix("pythia-").removesuffix("-deduped").removesuffix("-bf16")
        if size not in PYTHIA_PARAMS:
            raise BayescaleError(f"pythia_evals: unknown model folder {folder!r}; expected sizes {list(PYTHIA_PARAMS)}")
        d = read_json(SOURCE.folder, str(path.relative_to(root.parent)), data_home)
        m = re.search(r"revision=step(\d+)", d["config"]["model_args"])
        if not m:
            raise BayescaleError(f"pythia_evals: {path.name} has no revision=step<k> in config.model_args")
        step = int(m.group(1))
        base = {"params": float(PYTHIA_PARAMS[size]), "tokens": float(step * TOKENS_PER_STEP), "step": step,
                "shots": int(d["config"]["num_fewshot"]), "family": "pythia",
                "dataset": "pile_deduped" if folder.endswith("-deduped") else "pile",
                "model": f"pythia-{size}" + ("-deduped" if folder.endswith("-deduped") else "")}
        rows += _rows(d["results"], base)
    for fam, (dataset, tokens) in BASELINES.items():
        for path in sorted((root / fam).glob("*.json")):
            d = read_json(SOURCE.folder, f"evals/{fam}/{path.name}", data_home)
            size = path.stem.split("-", 1)[1]
            base = {"params": _nominal(size), "tokens": tokens, "step": -1,
                    "shots": int(d["config"]["num_fewshot"]), "family": fam, "dataset": dataset, "model": path.stem}
            rows += _rows(d["results"], base)
    if not rows:
        raise BayescaleError(f"no result files under {root}; re-fetch with `bayescale datasets fetch pythia_evals`")
    return pd.DataFrame(rows)


def _copied_checkpoints(df: pd.DataFrame) -> pd.Series:
    """Checkpoints where a standard and a deduped model report identical accuracies on most tasks.

    At step >= 1000 the two runs differ; identical values on >= half the tasks (others: 2-15 %) mean
    one result file was copied from the other. We cannot tell which, so both are flagged.
    """
    py = df[(df["family"] == "pythia") & (df["step"] >= SUSPECT_MIN_STEP)]
    key = ["params", "shots", "step", "task"]
    wide = py.pivot_table(index=key, columns="dataset", values="p_correct", aggfunc="first").dropna()
    same = (wide["pile"] == wide["pile_deduped"]).groupby(level=["params", "shots", "step"]).mean()
    bad = same[same >= SUSPECT_SHARE].index
    idx = pd.MultiIndex.from_frame(df[["params", "shots", "step"]])
    return pd.Series(idx.isin(bad) & (df["family"] == "pythia").to_numpy(), index=df.index)


def load(data_home=None, shots="all", baselines: bool = True) -> pd.DataFrame:
    check_option("shots", shots, ("all", 0, 5))
    notes = Notes("pythia_evals")
    df = _read_all(data_home)
    notes.append("pythia_evals: shots and step are read from each file's config (some zero-shot files are "
                 "named '*-5shot_*' but have num_fewshot=0)")
    df = drop_rows(df, (df["tokens"] <= 0).to_numpy(), notes,
                   "step-0 checkpoints (untrained initialisation: D = 0 tokens)")
    copied = _copied_checkpoints(df)
    if copied.any():
        which = sorted({(m, s, st) for m, s, st in df.loc[copied, ["model", "shots", "step"]].itertuples(index=False)
                        if m.endswith("deduped")})
        desc = "; ".join(f"{m.removesuffix('-deduped')} {s}-shot step {st}" for m, s, st in which)
    df = drop_rows(df, copied.to_numpy(), notes,
                   "standard and deduped results identical on >= 50% of tasks at step >= 1000 (a copied result "
                   f"file; both variants dropped): {desc if copied.any() else ''}")
    if shots != "all":
        df = df[df["shots"] == shots].reset_index(drop=True)
    if not baselines:
        df = df[df["family"] == "pythia"].reset_index(drop=True)
    df = counts_from_stderr(df, df["stderr"], notes)
    return finish(df, notes, response="p_correct", counts=True)


def holdout(df: pd.DataFrame) -> np.ndarray:
    """Pythia 6.9B and 12B (all checkpoints), OPT-30B/66B, BLOOM-7B1."""
    limit = df["family"].map(HOLDOUT_SIZES).fillna(np.inf)
    return (df["params"] >= limit).to_numpy()


register(Table("pythia_evals", SOURCE, Card(
    name="pythia_evals",
    title="Pythia 70M-12B (standard + deduped) accuracies over 27 / 15 checkpoints; OPT and BLOOM baselines",
    measured="lm-evaluation-harness accuracy on ARC-C/E, LAMBADA, LogiQA, PIQA, SciQ, WinoGrande, WSC and "
             "57 MMLU subjects, zero- and five-shot",
    response="p_correct = acc; correct / trials = counts (trials derived per task from acc_stderr, "
             "n = p(1-p)/se^2 + 1, which recovers e.g. ARC-C 1172, SciQ 1000); stderr; p_correct_norm = acc_norm",
    params_convention="total parameters from the Pythia README table (70M = 70,426,624 ... 12B = 11,846,072,320); "
                      "OPT and BLOOM: nominal size from the model name",
    tokens="Pythia: step x 2,097,152 (1024 x 2048); OPT 1.8e11 and BLOOM 3.66e11 (final checkpoints, step=-1)",
    groups="family = pythia / opt / bloom; dataset = pile / pile_deduped / opt_corpus / roots; task = lm-eval task; "
           "shots = 0 or 5; model = run name",
    holdout="Pythia 6.9B and 12B at every checkpoint (the headline points are their step-143000 rows), "
            "OPT-30B/66B, BLOOM-7B1",
    defects_fixed=("step-0 checkpoints dropped (D = 0 tokens: not a trained model): 16 files x 65 tasks",
                   "Pythia-2.8B standard and deduped report identical results at several checkpoints "
                   "(zero-shot steps 1000-43000: 65-100% of tasks identical; five-shot 3000-43000: 85-100%; other "
                   "sizes: 2-15%): a result file was copied; those checkpoints are dropped for both variants",
                   "zero-shot files named '*-5shot_*' in pythia-1b-bf16/zero-shot are read by their config "
                   "(num_fewshot=0); no change needed"),
    not_fixed=("Pythia-2.8B standard and deduped are also identical at steps 2-512 (near initialisation, where "
               "other sizes agree on 20-90% of tasks too): kept",
               "MMLU-subject accuracies are exact counts; tasks that average sub-tasks would get counts_exact=False",
               "CrowS-Pairs bias sets (no accuracy) are not loaded"),
    options=(("shots='all'", "0, 5 or 'all'"), ("baselines=True", "include the OPT and BLOOM final checkpoints")),
    rows="42055 (44,525 accuracy results - 1,040 step-0 - 1,430 copied 2.8B checkpoints)",
), load, holdout, primary=True))

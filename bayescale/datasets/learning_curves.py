"""Learning-curve extrapolation benchmark (Alabdulmohsin et al. 2022), as bundled by NSL-PFN."""
from __future__ import annotations

import re

import numpy as np
import pandas as pd

from ..errors import BayescaleError
from ._common import Notes, check_option, drop_exact_duplicates, finish, read_csv
from .registry import Card, Source, Table, register

SOURCE = Source(
    folder="learning_curves_nslpfn",
    repos=(("", "DongWooLee-Eli/nslpfn", "10a5a60911a2a22ef453d8b4ddf1408b6a6075d9"),),
    license="MIT (bundling repo); the benchmark CSVs come from google-research (Apache-2.0)",
    citation=("Alabdulmohsin, Neyshabur, Zhai, 'Revisiting Neural Scaling Laws in Language and Vision', NeurIPS "
              "2022, arXiv:2209.06640; bundled by Lee et al., 'Bayesian Neural Scaling Law Extrapolation with "
              "Prior-Data Fitted Networks' (NSL-PFN), ICML 2025, arXiv:2505.23032"),
)
DOMAINS = {"LM": ("lamda_decoder", "lm_pretraining"), "BB": ("bigbench_262M", "lm_pretraining")}


def _params(model: str) -> float:
    """'1.68e+07' -> 1.68e7; '262M' -> 2.62e8."""
    m = re.fullmatch(r"([\d.]+)M", model)
    try:
        return float(m.group(1)) * 1e6 if m else float(model)
    except ValueError as exc:
        raise BayescaleError(f"learning_curves_nslpfn: cannot read a parameter count from model {model!r}") from exc


def _task(domain: str, task: str) -> str:
    m = re.fullmatch(r"\('(\w+)', '(\d)-shot'\)", task)
    return f"{m.group(1)}_{m.group(2)}shot" if m else task


def load(data_home=None, domain: str = "all") -> pd.DataFrame:
    check_option("domain", domain, ("all", *DOMAINS))
    notes = Notes("learning_curves_nslpfn")
    raw = read_csv(SOURCE.folder, "data/benchmark.lang.csv", data_home)
    raw = drop_exact_duplicates(raw, notes)
    nmt = raw["Domain"] == "NMT"
    if nmt.any():
        notes.append(f"learning_curves_nslpfn: the {int(nmt.sum())} NMT rows are not loaded (no parameter count "
                     "in the source; the schema needs N)")
    raw = raw.loc[raw["Domain"].isin(DOMAINS if domain == "all" else [domain])].reset_index(drop=True)
    df = pd.DataFrame({
        "params": raw["Model"].map(_params), "tokens": raw["Seen Examples"].astype(float),
        "loss": raw["Loss"].astype(float),
        "family": raw["Domain"].map(lambda d: DOMAINS[d][0]), "dataset": raw["Domain"].map(lambda d: DOMAINS[d][1]),
        "task": [_task(d, t) for d, t in zip(raw["Domain"], raw["Task"])],
        "domain": raw["Domain"], "model": raw["Model"], "training": raw["Training"].astype(int),
    })
    return finish(df, notes, response="loss")


def holdout(df: pd.DataFrame) -> np.ndarray:
    return (df["training"] == 0).to_numpy()


register(Table("learning_curves_nslpfn", SOURCE, Card(
    name="learning_curves_nslpfn",
    title="Learning-curve extrapolation benchmark (Alabdulmohsin et al. 2022): LM and BIG-bench curves",
    measured="a metric vs examples/tokens seen for one model per curve (LM: 5 decoder sizes on a shared token "
             "axis; BB: one 262M decoder on 10 (task, shot) pairs)",
    response="loss: LM = validation log-loss on a RESCALED scale starting at 0.999 (treat as relative); BB = the "
             "task's preferred metric as an error-like quantity in [0,1] (not a cross-entropy)",
    params_convention="from the model id (LM: '1.68e+07' etc.; BB: '262M')",
    tokens="'Seen Examples' (batch size x steps; tokens for LM); compute = 6*N*D (nominal)",
    groups="family = lamda_decoder (LM) / bigbench_262M (BB); dataset = lm_pretraining; task = val_loss or "
           "<bigbench task>_<k>shot; domain, model and the authors' split 'training' kept",
    holdout="the authors' extrapolation split: rows with Training == 0 (342 of 712 after de-duplication; "
            "LM + BB: 337 of 659)",
    defects_fixed=("687 exact duplicate rows dropped (e.g. the whole LM 1.68e+07 curve appears twice): "
                   "1,399 -> 712 rows",),
    not_fixed=("NMT curves (53 rows) are not loaded: the source gives no parameter counts",
               "benchmark.vision.csv (image classification, error rates) is not loaded: not a language-model "
               "scaling table and the architectures' parameter counts are not in the source",
               "colpret.npz (192 published pretraining curves) is not loaded yet: units differ by family and N "
               "has to be parsed from free-form keys",
               "the double-descent CSVs are not loaded (non-monotone stress tests, no N/D axes in the schema's sense)"),
    options=(("domain='all'", "'LM', 'BB' or 'all' (= LM + BB)"),),
    rows="659 (LM 229 + BB 430, after de-duplication)",
), load, holdout, primary=True))

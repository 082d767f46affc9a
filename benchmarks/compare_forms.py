"""Which functional form do real data support? PSIS-LOO and held-out calibration per law.

Run:  python benchmarks/compare_forms.py [--quick] [--only NAME ...] [--seed 0]
Fits chinchilla, farseer and kaplan-nd (and overtrain against chinchilla on Gadre et al.'s
over-training grid) to each table, ranks them with bayescale.compare (PSIS-LOO ELPD on log loss),
then holds out the largest runs (bayescale.heldout.calibrate, same law and pooling) and scores
the predictions. Writes the 'compare-forms' section ("Model comparison") of benchmarks/RESULTS.md.
Needs the datasets folder (BAYESCALE_DATA or ../shared/datasets).
"""
from __future__ import annotations

import argparse
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

import bayescale
from bayescale import datasets
from bayescale.comparison import holdout_scores
from bayescale.errors import BayescaleWarning

_DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
if "BAYESCALE_DATA" not in os.environ and _DEFAULT_DATA.is_dir():
    os.environ["BAYESCALE_DATA"] = str(_DEFAULT_DATA)

try:
    from results_file import write_section
except ImportError:
    from benchmarks.results_file import write_section


def every_third_checkpoint(df: pd.DataFrame) -> pd.DataFrame:
    """Gemstones: 35 checkpoints per shape; every third keeps 12 per shape."""
    rank = df.groupby("run")["step"].rank(method="first").astype(int)
    return df[(rank - 1) % 3 == 0].reset_index(drop=True)


def drop_multiplier(df: pd.DataFrame) -> pd.DataFrame:
    """Gadre's table counts M in units of 20 tokens/param; drop it so bayescale derives M = D/N."""
    return df.drop(columns=["multiplier"])


@dataclass
class Entry:
    name: str
    dataset: str
    laws: tuple
    holdout: str                       # a protocol, or "natural"
    prepare: object = None
    load_options: dict = field(default_factory=dict)
    note: str = ""


ENTRIES = [
    Entry("chinchilla-epoch", "chinchilla_epoch", ("chinchilla", "farseer", "kaplan-nd"), "top-compute:0.1",
          note="Epoch's 240 points; top 10% by compute held out"),
    Entry("gemstones", "gemstones", ("chinchilla", "farseer", "kaplan-nd"), "natural",
          prepare=every_third_checkpoint,
          note="22 shapes x 12 checkpoints (every third of 35, 10B-350B tokens); 1B and 2B classes held out"),
    Entry("step-law-best", "step_law", ("chinchilla", "farseer", "kaplan-nd"), "natural",
          load_options={"best_only": True},
          note="best loss over (lr, batch) per (N, D) cell; N = 1.07e9 cells held out"),
    Entry("gadre-overtraining", "gadre_overtraining", ("chinchilla", "overtrain"), "natural",
          prepare=drop_multiplier,
          note="104 runs, 3 corpora (E and B pooled by corpus); the 1.4B and 6.9B runs held out"),
]


def run_entry(entry: Entry, seed: int, budget: dict) -> tuple[pd.DataFrame, list[str], float]:
    t0 = time.perf_counter()
    df = datasets.load(entry.dataset, **entry.load_options)
    natural = datasets.holdout(entry.dataset, df) if entry.holdout == "natural" else None
    if entry.prepare is not None:
        df = entry.prepare(df.assign(_held=natural if natural is not None else False))
        held = df.pop("_held").to_numpy()
        natural = held if natural is not None else None
    fits = [bayescale.fit(df, law, seed=seed, progress=False, duplicates="keep", **budget)
            for law in entry.laws]
    diag = [f"{f.law.spec}: max r_hat {f.diagnostics['max_rhat']:.3f}, min ESS {f.diagnostics['min_ess_bulk']:.0f}, "
            f"{f.diagnostics['divergences']} divergences" for f in fits]
    scores = holdout_scores(fits, df, entry.holdout, natural=natural, seed=seed, **budget)
    result = bayescale.compare(*fits, calibration=scores)
    return result.table, diag + result.notes, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="small budgets (smoke run)")
    ap.add_argument("--only", nargs="*")
    args = ap.parse_args()
    warnings.simplefilter("ignore", BayescaleWarning)
    budget = dict(chains=2, warmup=300, draws=300) if args.quick else dict(chains=2, warmup=500, draws=500)
    lines, notes = [], []
    t_all = time.perf_counter()
    for entry in ENTRIES:
        if args.only and entry.name not in args.only:
            continue
        print(f"== {entry.name}", flush=True)
        table, entry_notes, seconds = run_entry(entry, args.seed, budget)
        print(table.to_string(), flush=True)
        for name, r in table.iterrows():
            lines.append(
                f"| {entry.name} | {name} | {int(r['rank']) + 1} | {r['elpd_loo']:.1f} ± {r['elpd_se']:.1f} "
                f"| {r['elpd_diff']:.1f} ± {r['elpd_diff_se']:.1f} | {r['p_loo']:.1f} | {int(r['n_bad_k'])} "
                f"| {int(r['heldout_n'])} | {r['heldout_crps']:.4f} | {r['heldout_cov_90']:.2f} "
                f"| {r['heldout_median_are']:.4f} | {r['heldout_elpd']:.1f} |")
        notes.append(f"- **{entry.name}** ({entry.note}; {seconds:.0f} s): " + "; ".join(entry_notes))
    elapsed = time.perf_counter() - t_all
    md = f"""## Model comparison (`benchmarks/compare_forms.py`{' --quick' if args.quick else ''})

Seed {args.seed}, {budget['chains']} chains x {budget['warmup']} warmup + {budget['draws']} draws per fit.
Each law is fitted to the whole table and ranked by PSIS-LOO ELPD on log loss (`bayescale.compare`,
higher is better; the difference is to the best law, with its standard error; bad k = observations
with Pareto k > 0.7). Then the same law and pooling are refitted without the held-out runs and score
them as new observations (`bayescale.heldout.calibrate`): CRPS and median absolute relative
error (ARE) on the loss scale (lower is better), 90% interval coverage and summed log predictive
density (higher is better).

| data | law | LOO rank | elpd_loo | elpd diff | p_loo | bad k | n held out | CRPS | cov 90 | median ARE | held-out elpd |
| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |
{chr(10).join(lines)}

{chr(10).join(notes)}

Whole benchmark: {elapsed:.0f} s.
"""
    write_section("compare-forms", md)
    print(md)


if __name__ == "__main__":
    main()

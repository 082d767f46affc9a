"""Would `bayescale.plan` have chosen better runs from a real pool? A retrospective on Epoch's
Chinchilla runs and Step Law's best run per (N, D) cell.

Each dataset's own held-out runs (its card's holdout: the largest runs) are the targets and are
never seen. The rest is the pool. Every strategy starts from the pool's 5 cheapest runs and adds
pool runs until a cumulative budget, a fraction (FRACTIONS) of the compute of the pool beyond the
seed:

* plan: sequential, as a user would run it: `bayescale.plan` on the current fit spends what is left
  of the next budget on pool runs (its target: the held-out runs' geometric centre in N and D, the
  size of run the user is planning; their losses are never read), then the chosen runs are added
  and refit;
* cheapest: the cheapest runs first;
* ladder: runs within a factor 2 of 20 tokens per parameter, smallest first (a Chinchilla ladder);
* random: random pool runs while they fit the budget (RANDOM_SEEDS orders; the table gives each).

Each design is fit at bayescale's defaults and predicts every held-out run as a new run. Scores:
the median absolute error of the median (nats), 90 % coverage, and the median 90 % width.

Run: python benchmarks/plan_retrospective.py [--datasets chinchilla_epoch,step_law] [--results]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bayescale  # noqa: E402
from default_health import markdown  # noqa: E402
from plan_value import within  # noqa: E402

DATASETS = {"chinchilla_epoch": {}, "step_law": {"best_only": True}}
FRACTIONS = (0.03, 0.1, 0.3, 0.5)   # of the pool's compute beyond the seed runs
SEED_RUNS = 5
RANDOM_SEEDS = (0, 1, 2)
OUT = HERE / "out" / "plan_retrospective.json"


def cost(df: pd.DataFrame) -> np.ndarray:
    return 6.0 * df["params"].to_numpy(np.float64) * df["tokens"].to_numpy(np.float64)


def fixed_order(strategy: str, pool: pd.DataFrame, rng) -> pd.DataFrame:
    if strategy == "cheapest":
        return pool.sort_values("cost")
    if strategy == "ladder":
        ratio = pool["tokens"] / pool["params"]
        return pool[(ratio >= 10) & (ratio <= 40)].sort_values("params")
    return pool.iloc[rng.permutation(len(pool))]


def score(runs: pd.DataFrame, held: pd.DataFrame, seed: int):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bayescale.BayescaleWarning)
        f = bayescale.fit(runs, "chinchilla", seed=seed, progress=False)
        pred = f.predict(held, levels=(0.9,), seed=seed)
    lo, hi, med = (pred[c].to_numpy() for c in ("lower_90", "upper_90", "median"))
    y = held["loss"].to_numpy()
    return f, {"abs_error": float(np.median(np.abs(med - y))), "coverage": float(np.mean((lo <= y) & (y <= hi))),
               "width": float(np.median(hi - lo)), "max_rhat": f.diagnostics["max_rhat"],
               "divergences": f.diagnostics["divergences"]}


def one_dataset(name: str, seed: int) -> list[dict]:
    df = bayescale.datasets.load(name, **DATASETS[name])
    held_mask = bayescale.datasets.holdout(name, df)
    held = df[held_mask].reset_index(drop=True)
    pool = df[~held_mask].reset_index(drop=True)
    pool = pool.assign(cost=cost(pool))
    seed_idx = pool.sort_values("cost").index[:SEED_RUNS]
    base, rest = pool.loc[seed_idx], pool.drop(index=seed_idx)
    target = {"params": float(np.exp(np.log(held["params"]).mean())),
              "tokens": float(np.exp(np.log(held["tokens"]).mean()))}
    budgets = [f * float(rest["cost"].sum()) for f in FRACTIONS]
    cols = ["params", "tokens", "loss"]
    seed_fit, s = score(base[cols], held, seed)
    rows = [{"dataset": name, "strategy": "seed", "fraction": 0.0, "budget": 0.0, "spent": 0.0, "n_added": 0, **s}]
    strategies = ["plan", "cheapest", "ladder"] + [f"random {r}" for r in RANDOM_SEEDS]
    plan_fit, plan_runs = seed_fit, rest.iloc[:0]
    for fraction, budget in zip(FRACTIONS, budgets):
        for strategy in strategies:
            if strategy == "plan":
                left = rest.drop(index=plan_runs.index)
                room = budget - float(plan_runs["cost"].sum())
                if len(left) and left["cost"].min() <= room:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", bayescale.BayescaleWarning)
                        chosen = bayescale.plan(plan_fit, target, left[["params", "tokens"]], budget=room, seed=seed).chosen
                    # plan returns the candidates' values; map them back to pool rows (each row once)
                    taken: list[int] = []
                    for r in chosen.itertuples():
                        taken.append(_row_of(left, r, taken))
                    picked = left.iloc[taken]
                    plan_runs = pd.concat([plan_runs, picked])
                added = plan_runs
            else:
                rng = np.random.default_rng([seed, int(strategy.split()[-1])]) if strategy.startswith("random") else None
                added = within(fixed_order(strategy.split()[0], rest, rng), budget)
            f, s = score(pd.concat([base, added])[cols], held, seed)
            if strategy == "plan":
                plan_fit = f
            rows.append({"dataset": name, "strategy": strategy, "fraction": fraction, "budget": budget,
                         "spent": float(added["cost"].sum()), "n_added": len(added), **s})
            print(f"{name} {fraction} {strategy}: error {s['abs_error']:.4f} coverage {s['coverage']:.2f}", flush=True)
    return rows


def _row_of(table: pd.DataFrame, run, taken: list[int]) -> int:
    hit = np.flatnonzero(np.isclose(table["params"], run.params) & np.isclose(table["tokens"], run.tokens))
    return int(next(h for h in hit if h not in taken))


def reach(table: pd.DataFrame, name: str, baseline: str) -> tuple[float, float, float]:
    """(baseline's final error, compute it spent, compute plan spent to first reach that error)."""
    t = table[table["dataset"] == name]
    base = t[t["strategy"] == baseline].sort_values("budget").iloc[-1]
    plan = t[(t["strategy"] == "plan") & (t["abs_error"] <= base["abs_error"])].sort_values("budget")
    return float(base["abs_error"]), float(base["spent"]), float(plan["spent"].iloc[0]) if len(plan) else float("nan")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--datasets", default=",".join(DATASETS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--results", action="store_true")
    ap.add_argument("--rescore", action="store_true", help=f"rebuild the tables from {OUT.name}, without fitting")
    args = ap.parse_args(argv)
    names = args.datasets.split(",")
    if set(names) - set(DATASETS):
        ap.error(f"--datasets: choose from {','.join(DATASETS)}")
    t0 = time.perf_counter()
    if args.rescore:
        saved = json.loads(OUT.read_text())
        rows, seconds = saved["rows"], saved["seconds"]
    else:
        rows = []
        for name in names:
            rows += one_dataset(name, args.seed)
        seconds = time.perf_counter() - t0
        OUT.parent.mkdir(exist_ok=True)
        OUT.write_text(json.dumps({"seed": args.seed, "seconds": seconds, "rows": rows}, indent=1))
    table = pd.DataFrame(rows)
    # the random orders' median error per budget: one baseline that is not one lucky or unlucky order
    rand = table[table["strategy"].str.startswith("random")]
    pooled = rand.groupby(["dataset", "fraction"], as_index=False).agg(
        budget=("budget", "first"), spent=("spent", "median"), abs_error=("abs_error", "median"))
    table = pd.concat([table, pooled.assign(strategy=f"random (median of {len(RANDOM_SEEDS)})")], ignore_index=True)
    shown = table.assign(budget=table["budget"].map(lambda b: f"{b:.2g}"), spent=table["spent"].map(lambda b: f"{b:.2g}"))
    lines = []
    for name in table["dataset"].unique():
        for baseline in sorted(s for s in table["strategy"].unique() if s not in ("plan", "seed")):
            err, spent, need = reach(table, name, baseline)
            lines.append(f"| {name} | {baseline} | {err:.4f} | {spent:.2g} | {need:.2g} | {need / spent:.2f} |")
    md = (f"## Which runs next, in retrospect: real pools (`benchmarks/plan_retrospective.py`)\n\n"
          f"Seed {args.seed}; every strategy starts from the pool's {SEED_RUNS} cheapest runs; budgets are "
          + ", ".join(f"{f:g}" for f in FRACTIONS) + " of the pool's remaining compute; targets: the dataset's "
          f"held-out runs (never seen). Fits at bayescale's defaults. The run took {seconds:.0f} s.\n\n"
          + markdown(shown[~shown["strategy"].str.contains("median")][
              ["dataset", "strategy", "fraction", "budget", "spent", "n_added", "abs_error", "coverage", "width",
               "max_rhat"]])
          + "\n\nCompute plan spends to first reach each baseline's error at its largest budget (ratio at most "
            "0.60 is the target; nan: plan never reaches it):\n\n"
            "| dataset | baseline | its final error | its compute | plan's compute | ratio |\n|---|---|---|---|---|---|\n"
          + "\n".join(lines) + "\n")
    print(md)
    if args.results:
        from results_file import write_section
        write_section("plan-retrospective", md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

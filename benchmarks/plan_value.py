"""Does `bayescale.plan` buy a narrower (and still calibrated) interval for a big run per FLOP than
the designs people use? A simulation study.

Each world draws a Chinchilla truth near Hoffmann et al.'s fit (E, alpha, beta, A, B perturbed;
1 % noise on log loss). Every strategy starts from the same seed ladder (the 5 cheapest runs of a
20-tokens-per-parameter ladder, 2e7-1e8 parameters) and adds runs from one candidate pool (sizes
2e7-2e9 at 5-160 tokens per parameter) until a cumulative budget:

* plan: `bayescale.plan` on the seed fit, with the budget (one batch, no refits in between);
* ladder: the next sizes of the fixed 20-tokens-per-parameter ladder, smallest first;
* random: random candidates (seeded) while they fit the budget;
* cheapest: the cheapest candidates first.

After adding, each strategy refits (bayescale defaults, discrepancy on) and predicts the target
(7e9 parameters, 1.4e11 tokens: about 3 decades of compute beyond the seed ladder) as a new run.
Scores per budget: the 90 % width, whether the true new run's loss (simulated) lies inside, and the
absolute error of the median. Nothing is tuned to the outcome: the truth is used only to simulate
and to score.

Run: python benchmarks/plan_value.py [--worlds 50] [--seed 0] [--results]
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
from bayescale.models import get_law  # noqa: E402
from bayescale.simulate import simulate  # noqa: E402

HOFFMANN = {"E": 1.69, "log_A0": -0.26, "alpha": 0.34, "log_B0": -0.43, "beta": 0.28, "sigma": 0.01, "nu": 30.0}
TARGET = {"params": 7e9, "tokens": 1.4e11}
BUDGETS = (3e18, 1e19, 3e19, 1e20)
LADDER = np.geomspace(2e7, 2e9, 11)              # the fixed 20-tokens-per-parameter ladder
SEED_RUNS = 5
POOL_SIZES = np.geomspace(2e7, 2e9, 9)
POOL_RATIOS = (5.0, 10.0, 20.0, 40.0, 80.0, 160.0)
STRATEGIES = ("plan", "ladder", "random", "cheapest")
OUT = HERE / "out" / "plan_value.json"


def world_truth(rng: np.random.Generator) -> dict:
    t = dict(HOFFMANN)
    t["E"] = HOFFMANN["E"] * float(np.exp(rng.normal(0, 0.05)))
    t["alpha"] = HOFFMANN["alpha"] + float(rng.normal(0, 0.03))
    t["beta"] = HOFFMANN["beta"] + float(rng.normal(0, 0.03))
    t["log_A0"] = HOFFMANN["log_A0"] + float(rng.normal(0, 0.2))
    t["log_B0"] = HOFFMANN["log_B0"] + float(rng.normal(0, 0.2))
    return t


def pool() -> pd.DataFrame:
    rows = [{"params": n, "tokens": n * r} for n in POOL_SIZES for r in POOL_RATIOS]
    ladder = [{"params": n, "tokens": 20 * n} for n in LADDER]
    table = pd.concat([pd.DataFrame(rows), pd.DataFrame(ladder)]).drop_duplicates().reset_index(drop=True)
    return table.assign(cost=6 * table["params"] * table["tokens"])


def seed_design() -> pd.DataFrame:
    return pd.DataFrame({"params": LADDER[:SEED_RUNS], "tokens": 20 * LADDER[:SEED_RUNS]})


def choose(strategy: str, seed_fit, candidates: pd.DataFrame, budget: float, rng) -> pd.DataFrame:
    if strategy == "plan":
        result = bayescale.plan(seed_fit, TARGET, candidates[["params", "tokens"]], budget=budget)
        chosen = result.chosen[["params", "tokens"]].copy()
        # what plan expected (checked against the refit: the Gaussian update against reality)
        chosen.attrs["expected_width"] = (float(result.chosen["width_90_after"].iloc[-1]) if len(result.chosen)
                                          else result.width_now)
        return chosen
    if strategy == "ladder":
        order = candidates[np.isclose(candidates["tokens"] / candidates["params"], 20)].sort_values("params")
    elif strategy == "random":
        order = candidates.iloc[rng.permutation(len(candidates))]
    else:
        order = candidates.sort_values("cost")
    picked, spent = [], 0.0
    for _, row in order.iterrows():
        if spent + row["cost"] <= budget:
            picked.append(row)
            spent += row["cost"]
    return pd.DataFrame(picked)[["params", "tokens"]] if picked else pd.DataFrame(columns=["params", "tokens"])


def fit_and_score(runs: pd.DataFrame, truth_value: float, seed: int) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bayescale.BayescaleWarning)
        f = bayescale.fit(runs, "chinchilla", seed=seed, progress=False)
        pred = f.predict(pd.DataFrame([TARGET]), levels=(0.9,), seed=seed)
    lo, hi, med = (float(pred[c].iloc[0]) for c in ("lower_90", "upper_90", "median"))
    d = f.diagnostics
    return {"width": hi - lo, "covered": bool(lo <= truth_value <= hi), "abs_error": abs(med - truth_value),
            "max_rhat": d["max_rhat"], "divergences": d["divergences"]}


def one_world(w: int, seed: int) -> list[dict]:
    rng = np.random.default_rng([seed, w])
    truth = world_truth(rng)
    law = get_law("chinchilla")
    cands = pool()
    # one simulation for the pool and the target: one curve (its reference scales come from the design)
    every = pd.concat([cands[["params", "tokens"]], pd.DataFrame([TARGET])], ignore_index=True)
    sim, _ = simulate(law, every, truth, seed=int(rng.integers(2**31)))
    loss_of = {(round(a, 3), round(b, 3)): v for a, b, v in zip(sim["params"], sim["tokens"], sim["loss"])}
    truth_value = float(sim["loss"].iloc[-1])

    def runs_of(design: pd.DataFrame) -> pd.DataFrame:
        return design.assign(loss=[loss_of[(round(a, 3), round(b, 3))] for a, b in zip(design["params"], design["tokens"])])

    base = seed_design()
    seeded = runs_of(base)
    rest = cands[~cands.set_index(["params", "tokens"]).index.isin(base.set_index(["params", "tokens"]).index)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bayescale.BayescaleWarning)
        seed_fit = bayescale.fit(seeded, "chinchilla", seed=w, progress=False)
    rows = [{"world": w, "strategy": "seed", "budget": 0.0, "spent": 0.0, "n_added": 0,
             **fit_and_score(seeded, truth_value, w)}]
    for budget in BUDGETS:
        for strategy in STRATEGIES:
            added = choose(strategy, seed_fit, rest, budget, np.random.default_rng([seed, w, int(np.log10(budget) * 10)]))
            design = pd.concat([base, added], ignore_index=True)
            spent = float((6 * added["params"] * added["tokens"]).sum()) if len(added) else 0.0
            rows.append({"world": w, "strategy": strategy, "budget": budget, "spent": spent, "n_added": len(added),
                         "expected_width": added.attrs.get("expected_width"),
                         **fit_and_score(runs_of(design), truth_value, w)})
    return rows


def summarise(table: pd.DataFrame) -> pd.DataFrame:
    g = table.groupby(["strategy", "budget"])
    return pd.DataFrame({"worlds": g.size(), "median width 90": g["width"].median(), "coverage 90": g["covered"].mean(),
                         "median abs error": g["abs_error"].median(), "median spent": g["spent"].median(),
                         "fits with r_hat > 1.01": g["max_rhat"].apply(lambda v: int((v > 1.01).sum()))}).reset_index()


def compute_to_reach(summary: pd.DataFrame, strategy: str, width: float) -> float:
    """The smallest budget at which a strategy's median width is at most ``width`` (nan if never)."""
    rows = summary[(summary["strategy"] == strategy) & (summary["median width 90"] <= width)]
    return float(rows["budget"].min()) if len(rows) else float("nan")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--worlds", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--results", action="store_true")
    ap.add_argument("--rescore", action="store_true", help=f"rebuild the tables from {OUT.name}, without fitting")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    if args.rescore:
        saved = json.loads(OUT.read_text())
        rows, seconds = saved["rows"], saved["seconds"]
        args.worlds, args.seed = saved["worlds"], saved["seed"]
    else:
        rows = []
        for w in range(args.worlds):
            rows += one_world(w, args.seed)
            print(f"world {w}: {time.perf_counter() - t0:.0f} s", flush=True)
        seconds = time.perf_counter() - t0
        OUT.parent.mkdir(exist_ok=True)
        OUT.write_text(json.dumps({"worlds": args.worlds, "seed": args.seed, "seconds": seconds, "rows": rows}, indent=1))
    table = pd.DataFrame(rows)
    summary = summarise(table)
    best = {}
    for budget in BUDGETS:
        base = summary[(summary["budget"] == budget) & summary["strategy"].isin(["ladder", "random", "cheapest"])]
        best[budget] = base.sort_values("median width 90").iloc[0]
    lines = []
    for budget, row in best.items():
        need = compute_to_reach(summary, "plan", row["median width 90"])
        lines.append(f"| {budget:.0e} | {row['strategy']} | {row['median width 90']:.4f} | {need:.0e} | "
                     f"{need / budget:.2f} |")
    md = (f"## Which runs next: `bayescale.plan` against fixed designs (`benchmarks/plan_value.py`)\n\n"
          f"{args.worlds} simulated worlds (seed {args.seed}), Chinchilla truths near Hoffmann et al.; seed ladder of "
          f"{SEED_RUNS} runs; target {TARGET['params']:.0e} parameters x {TARGET['tokens']:.1e} tokens; every fit at "
          f"bayescale's defaults. The run took {seconds:.0f} s.\n\n"
          + markdown(summary) + "\n\n"
          "Compute plan needs to reach the best baseline's median width at each budget (budget tried: "
          + ", ".join(f"{b:.0e}" for b in BUDGETS) + "; nan: not reached at any):\n\n"
          "| budget | best baseline | its median width | plan reaches it at | ratio |\n|---|---|---|---|---|\n"
          + "\n".join(lines) + "\n")
    plans = table[(table["strategy"] == "plan") & table.get("expected_width", pd.Series(dtype=float)).notna()] \
        if "expected_width" in table else table.iloc[:0]
    if len(plans):
        ratio = plans["width"] / plans["expected_width"]
        md += (f"\nPlan's expected 90 % width (Gaussian update on the seed fit) against the width the refit gave: "
               f"median ratio {ratio.median():.2f} (quartiles {ratio.quantile(0.25):.2f}-{ratio.quantile(0.75):.2f}, "
               f"{len(ratio)} plans).\n")
    print(md)
    if args.results:
        from results_file import write_section
        write_section("plan-value", md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

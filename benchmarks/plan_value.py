"""Does `bayescale.plan` buy a narrower (and still calibrated) interval for a big run per FLOP than
the designs people use? A simulation study.

Each world draws a Chinchilla truth near Hoffmann et al.'s fit (E, alpha, beta, A, B perturbed;
1 % noise on log loss), or with ``--truth farseer`` a Farseer truth (Li et al. 2025's form, as
bayescale writes it) near that form's fit to Hoffmann et al.'s runs (Epoch's reconstruction, the
law alone, posterior medians; every parameter perturbed, same noise). The fits stay Chinchilla's,
as a user's would: under a Farseer truth the law is wrong, and only the model discrepancy can
cover what it misses. Every strategy starts from the same seed ladder (the 5 cheapest runs of a
20-tokens-per-parameter ladder, 2e7-1e8 parameters) and adds runs from one candidate pool (sizes
2e7-2e9 at 5-160 tokens per parameter) until a cumulative budget:

* plan: sequential, as a user would run it: `bayescale.plan` on the current fit spends what is left
  of the next budget, the chosen runs are trained (simulated) and refit, and the next budget's
  plan starts from that fit;
* ladder: the next sizes of the fixed 20-tokens-per-parameter ladder, smallest first;
* random: random candidates (seeded) while they fit the budget;
* cheapest: the cheapest candidates first.

After adding, each strategy refits (bayescale defaults, discrepancy on) and predicts the target
(7e9 parameters, 1.4e11 tokens: about 3 decades of compute beyond the seed ladder) as a new run.
Scores per budget: the 90 % width, whether the true new run's loss (simulated) lies inside, and the
absolute error of the median. Nothing is tuned to the outcome: the truth is used only to simulate
and to score.

The baselines do not depend on plan: `--strategies plan` reruns plan alone and takes the other
strategies' rows from the saved run (same worlds and seed; the fits are reproducible).

`--extend` adds worlds to the saved run. A run of every strategy saves after each world, so an
interrupted run keeps the worlds it finished and `--extend` goes on from there.

Run: python benchmarks/plan_value.py [--worlds 50] [--seed 0] [--truth farseer] [--strategies plan] [--extend] [--results]
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
from bayescale.design import centre  # noqa: E402
from bayescale.models import get_law  # noqa: E402
from bayescale.simulate import simulate  # noqa: E402

HOFFMANN = {"E": 1.69, "log_A0": -0.26, "alpha": 0.34, "log_B0": -0.43, "beta": 0.28, "sigma": 0.01, "nu": 30.0}
# Farseer's form fitted to chinchilla_epoch (240 runs, discrepancy="none", seed 0, posterior medians)
# at that fit's reference scales (log N0, log D0); the form is not closed under a change of reference
FARSEER = {"E": 0.933, "log_u": -0.137, "gamma": 0.103, "log_B0": -1.082, "phi": -0.191, "beta": 0.396,
           "kappa": -0.142, "sigma": 0.01, "nu": 30.0}
FARSEER_LOGREF = {"params": 20.559, "tokens": 23.553}
TARGET = {"params": 7e9, "tokens": 1.4e11}
BUDGETS = (3e18, 1e19, 3e19, 1e20)
LADDER = np.geomspace(2e7, 2e9, 11)              # the fixed 20-tokens-per-parameter ladder
SEED_RUNS = 5
POOL_SIZES = np.geomspace(2e7, 2e9, 9)
POOL_RATIOS = (5.0, 10.0, 20.0, 40.0, 80.0, 160.0)
PLANS = {"plan": "gaussian", "plan-importance": "importance"}   # plan's estimate of what a run teaches
STRATEGIES = (*PLANS, "ladder", "random", "cheapest")
TRUTHS = {"chinchilla": "Chinchilla truths near Hoffmann et al.",
          "farseer": "Farseer truths near that form's fit to Hoffmann et al.'s runs, fitted with Chinchilla's law"}


def saved_run(truth_law: str) -> Path:
    return HERE / "out" / ("plan_value.json" if truth_law == "chinchilla" else f"plan_value_{truth_law}.json")


def world_truth(rng: np.random.Generator) -> dict:
    t = dict(HOFFMANN)
    t["E"] = HOFFMANN["E"] * float(np.exp(rng.normal(0, 0.05)))
    t["alpha"] = HOFFMANN["alpha"] + float(rng.normal(0, 0.03))
    t["beta"] = HOFFMANN["beta"] + float(rng.normal(0, 0.03))
    t["log_A0"] = HOFFMANN["log_A0"] + float(rng.normal(0, 0.2))
    t["log_B0"] = HOFFMANN["log_B0"] + float(rng.normal(0, 0.2))
    return t


def farseer_truth(rng: np.random.Generator) -> dict:
    t = dict(FARSEER)
    t["E"] = FARSEER["E"] * float(np.exp(rng.normal(0, 0.05)))
    for k in ("gamma", "beta", "phi", "kappa"):
        t[k] = FARSEER[k] + float(rng.normal(0, 0.03))
    for k in ("log_u", "log_B0"):
        t[k] = FARSEER[k] + float(rng.normal(0, 0.2))
    return t


def simulate_farseer(truth: dict, design: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Loss at ``design`` under a Farseer truth (at FARSEER_LOGREF), with the law's own noise."""
    law = get_law("farseer")
    x = centre(law, {k: design[k].to_numpy() for k in law.inputs}, FARSEER_LOGREF)
    mu = np.asarray(law.mean(x, truth, xp=np), dtype=np.float64)
    loss = law.observation.sample(np.random.default_rng(seed), mu, truth, {})
    return design.assign(loss=loss)


def pool() -> pd.DataFrame:
    rows = [{"params": n, "tokens": n * r} for n in POOL_SIZES for r in POOL_RATIOS]
    ladder = [{"params": n, "tokens": 20 * n} for n in LADDER]
    table = pd.concat([pd.DataFrame(rows), pd.DataFrame(ladder)]).drop_duplicates().reset_index(drop=True)
    return table.assign(cost=6 * table["params"] * table["tokens"])


def seed_design() -> pd.DataFrame:
    return pd.DataFrame({"params": LADDER[:SEED_RUNS], "tokens": 20 * LADDER[:SEED_RUNS]})


def choose(strategy: str, candidates: pd.DataFrame, budget: float, rng) -> pd.DataFrame:
    """A fixed design's runs within the budget, in its own order."""
    if strategy == "ladder":
        order = candidates[np.isclose(candidates["tokens"] / candidates["params"], 20)].sort_values("params")
    elif strategy == "random":
        order = candidates.iloc[rng.permutation(len(candidates))]
    else:
        order = candidates.sort_values("cost")
    return within(order, budget)[["params", "tokens"]]


def within(order: pd.DataFrame, budget: float) -> pd.DataFrame:
    """The runs of ``order`` (a table with a cost column), in order, that fit the budget, each
    skipped run leaving room for cheaper ones after it."""
    keep, spent = [], 0.0
    for i, c in zip(order.index, order["cost"]):
        if spent + c <= budget:
            keep.append(i)
            spent += c
    return order.loc[keep]


def planned(current_fit, candidates: pd.DataFrame, so_far: pd.DataFrame, budget: float,
            method: str) -> tuple[pd.DataFrame, float]:
    """The next round of plan: what is left of ``budget`` spent on runs not yet trained. Returns every
    run chosen so far and plan's expected width after them (from the current fit)."""
    spent = float((6 * so_far["params"] * so_far["tokens"]).sum()) if len(so_far) else 0.0
    trained = so_far.set_index(["params", "tokens"]).index
    left = candidates[~candidates.set_index(["params", "tokens"]).index.isin(trained)]
    if not len(left) or left["cost"].min() > budget - spent:
        return so_far, float("nan")
    result = bayescale.plan(current_fit, TARGET, left[["params", "tokens"]], budget=budget - spent, method=method)
    expected = float(result.chosen["width_90_after"].iloc[-1]) if len(result.chosen) else result.width_now
    return pd.concat([so_far, result.chosen[["params", "tokens"]]], ignore_index=True), expected


def fit_and_score(runs: pd.DataFrame, truth_value: float, seed: int):
    """The refit on ``runs`` and its scores at the target."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bayescale.BayescaleWarning)
        f = bayescale.fit(runs, "chinchilla", seed=seed, progress=False)
        pred = f.predict(pd.DataFrame([TARGET]), levels=(0.9,), seed=seed)
    lo, hi, med = (float(pred[c].iloc[0]) for c in ("lower_90", "upper_90", "median"))
    d = f.diagnostics
    return f, {"width": hi - lo, "covered": bool(lo <= truth_value <= hi), "abs_error": abs(med - truth_value),
               "max_rhat": d["max_rhat"], "divergences": d["divergences"]}


def one_world(w: int, seed: int, strategies=STRATEGIES, truth_law: str = "chinchilla") -> list[dict]:
    rng = np.random.default_rng([seed, w])
    cands = pool()
    # one simulation for the pool and the target: one curve
    every = pd.concat([cands[["params", "tokens"]], pd.DataFrame([TARGET])], ignore_index=True)
    if truth_law == "farseer":
        truth = farseer_truth(rng)
        sim = simulate_farseer(truth, every, seed=int(rng.integers(2**31)))
    else:   # reference scales from the design
        truth = world_truth(rng)
        sim, _ = simulate(get_law("chinchilla"), every, truth, seed=int(rng.integers(2**31)))
    loss_of = {(round(a, 3), round(b, 3)): v for a, b, v in zip(sim["params"], sim["tokens"], sim["loss"])}
    truth_value = float(sim["loss"].iloc[-1])

    def runs_of(design: pd.DataFrame) -> pd.DataFrame:
        return design.assign(loss=[loss_of[(round(a, 3), round(b, 3))] for a, b in zip(design["params"], design["tokens"])])

    base = seed_design()
    rest = cands[~cands.set_index(["params", "tokens"]).index.isin(base.set_index(["params", "tokens"]).index)]
    seed_fit, scores = fit_and_score(runs_of(base), truth_value, w)
    rows = [{"world": w, "strategy": "seed", "budget": 0.0, "spent": 0.0, "n_added": 0, **scores}]
    current = {s: (seed_fit, rest.iloc[:0][["params", "tokens"]]) for s in strategies if s in PLANS}
    for budget in BUDGETS:
        for strategy in strategies:
            expected = None
            if strategy in PLANS:
                fit_now, so_far = current[strategy]
                added, expected = planned(fit_now, rest, so_far, budget, PLANS[strategy])
            else:
                added = choose(strategy, rest, budget, np.random.default_rng([seed, w, int(np.log10(budget) * 10)]))
            spent = float((6 * added["params"] * added["tokens"]).sum()) if len(added) else 0.0
            refit, scores = fit_and_score(runs_of(pd.concat([base, added], ignore_index=True)), truth_value, w)
            if strategy in PLANS:   # the next round plans from this fit
                current[strategy] = (refit, added)
            rows.append({"world": w, "strategy": strategy, "budget": budget, "spent": spent, "n_added": len(added),
                         "expected_width": expected, **scores})
    return rows


def summarise(table: pd.DataFrame) -> pd.DataFrame:
    g = table.groupby(["strategy", "budget"])
    return pd.DataFrame({"worlds": g.size(), "median width 90": g["width"].median(), "coverage 90": g["covered"].mean(),
                         "median abs error": g["abs_error"].median(), "median spent": g["spent"].median(),
                         "fits with r_hat > 1.01": g["max_rhat"].apply(lambda v: int((v > 1.01).sum()))}).reset_index()


def compute_to_reach(summary: pd.DataFrame, strategy: str, width: float) -> tuple[float, str]:
    """The budget at which a strategy's median width first falls to ``width``: between two budgets
    tried, interpolated linearly in log budget against width ("~"); at or below the first budget
    tried ("<="); nan if never."""
    rows = summary[(summary["strategy"] == strategy) & (summary["budget"] > 0)].sort_values("budget")
    budgets, widths = rows["budget"].to_numpy(), rows["median width 90"].to_numpy()
    below = np.flatnonzero(widths <= width)
    if not len(below):
        return float("nan"), ""
    k = int(below[0])
    if k == 0:
        return float(budgets[0]), "<="
    t = (widths[k - 1] - width) / (widths[k - 1] - widths[k])
    return float(np.exp(np.log(budgets[k - 1]) + t * (np.log(budgets[k]) - np.log(budgets[k - 1])))), "~"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--worlds", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--results", action="store_true")
    ap.add_argument("--truth", choices=sorted(TRUTHS), default="chinchilla", help="the law the worlds follow")
    ap.add_argument("--rescore", action="store_true", help="rebuild the tables from the saved run, without fitting")
    ap.add_argument("--strategies", default=",".join(STRATEGIES),
                    help="strategies to run; the others' rows come from the saved run")
    ap.add_argument("--extend", action="store_true",
                    help="keep the saved run's worlds and add worlds up to --worlds (same seed, every strategy)")
    args = ap.parse_args(argv)
    out = saved_run(args.truth)
    strategies = tuple(args.strategies.split(","))
    if set(strategies) - set(STRATEGIES):
        ap.error(f"--strategies: choose from {','.join(STRATEGIES)}")
    t0 = time.perf_counter()
    if args.rescore:
        saved = json.loads(out.read_text())
        rows, seconds = saved["rows"], saved["seconds"]
        args.worlds, args.seed = saved["worlds"], saved["seed"]
    else:
        rows, seconds, first = [], 0.0, 0
        if args.extend:
            saved = json.loads(out.read_text())
            if saved["seed"] != args.seed or saved["worlds"] >= args.worlds or set(strategies) != set(STRATEGIES):
                raise SystemExit(f"--extend: {out.name} holds {saved['worlds']} worlds of seed {saved['seed']}; "
                                 "give more --worlds, the same --seed and every strategy")
            rows, seconds, first = saved["rows"], saved["seconds"], saved["worlds"]
        elif set(strategies) != set(STRATEGIES):
            saved = json.loads(out.read_text())
            if (saved["worlds"], saved["seed"]) != (args.worlds, args.seed):
                raise SystemExit(f"{out.name} holds {saved['worlds']} worlds of seed {saved['seed']}: run every strategy")
            rows = [r for r in saved["rows"] if r["strategy"] not in (*strategies, "seed")]
            seconds = saved["seconds"]
        out.parent.mkdir(exist_ok=True)
        for w in range(first, args.worlds):
            rows += one_world(w, args.seed, strategies, args.truth)
            print(f"world {w}: {time.perf_counter() - t0:.0f} s", flush=True)
            # saved after every world: an interrupted run keeps the worlds it finished (--extend goes on)
            if set(strategies) == set(STRATEGIES):
                out.write_text(json.dumps({"worlds": w + 1, "seed": args.seed, "rows": rows,
                                           "seconds": seconds + time.perf_counter() - t0}, indent=1))
        seconds += time.perf_counter() - t0
        out.write_text(json.dumps({"worlds": args.worlds, "seed": args.seed, "seconds": seconds, "rows": rows}, indent=1))
    table = pd.DataFrame(rows)
    summary = summarise(table)
    best = {}
    for budget in BUDGETS:
        base = summary[(summary["budget"] == budget) & summary["strategy"].isin(["ladder", "random", "cheapest"])]
        best[budget] = base.sort_values("median width 90").iloc[0]
    lines = []
    for budget, row in best.items():
        for name in PLANS:
            need, how = compute_to_reach(summary, name, row["median width 90"])
            lines.append(f"| {budget:.0e} | {row['strategy']} | {row['median width 90']:.4f} | {name} | "
                         f"{how}{need:.2g} | {how}{need / budget:.2f} |")
    title = "" if args.truth == "chinchilla" else f", {args.truth} truths (`--truth {args.truth}`)"
    md = (f"## Which runs next: `bayescale.plan` against fixed designs (`benchmarks/plan_value.py`{title})\n\n"
          f"{args.worlds} simulated worlds (seed {args.seed}), {TRUTHS[args.truth]}; seed ladder of "
          f"{SEED_RUNS} runs; target {TARGET['params']:.0e} parameters x {TARGET['tokens']:.1e} tokens; every fit at "
          f"bayescale's defaults; plan in sequential rounds (refit after each budget). The fits took {seconds:.0f} s "
          "in all.\n\n"
          + markdown(summary) + "\n\n"
          "Compute each plan needs to reach the best baseline's median width at each budget (budgets tried: "
          + ", ".join(f"{b:.0e}" for b in BUDGETS) + "; ~: interpolated in log budget between two of them, "
          "<=: reached at the first; nan: not reached at any). The target is a ratio of at most 0.50:\n\n"
          "| budget | best baseline | its median width | plan | reaches it at | ratio |\n|---|---|---|---|---|---|\n"
          + "\n".join(lines) + "\n")
    for name, method in PLANS.items():
        rows_of = table[table["strategy"] == name]
        if "expected_width" not in rows_of or not rows_of["expected_width"].notna().any():
            continue
        rows_of = rows_of[rows_of["expected_width"].notna()]
        ratio = rows_of["width"] / rows_of["expected_width"]
        md += (f"\n{name}: the width the refit gave against plan's expected 90 % width ({method} estimate, from the "
               f"previous fit): median ratio {ratio.median():.2f} (quartiles {ratio.quantile(0.25):.2f}-"
               f"{ratio.quantile(0.75):.2f}, {len(ratio)} rounds).\n")
    print(md)
    if args.results:
        from results_file import write_section
        write_section("plan-value" if args.truth == "chinchilla" else f"plan-value-{args.truth}", md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

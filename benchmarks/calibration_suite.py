"""Held-out calibration of bayescale against the classical baselines on the real datasets.

Run:  python benchmarks/calibration_suite.py [--quick] [--only NAME ...] [--seed 0]
                                            [--discrepancy auto|none|PRIOR] [--out DIR]
                                            [--side-by-side OLD_DIR]
Writes the 'calibration-suite' section of benchmarks/RESULTS.md and one report folder per entry
under --out (default benchmarks/out/, not committed). ``--side-by-side OLD_DIR`` also writes the
'calibration-old-new' section: each entry's headline scores from OLD_DIR's summaries (e.g. a run
with ``--discrepancy none``) beside this run's. Needs the datasets folder (BAYESCALE_DATA or ../shared/datasets).
"""
from __future__ import annotations

import argparse
import os
import json
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from bayescale import datasets
from bayescale.errors import BayescaleWarning
from bayescale.heldout import calibrate
from bayescale.scores import LEVELS

# run from anywhere: the default data folder sits beside the repository
_DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
if "BAYESCALE_DATA" not in os.environ and _DEFAULT_DATA.is_dir():
    os.environ["BAYESCALE_DATA"] = str(_DEFAULT_DATA)

try:
    from results_file import write_section
except ImportError:
    from benchmarks.results_file import write_section

OUT = Path(__file__).with_name("out")


@dataclass
class Entry:
    name: str
    dataset: str
    law: str | tuple[str, ...]         # one law, or candidates chosen by PSIS-LOO on the training runs
    holdout: str                       # a protocol, or "natural"
    prepare: object = None             # df -> df (e.g. final checkpoints only)
    load_options: dict = field(default_factory=dict)
    pool: object = None
    priors: dict | None = None
    note: str = ""


def final_checkpoints(df: pd.DataFrame) -> pd.DataFrame:
    last = df.groupby("run")["step"].transform("max")
    return df[df["step"] == last].reset_index(drop=True)


ENTRIES = [
    Entry("chinchilla-epoch", "chinchilla_epoch", ("chinchilla", "farseer"), "top-compute:0.1",
          note="Epoch's 240 points, top 10% by compute held out"),
    Entry("gadre-overtraining", "gadre_overtraining", ("chinchilla", "overtrain"), "natural",
          note="fit the <= 411M runs on 3 corpora, predict the 1.4B and 6.9B runs; E and B pooled by corpus"),
    Entry("gemstones-final", "gemstones", "power", "natural", prepare=final_checkpoints,
          note="final checkpoint of each shape (one token budget), L(N); 1B and 2B classes held out"),
    Entry("step-law-best", "step_law", ("chinchilla", "farseer"), "natural", load_options={"best_only": True},
          note="best loss over (lr, batch) per (N, D) cell; N = 1.07e9 cells held out"),
    Entry("learning-curves-lm", "learning_curves_nslpfn", "chinchilla", "natural",
          load_options={"domain": "LM"},
          note="5 decoder sizes, loss vs tokens (rescaled loss); the authors' extrapolation split"),
    Entry("learning-curves-bigbench", "learning_curves_nslpfn", "power:tokens", "natural",
          load_options={"domain": "BB"},
          pool={"E": "task", "log_A0": "task", "alpha": "task", "sigma": "task"},
          priors={f"{k}_tau": "HalfNormal(1.0)" for k in ("E", "log_A0", "alpha", "sigma")},
          note="10 BIG-bench (task, shot) curves of one 262M model, error vs examples; the authors' "
               "extrapolation split; E, A, alpha and the noise scale partially pooled over tasks, "
               "with a between-task spread prior HalfNormal(1) (tasks differ more than the default "
               "HalfNormal(0.3) allows: e.g. error floors from 0.2 to 0.9)"),
]


def run_entry(entry: Entry, seed: int, quick: bool, discrepancy: str = "auto") -> dict:
    df = datasets.load(entry.dataset, **entry.load_options)
    natural = None
    if entry.prepare is not None:
        mask_full = datasets.holdout(entry.dataset, df)
        df = df.assign(_held=mask_full)
        df = entry.prepare(df)
        natural = df.pop("_held").to_numpy()
    elif entry.holdout == "natural":
        natural = datasets.holdout(entry.dataset, df)
    budget = dict(chains=2, warmup=500, draws=500, n_boot=200) if quick else \
        dict(chains=4, warmup=1000, draws=1000, n_boot=1000)
    laws = (entry.law,) if isinstance(entry.law, str) else entry.law
    results, runtimes = {}, {}
    for law in laws:
        t0 = time.perf_counter()
        results[law] = calibrate(df, law, entry.holdout, natural=natural, pool=entry.pool, priors=entry.priors,
                                 seed=seed, discrepancy=discrepancy, duplicates="keep", **budget)
        runtimes[law] = time.perf_counter() - t0
        results[law].summary["runtime_seconds"] = runtimes[law]
    chosen, selection = choose_law(results)
    result = results[chosen]
    result.summary["selection"] = selection
    result.summary["others"] = {law: r.summary for law, r in results.items() if law != chosen}
    if len(converged(results)) > 1:
        result.summary["stacked"] = stacked_scores(results, seed)
    result.summary["discrepancy_setting"] = discrepancy
    folder = OUT / entry.name
    result.write_report(folder)
    result.write_json(folder / "summary.json")
    return result.summary


MAX_RHAT = 1.05


def converged(results: dict) -> list[str]:
    """Candidate laws whose fits converged (max r_hat <= 1.05); the first law if none did."""
    ok = [law for law, r in results.items() if r.fit.diagnostics["max_rhat"] <= MAX_RHAT]
    return ok or list(results)[:1]


def stacked_scores(results: dict, seed: int) -> dict:
    """Held-out scores of the PSIS-LOO stacking mixture of the converged candidate laws (weights
    from the training runs only)."""
    from bayescale.comparison import stacked_predict
    from bayescale.scores import aggregate, score_points

    laws = converged(results)
    first = results[laws[0]]
    truth = first.heldout[first.fit.law.response].to_numpy(float)
    table, draws = stacked_predict([results[law].fit for law in laws], first.heldout, names=laws,
                                   seed=seed, return_draws=True)
    summary = aggregate(score_points(draws, truth, LEVELS), LEVELS)
    summary.update(n_train=first.n_train, n_heldout=first.n_heldout, weights=table.attrs["weights"])
    return summary


def choose_law(results: dict) -> tuple[str, str]:
    """The candidate with the highest PSIS-LOO ELPD on the training runs alone (the held-out runs
    play no part), among fits that converged (max r_hat <= 1.05)."""
    from bayescale import compare

    laws = list(results)
    if len(laws) == 1:
        return laws[0], "single law"
    ok = converged(results)
    if len(ok) < 2:
        chosen = (ok or laws)[0]
        return chosen, f"only {chosen} converged (max r_hat <= 1.05)"
    table = compare(*[results[law].fit for law in ok], names=ok).table
    best = str(table.index[0])
    others = ", ".join(f"{n} {table.loc[n, 'elpd_diff']:.1f} ± {table.loc[n, 'elpd_diff_se']:.1f} lower"
                       for n in table.index[1:])
    return best, f"training-run PSIS-LOO: {best} best ({others})"


def coverage_interval(coverage: float, n: int, level: float = 0.95) -> tuple[float, float]:
    """Clopper-Pearson interval for a coverage of k = coverage * n held-out runs: how far the
    observed share can stray from the true one by chance on so few runs."""
    from scipy.stats import beta

    k = int(round(coverage * n))
    a = (1 - level) / 2
    lo = 0.0 if k == 0 else float(beta.ppf(a, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1 - a, k + 1, n - k))
    return lo, hi


def row(name: str, law: str, s: dict, method: str) -> str:
    cov = s["coverage"]
    n = s.get("n_heldout", s.get("n_scored", 0))
    lo, hi = coverage_interval(cov["0.9"], int(n)) if n else (float("nan"), float("nan"))
    return (f"| {name} | {law} | {method} | {s.get('n_train', '')} | {n} "
            f"| {cov['0.5']:.2f} | {cov['0.8']:.2f} | {cov['0.9']:.2f} [{lo:.2f}, {hi:.2f}] | {cov['0.95']:.2f} "
            f"| {s['median_are']:.4f} | {s['crps']:.4f} | {s.get('runtime_seconds', float('nan')):.0f} |")


def render(done: list[tuple[Entry, dict]], elapsed: float, seed: int, quick: bool, reruns: dict | None = None) -> str:
    """The RESULTS.md section from the entries' summaries."""
    lines, selections, wins, classical = [], [], [0, 0], [0, 0]
    for entry, s in done:
        law = s["law"]
        head = s.get("stacked")
        if head is not None:  # several candidate laws: the headline is their LOO stacking mixture
            weights = ", ".join(f"{k} {v:.2f}" for k, v in head["weights"].items())
            lines.append(row(entry.name, "+".join(head["weights"]), head,
                             f"**bayescale, LOO stacking** ({weights}), new observation"))
            selections.append(f"- {entry.name}: {s['selection']}; stacking weights {weights}")
        elif s.get("others"):
            selections.append(f"- {entry.name}: {s['selection']}")
        per_law = {law: s, **s.get("others", {})}
        for name, ls in per_law.items():
            headline = head is None and name == law
            tag = "" if head is None and not s.get("others") else (
                "chosen law: " if name == law else "other law: ")
            method = "**bayescale (new observation)**" if headline else "bayescale (new observation)"
            lines.append(row(entry.name, name, ls, tag + method))
            lines.append(row(entry.name, name, {**ls["mean_curve"], "n_train": ls["n_train"],
                                                "n_heldout": ls["n_heldout"]}, tag + "bayescale (mean curve)"))
            for b, bs in ls["baselines"].items():
                if "coverage" in bs:
                    lines.append(row(entry.name, name, {**bs, "n_train": ls["n_train"],
                                                        "n_heldout": bs.get("n_scored", ls["n_heldout"])}, b))
        ours = (head or s)["crps"]
        boot = s["baselines"].get("bootstrap", {})
        if "crps" in boot:
            wins[1] += 1
            wins[0] += ours < boot["crps"]
        # Epoch's method as a user runs it: the Chinchilla form where the data have N and D
        ref = per_law.get("chinchilla", s)["baselines"].get("bootstrap", {})
        if "crps" in ref:
            classical[1] += 1
            classical[0] += ours < ref["crps"]
    return f"""## Held-out calibration suite (`benchmarks/calibration_suite.py`{' --quick' if quick else ''})

Seed {seed}; model discrepancy `{done[0][1].get("discrepancy_setting", "none") if done else "none"}` (the prior of
its scale for every fit, baselines' no-pool fits included). Coverage = share of held-out runs inside the central interval; CRPS and median
absolute relative error (ARE) on the loss scale; lower is better. "new observation" includes the
fitted noise (what a held-out run measures); "mean curve" is the law's curve alone; "bootstrap" is
Huber (delta 1e-3) + L-BFGS from a grid + bootstrap refits (Epoch's method) of the row's law,
parameter intervals; "no-pool" is a separate bayescale fit per group where the data have groups.
Where an entry lists several laws, each is fitted to the training runs; the headline (bold) is
the mixture of their posterior predictives with PSIS-LOO stacking weights computed on the training
runs (held-out runs play no part; laws whose fits did not converge, max r_hat > 1.05, are left
out), and each law's own rows follow. The bracket after cov 90 is a 95% Clopper-Pearson interval for
the true coverage given the held-out count: with 2 to 9 held-out runs it is wide.

| entry | law | method | n_train | n_heldout | cov 50 | cov 80 | cov 90 [95% CI] | cov 95 | median ARE | CRPS | runtime s |
| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |
{chr(10).join(lines)}

Law selection and stacking (training runs only):
{chr(10).join(selections) or "- none"}

bayescale's headline CRPS is lower than the bootstrap of the same law on {wins[0]} of {wins[1]} entries,
and lower than Epoch's method as usually run (the Chinchilla form where the entry has N and D, else
the entry's law) on {classical[0]} of {classical[1]}. Whole suite: {elapsed:.0f} s.{_reruns_text(reruns)}
"""


def _reruns_text(reruns: dict | None) -> str:
    if not reruns:
        return ""
    parts = ", ".join(f"{name} ({r['seconds']:.0f} s, {r['date']})" for name, r in reruns.items())
    return (f" Re-run on their own after the whole suite, with the code and shipped priors of that day: {parts}; "
            "the other entries are from the whole run.")


def headline(s: dict) -> dict:
    """An entry's headline scores: the stacking mixture where there is one, else the chosen law's."""
    h = s.get("stacked") or s
    out = {"cov_0.9": h["coverage"]["0.9"], "cov_0.5": h["coverage"]["0.5"], "crps": h["crps"],
           "median_are": h["median_are"]}
    if "width_90" in h:
        out["width_90"] = h["width_90"]
    return out


def side_by_side(old_dir: Path, new_dir: Path, entries) -> str:
    rows = []
    for e in entries:
        try:
            old = json.loads((old_dir / e.name / "summary.json").read_text())
            new = json.loads((new_dir / e.name / "summary.json").read_text())
        except FileNotFoundError:
            continue
        a, b = headline(old), headline(new)
        shares = new.get("width_shares", {})
        rows.append(f"| {e.name} | {new.get('n_heldout')} | {old.get('discrepancy_setting', 'none')} → "
                    f"{new.get('discrepancy_setting', '?')} | {a['cov_0.5']:.2f} → {b['cov_0.5']:.2f} "
                    f"| {a['cov_0.9']:.2f} → {b['cov_0.9']:.2f} | {a['crps']:.4f} → {b['crps']:.4f} "
                    f"| {a['median_are']:.4f} → {b['median_are']:.4f} "
                    f"| {100 * shares.get('discrepancy', float('nan')):.0f}% |")
    return ("## Calibration suite: the law alone and with the model discrepancy, side by side\n\n"
            "Headline of each entry (the stacking mixture where the entry lists several laws), same seed and "
            "splits; old = the law alone (`--discrepancy none`), new = the default (`auto`: the walk with "
            "its cross-study prior). The last column is the discrepancy's mean share of a held-out run's "
            "squared 90 % interval width in the new fit (of the chosen law).\n\n"
            "| entry | held out | discrepancy | cov 50 | cov 90 | CRPS | median ARE | discrepancy share |\n"
            "| --- | --- | --- | --- | --- | --- | --- | --- |\n" + "\n".join(rows) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="small budgets (for a smoke run; not for RESULTS.md)")
    ap.add_argument("--only", nargs="*", help="entry names to run")
    ap.add_argument("--render", action="store_true",
                    help="rebuild the RESULTS.md section from the last run's summaries, without fitting")
    ap.add_argument("--discrepancy", default="auto", help="auto (default), none, or a prior for the walk's scale")
    ap.add_argument("--out", default=str(Path(__file__).with_name("out")),
                    help="folder for the entries' reports and summaries")
    ap.add_argument("--side-by-side", metavar="OLD_DIR", help="also write the old-vs-new section against OLD_DIR")
    ap.add_argument("--downstream", action="store_true",
                    help="also run the downstream entries (benchmarks/downstream_suite.py, its own section)")
    args = ap.parse_args()
    warnings.simplefilter("ignore", BayescaleWarning)
    global OUT
    OUT = Path(args.out)
    OUT.mkdir(parents=True, exist_ok=True)
    selected = [e for e in ENTRIES if not args.only or e.name in args.only]
    if args.render:
        meta = json.loads((OUT / "suite.json").read_text())
        done = [(e, json.loads((OUT / e.name / "summary.json").read_text())) for e in selected]
        md = render(done, meta["elapsed"], meta["seed"], meta["quick"], meta.get("reruns"))
    else:
        done = []
        t_all = time.perf_counter()
        for entry in selected:
            print(f"== {entry.name}", flush=True)
            t0 = time.perf_counter()
            s = run_entry(entry, args.seed, args.quick, args.discrepancy)
            done.append((entry, s))
            print(json.dumps({k: s[k] for k in ("coverage", "median_are", "crps")}), flush=True)
            if args.only:   # a partial re-run: said in the section, beside the whole run's time
                meta = json.loads((OUT / "suite.json").read_text()) if (OUT / "suite.json").exists() else {}
                meta.setdefault("reruns", {})[entry.name] = {
                    "seconds": time.perf_counter() - t0, "date": time.strftime("%Y-%m-%d")}
                (OUT / "suite.json").write_text(json.dumps(meta))
        elapsed = time.perf_counter() - t_all
        if not args.only:
            (OUT / "suite.json").write_text(json.dumps({"elapsed": elapsed, "seed": args.seed, "quick": args.quick}))
            md = render(done, elapsed, args.seed, args.quick)
        else:   # the section shows every entry: the others from their last run
            meta = json.loads((OUT / "suite.json").read_text())
            done = [(e, json.loads((OUT / e.name / "summary.json").read_text())) for e in ENTRIES]
            md = render(done, meta.get("elapsed", elapsed), meta.get("seed", args.seed), meta.get("quick", args.quick),
                        meta.get("reruns"))
    write_section("calibration-suite", md)
    print(md)
    if args.side_by_side:
        md2 = side_by_side(Path(args.side_by_side), OUT, ENTRIES)
        write_section("calibration-old-new", md2)
        print(md2)
    if args.downstream:
        try:
            import downstream_suite
        except ImportError:
            from benchmarks import downstream_suite
        t0 = time.perf_counter()
        downstream_suite.main(["--quick"] if args.quick else [])
        print(f"downstream entries: {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()

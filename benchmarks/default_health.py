"""Sampling health at the defaults: how often does an ordinary fit get flagged as unreliable?

Cases (everything at bayescale.fit's defaults, 4 chains x 1000 + 1000 continued up to 4000 draws, seed as listed):
* demo: the embedded synthetic demo (3 families), seeds 0, 1, 2;
* small table: 12 chinchilla runs (4 sizes x 3 token counts), seeds 0, 1, 2;
* chinchilla simulation: 160 runs simulated from Hoffmann et al.'s fit (1% noise, N in 5e7-2e9,
  5-80 tokens per parameter), seeds 0-19;
* one curve: power law fitted to 5, 8, 12, 16 and 20 points of one simulated curve, seeds 0, 1, 2;
* NMT curves: ``power:tokens`` fitted to the first 50 / 70 / 85 % of each of the 5 machine-translation
  learning curves of the learning-curve benchmark (10-11 points each; needs the datasets folder);
* Epoch with farseer, seed 0 (needs the datasets folder).
Each row: max r_hat, min bulk ESS, divergences, leapfrog steps per draw, whether bayescale's
warning fired, and seconds. Writes the section "Sampling health at the defaults" of RESULTS.md
with --results.

Run: python benchmarks/default_health.py [--discrepancy auto|none] [--results] [--quick]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
_DEFAULT_DATA = HERE.parent.parent / "shared" / "datasets"
if "BAYESCALE_DATA" not in os.environ and _DEFAULT_DATA.is_dir():
    os.environ["BAYESCALE_DATA"] = str(_DEFAULT_DATA)
sys.path.insert(0, str(HERE))

import bayescale  # noqa: E402
from bayescale import datasets  # noqa: E402
from bayescale.errors import UnreliableSampling  # noqa: E402
from bayescale.models import get_law  # noqa: E402
from bayescale.simulate import simulate  # noqa: E402

HOFFMANN = {"E": 1.69, "log_A0": -0.26, "alpha": 0.34, "log_B0": -0.43, "beta": 0.28, "sigma": 0.01, "nu": 30.0}
POWER = {"E": 1.8, "log_A0": -0.5, "alpha": 0.3, "sigma": 0.01, "nu": 30.0}


def small_table(seed):
    n, r = np.meshgrid(np.geomspace(3e7, 1e9, 4), [10.0, 20.0, 40.0], indexing="ij")
    design = pd.DataFrame({"params": n.ravel(), "tokens": (n * r).ravel()})
    return simulate(get_law("chinchilla"), design, HOFFMANN, seed=seed)[0]


def chinchilla_sim(seed):
    rng = np.random.default_rng(seed)
    n = np.exp(rng.uniform(np.log(5e7), np.log(2e9), 160))
    design = pd.DataFrame({"params": n, "tokens": n * np.exp(rng.uniform(np.log(5), np.log(80), 160))})
    return simulate(get_law("chinchilla"), design, HOFFMANN, seed=seed)[0]


def one_curve(k, seed):
    design = pd.DataFrame({"params": np.geomspace(1e7, 1e10, k)})
    return simulate(get_law("power"), design, POWER, seed=seed)[0]


def _nmt_table():
    """The NMT rows (tokens, loss, task = the curve's architecture), as the backtest reads them;
    None without the data folder."""
    from backtest import _lc_nmt

    from bayescale.errors import BayescaleError

    try:
        return _lc_nmt().sort_values(["task", "tokens"])
    except BayescaleError:
        return None


def nmt_curves():
    """(model, points fitted, points in the curve) for the first 50 / 70 / 85 % of each NMT curve."""
    table = _nmt_table()
    if table is None:
        print("NMT curves skipped: no learning_curves_nslpfn data under BAYESCALE_DATA")
        return []
    return [(model, int(np.floor(frac * len(g))), len(g)) for model, g in table.groupby("task")
            for frac in (0.5, 0.7, 0.85)]


def nmt_curve(model, k):
    g = _nmt_table().query("task == @model")
    return pd.DataFrame({"tokens": g["tokens"].to_numpy()[:k], "loss": g["loss"].to_numpy()[:k]})


def cases(quick: bool):
    out = [("demo", seed, datasets.demo_data, "chinchilla", None) for seed in (0, 1, 2)]
    out += [("small table (12 runs)", seed, lambda s=seed: small_table(s), "chinchilla", None) for seed in (0, 1, 2)]
    out += [("chinchilla simulation (160 runs)", seed, lambda s=seed: chinchilla_sim(s), "chinchilla", None)
            for seed in range(20)]
    out += [(f"one curve, {k} points", seed, lambda k=k, s=seed: one_curve(k, s), "power", None)
            for k in (5, 8, 12, 16, 20) for seed in (0, 1, 2)]
    for model, k, n in nmt_curves():
        out.append((f"NMT curve {model}, first {k} of {n}", 0, lambda m=model, k=k: nmt_curve(m, k), "power:tokens", None))
    if (Path(os.environ.get("BAYESCALE_DATA", "")) / "chinchilla_epoch").is_dir():
        out.append(("Epoch, farseer", 0, lambda: datasets.load("chinchilla_epoch")[["params", "tokens", "loss"]],
                    "farseer", None))
    return out[:4] if quick else out


def markdown(table: pd.DataFrame) -> str:
    def cell(col, v):
        if not isinstance(v, float):
            return str(v)
        return f"{v:.4f}" if col == "max r_hat" else f"{v:.3g}"   # 1.0112 must not read 1.01

    cells = [[cell(c, v) for c, v in zip(table.columns, row)] for row in table.itertuples(index=False)]
    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    return "\n".join(lines + ["| " + " | ".join(c) + " |" for c in cells])


def targets(table: pd.DataFrame) -> str:
    """The sampling-health targets, counted from the table: zero divergences and max r_hat <= 1.01
    in every seed of the 160-run simulation and every NMT curve fit; zero divergences on the demo."""
    def count(prefix, rhat=True):
        rows = table[table["case"].str.startswith(prefix)]
        ok = (rows["divergences"] == 0) & ((rows["max r_hat"] <= 1.01) if rhat else True)
        return f"{int(ok.sum())} of {len(rows)}"
    return ("Targets (zero divergences and max r_hat <= 1.01): 160-run simulation "
            f"{count('chinchilla simulation')} seeds; NMT curves {count('NMT curve')} fits; "
            f"demo (zero divergences) {count('demo', rhat=False)} seeds.")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--discrepancy", default="auto")
    ap.add_argument("--results", action="store_true")
    ap.add_argument("--quick", action="store_true", help="the first four cases only")
    args = ap.parse_args(argv)
    rows = []
    for name, seed, make, law, _ in cases(args.quick):
        df = make()
        t0 = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("ignore", bayescale.BayescaleWarning)
            warnings.simplefilter("always", UnreliableSampling)   # added last, so checked first
            f = bayescale.fit(df, law, seed=seed, progress=False, discrepancy=args.discrepancy, duplicates="keep")
        flagged = any(isinstance(w.message, UnreliableSampling) for w in caught)
        d = f.diagnostics
        rows.append({"case": name, "law": law, "seed": seed, "max r_hat": d["max_rhat"], "min ESS": d["min_ess_bulk"],
                     "divergences": int(d["divergences"]), "steps/draw": d["mean_steps_per_draw"],
                     "draws/chain": int(f.posterior.sizes["draw"]),
                     "warmup restarts": int(sum(f.config["stats"].get("warmup_restarts", []))),
                     "flagged": "yes" if flagged else "no", "seconds": time.perf_counter() - t0})
        print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    n_flag = int((table["flagged"] == "yes").sum())
    md = (f"## Sampling health at the defaults (`benchmarks/default_health.py --discrepancy {args.discrepancy}`)\n\n"
          f"Every fit at `bayescale.fit`'s defaults (4 chains x 1000 warmup + 1000 draws, continued 1000 at a "
          f"time up to 4000 when only more draws are missing: `bayescale.inference.more_draws_help`), discrepancy "
          f"`{args.discrepancy}`; 'flagged' = bayescale's unreliable-sampling warning fired (max r_hat > 1.01, "
          f"min bulk ESS < 400 or any divergence). {n_flag} of {len(table)} fits flagged. 'warmup restarts' = chains "
          f"that ended warmup stuck at the tree-depth cap and started again from a fresh point "
          f"({int(table['warmup restarts'].sum())} in all).\n\n"
          + targets(table) + "\n\n" + markdown(table) + "\n")
    print(md)
    if args.results:
        from results_file import write_section
        write_section(f"default-health-{args.discrepancy}", md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

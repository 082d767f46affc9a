"""A 200,000-row Chinchilla table fitted with default settings (4 chains x 1000 warmup + 1000 draws).

Run:  python benchmarks/large_table.py [--rows 200000] [--seed 0]
Prints max r_hat, divergences, leapfrog steps per draw, wall time and the precision / start the
sampler chose (see bayescale/samplers/precision.py and nuts.py). The table: N log-uniform in
[1e8, 1e10], D in [1e10, 1e12], Chinchilla law at fixed parameters, 1% Student-t noise on log loss.
"""
from __future__ import annotations

import argparse
import os
import platform
import time

import pandas as pd

import bayescale as bs
from bayescale.simulate import log_uniform_design, simulate

TRUTH = {"E": 1.7, "log_A0": -1.0, "alpha": 0.34, "log_B0": -1.2, "beta": 0.28, "sigma": 0.01, "nu": 30.0}


def chinchilla_table(n: int, seed: int = 0) -> pd.DataFrame:
    """``n`` runs, N in [1e8, 1e10] and D in [1e10, 1e12] log-uniform, 1% noise on log loss."""
    return simulate("chinchilla", log_uniform_design(n, seed), TRUTH, seed=seed + 1)[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    df = chinchilla_table(args.rows, args.seed)
    t0 = time.perf_counter()
    fit = bs.fit(df, "chinchilla", seed=args.seed, progress=False, discrepancy="none")   # the precision path
    wall = time.perf_counter() - t0
    d, stats = fit.diagnostics, fit.config["stats"]
    s = fit.summary()
    print(f"rows {len(df):,}; {os.cpu_count()} CPU cores, {platform.machine()}, "
          f"JAX {fit.config['versions']['jax']}, NumPyro {fit.config['versions']['numpyro']}")
    print(f"float64 {stats['float64']}, warm start {stats['warm_start']}, chain threads {stats['chain_threads']}")
    print(f"max r_hat {d['max_rhat']:.4f}, min bulk ESS {d['min_ess_bulk']:.0f}, divergences {d['divergences']}")
    print(f"leapfrog steps per draw {stats['mean_steps_per_draw']:.2f}")
    print(f"wall time {wall:.1f} s (sampling {stats['sampling_seconds']:.1f} s, the rest compiling and "
          "building the result)")
    for k in ("E", "alpha", "beta", "sigma"):
        print(f"  {k}: median {s.loc[k, '50%']:.5g}, 95% ({s.loc[k, '2.5%']:.5g}, {s.loc[k, '97.5%']:.5g}), "
              f"true {TRUTH[k]}")


if __name__ == "__main__":
    main()

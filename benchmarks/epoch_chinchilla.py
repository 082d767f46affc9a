"""Chinchilla law on Epoch AI's 240 Chinchilla points, beside Epoch's bootstrap table.

Run:  python benchmarks/epoch_chinchilla.py [--seed 0]
Writes the 'epoch-chinchilla' section of benchmarks/RESULTS.md. Needs the datasets folder
(BAYESCALE_DATA or ../shared/datasets).
"""
from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path


import bayescale as bs
from bayescale import datasets


# run from anywhere: the default data folder sits beside the repository
_DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
if "BAYESCALE_DATA" not in os.environ and _DEFAULT_DATA.is_dir():
    os.environ["BAYESCALE_DATA"] = str(_DEFAULT_DATA)

try:
    from results_file import write_section
except ImportError:  # run as a module
    from benchmarks.results_file import write_section

# Epoch AI, "Chinchilla Scaling: A replication attempt" (2024): estimate and 95% bootstrap CI.
EPOCH = {
    "A": (482.01, 285.2, 743.6), "B": (2085.43, 1042.4, 5810.3), "E": (1.8169, 1.769, 1.871),
    "alpha": (0.3478, 0.317, 0.373), "beta": (0.3658, 0.331, 0.415),
}
HOFFMANN = {"A": 406.4, "B": 410.7, "E": 1.69, "alpha": 0.34, "beta": 0.28}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    df = datasets.load("chinchilla_epoch", exclude_outliers=True)
    settings = dict(law="chinchilla", seed=args.seed, chains=4, warmup=1000, draws=1000, progress=False)

    bs.clear_caches()
    t0 = time.perf_counter()
    first = bs.fit(df, **settings)
    first_total = time.perf_counter() - t0
    t0 = time.perf_counter()
    fit = bs.fit(df, **{**settings, "seed": args.seed + 1})   # same shapes: compiled sampler reused
    second_total = time.perf_counter() - t0

    d = fit.diagnostics
    sampling = fit.config["stats"]["sampling_seconds"]
    compile_s = first_total - second_total
    ess = d["min_ess_bulk"]
    s = first.summary()
    rows = []
    for name in ("E", "alpha", "beta", "A", "B"):
        est, lo, hi = EPOCH[name]
        rows.append(f"| {name} | {s.loc[name, '50%']:.4g} | ({s.loc[name, '2.5%']:.4g}, {s.loc[name, '97.5%']:.4g}) "
                    f"| {est:.4g} | ({lo:.4g}, {hi:.4g}) | {HOFFMANN[name]:.4g} |")
    fd = first.diagnostics
    md = f"""## Chinchilla law on Epoch's Chinchilla data (`benchmarks/epoch_chinchilla.py`)

Data: `chinchilla_epoch`, {len(df)} points (245 less Epoch's 5 highest-loss points), D = C/(6N).
Law `chinchilla`, default priors, Student-t likelihood on log loss; 4 chains x 1000 warmup + 1000 draws,
chains in one thread per core (bayescale.samplers.nuts), dense mass matrix. Seed {args.seed}. Machine: {os.cpu_count()} CPU cores, {platform.machine()},
JAX {fit.config['versions']['jax']}, NumPyro {fit.config['versions']['numpyro']}; other jobs may share the cores.

| parameter | bayescale median | bayescale 95% interval | Epoch estimate | Epoch 95% bootstrap CI | Hoffmann et al. |
| --- | --- | --- | --- | --- | --- |
{chr(10).join(rows)}

| figure | value |
| --- | --- |
| first fit, wall time (compile + sampling) | {first_total:.1f} s |
| second fit, same shapes, wall time (sampling only, compiled sampler reused) | {second_total:.1f} s |
| compile time (difference) | {compile_s:.1f} s |
| sampling time (second fit) | {sampling:.1f} s |
| mean leapfrog steps per draw | {d['mean_steps_per_draw']:.1f} (first fit {fd['mean_steps_per_draw']:.1f}) |
| min bulk ESS | {ess:.0f} |
| bulk ESS per second of sampling (min over parameters) | {ess / sampling:.0f} |
| bulk ESS per second incl. compile (first fit) | {fd['min_ess_bulk'] / first_total:.0f} |
| max r_hat | {d['max_rhat']:.4f} (first fit {fd['max_rhat']:.4f}) |
| divergences | {d['divergences']} (first fit {fd['divergences']}) |
| Student-t degrees of freedom nu, median | {s.loc['nu', '50%']:.2f} |
| noise sd of log loss, median | {s.loc['sigma', '50%']:.4f} |
"""
    write_section("epoch-chinchilla", md)
    print(md)


if __name__ == "__main__":
    main()

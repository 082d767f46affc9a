"""Batched fits (bayescale.batch.fit_many) against sequential default NUTS fits, plus SBC of the
batched sampler.

Run:  python benchmarks/batch_perf.py [--batch 64] [--sequential 8] [--n-sims 100]
Writes the 'Batched fits' section of benchmarks/RESULTS.md (``--section``: another section, as
benchmarks/gpu.py does for its GPU run). Takes ~10-15 minutes on 2 cores.

Cases: chinchilla on a 16 x 15 (N, D) grid (240 runs, the size of the Chinchilla/Epoch table) and
the one-input power law on 240 sizes of N; 64 datasets each, simulated with law.simulate from fixed
parameters and different noise seeds. Sequential: ``bayescale.fit`` with its sampler's defaults (NUTS, 4
chains x 1000 warmup + 1000 draws) on the model fit_many samples (the law alone, ``discrepancy="none"``); after one untimed fit (compilation), ``--sequential`` fits are
timed and the rate is taken as the rate of 64. Batched: ``fit_many`` (HMC, 4 chains x 400 + 500, target
acceptance 0.9) with the trajectory length fixed at pi, and again with its default, the length
adapted per dataset during warmup (``trajectory="adapt"``), each run once untimed to compile, then
timed on the 64 datasets with other seeds. Both use every core: NUTS runs its chains in one thread per core, and the script makes one
JAX CPU device per core (XLA_FLAGS) so that fit_many shards its batch over them. ESS is the smallest bulk ESS over a fit's latent parameters.

SBC: ``bayescale.sbc.sbc(..., sampler="hmc")`` on the law's default design (1 chain x 150 + 200,
every 2nd draw, 10 bins), judged at family-wise 1 %; the control is the same sampler with
trajectories 40x too short and a
target acceptance of 0.999 (so tiny steps: a near random walk), which must fail. SBC runs with
the fixed length pi and with the adapted length.
"""
from __future__ import annotations

import argparse
import math
import os

# one JAX CPU device per core, so fit_many shards its batch over both cores (sequential NUTS fits
# already run their chains in one thread per core); must be set before JAX starts
os.environ.setdefault("XLA_FLAGS", f"--xla_force_host_platform_device_count={os.cpu_count() or 1}")
import platform
import sys
import time
import warnings

import jax
import numpy as np
import pandas as pd

from bayescale import fit
from bayescale.batch import fit_many
from bayescale.sbc import sbc
from bayescale.models import get_law
from bayescale.simulate import simulate

try:
    from results_file import write_section
except ImportError:  # run as a module
    from benchmarks.results_file import write_section

CASES = {
    "chinchilla": {"E": 1.7, "log_A0": -1.0, "alpha": 0.34, "log_B0": -1.2, "beta": 0.28,
                   "sigma": 0.02, "nu": 10.0},
    "power": {"E": 1.8, "log_A0": -0.8, "alpha": 0.32, "sigma": 0.02, "nu": 10.0},
}


def design(law: str) -> pd.DataFrame:
    if law == "power":
        return pd.DataFrame({"params": np.geomspace(1e7, 1e10, 240)})
    n, d = np.meshgrid(np.geomspace(1e7, 1e10, 16), np.geomspace(1e9, 1e12, 15), indexing="ij")
    return pd.DataFrame({"params": n.ravel(), "tokens": d.ravel()})


def tables(law: str, count: int, seed: int) -> list[pd.DataFrame]:
    model = get_law(law)
    return [simulate(model, design(law), CASES[law], seed=seed + i)[0] for i in range(count)]


def quality(fits) -> dict:
    d = [f.diagnostics for f in fits]
    ess = np.array([x["min_ess_bulk"] for x in d])
    rhat = np.array([x["max_rhat"] for x in d])
    return {"ess_median": float(np.median(ess)), "ess_min": float(ess.min()),
            "rhat_median": float(np.median(rhat)), "rhat_max": float(rhat.max()),
            "divergent_fits": int(sum(x["divergences"] > 0 for x in d))}


def run_case(law: str, batch: int, sequential: int) -> dict:
    data = tables(law, batch, seed=0)
    t0 = time.perf_counter()
    # the model fit_many samples: the law alone, and a fixed 1000 draws (no continuation)
    same = dict(progress=False, discrepancy="none", draws=1000)
    fit(data[0], law, seed=0, **same)
    nuts_first = time.perf_counter() - t0
    t0 = time.perf_counter()
    nuts = [fit(df, law, seed=i, **same) for i, df in enumerate(data[:sequential])]
    nuts_each = (time.perf_counter() - t0) / sequential
    t0 = time.perf_counter()
    fit_many(data, law, seed=10_000, trajectory=math.pi)
    hmc_first = time.perf_counter() - t0
    t0 = time.perf_counter()
    hmc = fit_many(data, law, seed=0, trajectory=math.pi)
    hmc_total = time.perf_counter() - t0
    t0 = time.perf_counter()
    fit_many(data, law, seed=10_000, trajectory="adapt")
    adapt_first = time.perf_counter() - t0
    t0 = time.perf_counter()
    adapted = fit_many(data, law, seed=0, trajectory="adapt")
    adapt_total = time.perf_counter() - t0
    true_alpha = CASES[law]["alpha"]
    covered = np.mean([float(f.idata.posterior["alpha"].quantile(0.05)) < true_alpha
                       < float(f.idata.posterior["alpha"].quantile(0.95)) for f in hmc])
    return {"law": law, "batch": batch, "sequential": sequential, "nuts_first_s": nuts_first,
            "nuts_each_s": nuts_each, "hmc_first_s": hmc_first, "hmc_total_s": hmc_total,
            "nuts": quality(nuts), "hmc": quality(hmc), "alpha_90_coverage": float(covered),
            "hmc_steps": float(np.mean([f.config["stats"]["mean_steps_per_draw"] for f in hmc])),
            "nuts_steps": float(np.mean([f.config["stats"]["mean_steps_per_draw"] for f in nuts])),
            "adapt_first_s": adapt_first, "adapt_total_s": adapt_total, "adapt": quality(adapted),
            "adapt_steps": float(np.mean([f.config["stats"]["mean_steps_per_draw"] for f in adapted])),
            "adapt_lengths": [f.config["stats"]["trajectory"] for f in adapted]}


def run_sbc(law: str, n_sims: int) -> tuple:
    kw = dict(n_sims=n_sims, seed=0, chains=1, warmup=150, draws=200, thin=2, bins=10, sampler="hmc")
    t0 = time.perf_counter()
    correct = sbc(law, **kw, batch_options={"trajectory": math.pi})
    seconds = time.perf_counter() - t0
    control = sbc(law, **kw, target_accept=0.999, batch_options={"trajectory": 0.04})
    adapted = sbc(law, **kw, batch_options={"trajectory": "adapt"})
    return correct, control, seconds, adapted


def markdown(cases: list[dict], sbcs: list[tuple], args) -> str:
    lines = [
        f"## {args.section}",
        "",
        f"`benchmarks/batch_perf.py --batch {args.batch} --sequential {args.sequential} --n-sims "
        f"{args.n_sims}`, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
        f"{platform.processor() or platform.machine()}, {jax.device_count()} JAX "
        f"{jax.devices()[0].platform.upper()} device(s) ({getattr(jax.devices()[0], 'device_kind', '')}), "
        f"jax {jax.__version__}. The machine's {os.cpu_count()} cores were shared with other jobs (1-minute load "
        f"average {os.getloadavg()[0]:.1f} at the end), so absolute times are inflated; both samplers "
        "ran under similar load.",
        "",
        "Sequential: `bayescale.fit` defaults (NUTS, 4 chains x 1000 + 1000, chains in one thread "
        "per core), "
        f"{args.sequential} timed fits after one compile fit, scaled to {args.batch}. Batched: "
        "`fit_many` with the trajectory length fixed at pi (HMC with Laplace warm start, 4 chains x 400 + "
        "500, target acceptance 0.9, the batch sharded over the JAX devices: one CPU device per core on a "
        "CPU), one compile run, then one timed run. Data: 240 rows per dataset, simulated from fixed parameters.",
        "",
        "| law | NUTS s/fit | batched s/fit | speed-up (fits/s) | NUTS first fit s (compile + 1 fit) "
        "| batched first run s (compile + batch) "
        "| ESS/fit NUTS (median, min) | ESS/fit batched (median, min) | max r_hat NUTS / batched "
        "| divergent fits NUTS / batched | 90 % coverage of alpha (batched) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in cases:
        n, h = c["nuts"], c["hmc"]
        per = c["hmc_total_s"] / c["batch"]
        lines.append(
            f"| {c['law']} | {c['nuts_each_s']:.2f} | {per:.3f} | **{c['nuts_each_s'] / per:.1f}x** | "
            f"{c['nuts_first_s']:.0f} | {c['hmc_first_s']:.0f} | {n['ess_median']:.0f}, {n['ess_min']:.0f} | "
            f"{h['ess_median']:.0f}, {h['ess_min']:.0f} | {n['rhat_max']:.3f} / {h['rhat_max']:.3f} | "
            f"{n['divergent_fits']}/{c['sequential']} / {h['divergent_fits']}/{c['batch']} | "
            f"{c['alpha_90_coverage']:.2f} |")
    lines += ["", "Mean leapfrog steps per draw: " + ", ".join(
        f"{c['law']}: NUTS {c['nuts_steps']:.1f}, batched {c['hmc_steps']:.1f}" for c in cases), ""]
    lines += ["The same batch with `fit_many`'s default, the trajectory length adapted per dataset during "
              "warmup (`trajectory=\"adapt\"`: the expected squared jump distance, within a factor 2 of pi), "
              "compiled and timed the same way in the same run:", "",
              "| law | batched, adapted s/fit | speed-up vs NUTS | ESS/fit (median, min) | median ESS vs NUTS "
              "| max r_hat | divergent fits | steps/draw | adapted length (median, range) |",
              "|---|---|---|---|---|---|---|---|---|"]
    for c in cases:
        a, n = c["adapt"], c["nuts"]
        per = c["adapt_total_s"] / c["batch"]
        lengths = np.asarray(c["adapt_lengths"])
        lines.append(f"| {c['law']} | {per:.3f} | **{c['nuts_each_s'] / per:.1f}x** | {a['ess_median']:.0f}, "
                     f"{a['ess_min']:.0f} | {a['ess_median'] / n['ess_median']:.0%} | {a['rhat_max']:.3f} | "
                     f"{a['divergent_fits']}/{c['batch']} | {c['adapt_steps']:.1f} | {np.median(lengths):.2f} "
                     f"({lengths.min():.2f}-{lengths.max():.2f}) |")
    lines.append("")
    lines += ["SBC of the batched sampler (`sbc(..., sampler=\"hmc\")`, default design, 1 chain x 150 + "
              "200, thin 2, 10 bins; pass = every p > 0.01 / number of parameters):", "",
              "| law | sims | min p (fixed length pi) | passes | min p (adapted length, the default) | passes "
              "| min p (control: T 0.04, accept 0.999) | control passes "
              "| divergent fits | seconds (correct run, incl. compile) |", "|---|---|---|---|---|---|---|---|---|---|"]
    for law, (correct, control, seconds, adapted) in sbcs:
        lines.append(f"| {law} | {correct.n_ok}/{correct.n_sims} | {correct.min_pvalue:.3g} | "
                     f"{correct.passes(0.01)} | {adapted.min_pvalue:.3g} | {adapted.passes(0.01)} | "
                     f"{control.min_pvalue:.2g} | {control.passes(0.01)} | "
                     f"{correct.n_divergent_fits} | {seconds:.0f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--sequential", type=int, default=8)
    p.add_argument("--n-sims", type=int, default=100)
    p.add_argument("--laws", default="chinchilla,power")
    p.add_argument("--section", default="Batched fits", help="the RESULTS.md section written (benchmarks/gpu.py "
                   "gives its own)")
    args = p.parse_args(argv)
    warnings.simplefilter("ignore")
    laws = args.laws.split(",")
    cases, sbcs = [], []
    for law in laws:
        cases.append(run_case(law, args.batch, args.sequential))
        print(cases[-1], flush=True)
    for law in laws:
        sbcs.append((law, run_sbc(law, args.n_sims)))
        print(law, sbcs[-1][0], sbcs[-1][1], flush=True)
    text = markdown(cases, sbcs, args)
    write_section(args.section, text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The law coordinates (bayescale.models.coordinates) against the natural ones, on the same model.

Cases (4 chains x 1000 warmup + 1000 draws, the same seed for both coordinates):
* 160-run Chinchilla simulations (as in default_health.py), seeds 0-3: the law alone at
  target_accept 0.8, and with the discrepancy walk (the shipped prior) at 0.95;
* the law alone (``power:tokens``) on the first 50 / 70 / 85 % of the 5 NMT learning curves
  (needs the datasets folder).
Each row: max r_hat (law, noise and walk-scale parameters), min bulk ESS, divergences, leapfrog
steps per draw, seconds. Writes the section "Law coordinates" of RESULTS.md with --results.

Run: python benchmarks/law_coordinates.py [--results]
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time
import warnings
from pathlib import Path

import arviz as az
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from default_health import chinchilla_sim, markdown, nmt_curve, nmt_curves  # noqa: E402

from bayescale.inference import build, sample_posterior  # noqa: E402


def run(df, law, discrepancy, target_accept, seed, law_coordinates):
    spec, data = build(df, law, discrepancy=discrepancy, duplicates="keep")
    spec = dataclasses.replace(spec, law_coordinates=law_coordinates and spec.law_coordinates)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idata, stats = sample_posterior(spec, data, seed=seed, progress=False, target_accept=target_accept)
    names = [k for k in list(spec.law.all_params()) + ["disc_scale"] if k in idata.posterior]
    post = idata.posterior[names]
    return {"max r_hat": float(az.rhat(post).to_array().max()),
            "min ESS": float(az.ess(post, method="bulk").to_array().min()),
            "divergences": int(idata.sample_stats["diverging"].sum()),
            "steps/draw": stats["mean_steps_per_draw"], "seconds": time.perf_counter() - t0}


def cases():
    for seed in range(4):
        yield "160-run simulation, law alone", seed, lambda s=seed: chinchilla_sim(s), "chinchilla", "none", 0.8
    for seed in range(4):
        yield "160-run simulation, with walk", seed, lambda s=seed: chinchilla_sim(s), "chinchilla", "auto", 0.95
    for model, k, n in nmt_curves():
        yield (f"NMT {model}, first {k} of {n}, law alone", 0, lambda m=model, k=k: nmt_curve(m, k),
               "power:tokens", "none", 0.8)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", action="store_true")
    args = ap.parse_args(argv)
    rows = []
    for name, seed, make, law, disc, ta in cases():
        df = make()
        for coords in ("natural", "law"):
            row = {"case": name, "seed": seed, "target_accept": ta, "coordinates": coords,
                   **run(df, law, disc, ta, seed, coords == "law")}
            rows.append(row)
            print(row, flush=True)
    table = pd.DataFrame(rows)
    summary = table.groupby([table["case"].str.replace(r"NMT .*", "NMT curves, law alone", regex=True),
                             "coordinates"]).agg(fits=("seed", "size"), worst_r_hat=("max r_hat", "max"),
                                                 divergences=("divergences", "sum"),
                                                 fits_with_divergences=("divergences", lambda d: int((d > 0).sum())),
                                                 steps_per_draw=("steps/draw", "median")).reset_index()
    md = ("## Law coordinates against natural coordinates (`benchmarks/law_coordinates.py`)\n\n"
          "The same model sampled in the natural parameters (E, log_A0, alpha, ...) and in the law coordinates "
          "(log level and log slopes at the reference, the floor's and terms' shares; "
          "`bayescale/models/coordinates.py`), 4 chains x 1000 + 1000, the same seeds. Summary (median steps per "
          "draw; divergences summed over the fits):\n\n" + markdown(summary.rename(columns={"case": "cases", "worst_r_hat": "max r_hat"}))
          + "\n\nEvery fit:\n\n" + markdown(table) + "\n")
    print(md)
    if args.results:
        from results_file import write_section
        write_section("law-coordinates", md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

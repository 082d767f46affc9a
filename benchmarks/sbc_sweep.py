"""Simulation-based calibration (SBC) of every registered law, plus a misspecified control.

Run:  python benchmarks/sbc_sweep.py [--n-sims 200] [--seed 2] [--laws power,chinchilla]
Writes the 'sbc-sweep' section of benchmarks/RESULTS.md (rewritten after every law, so a partial
run still leaves its finished rows). Takes ~10 minutes on 2 cores.

For each law option, ``bayescale.sbc.sbc`` draws parameters and data from the prior on the
law's default design (``bayescale.sbc.default_design``), refits with NUTS and ranks each true value
among the kept posterior draws; ranks must be uniform. The check is a chi-square test per
parameter, judged at family-wise level 1 % (Bonferroni: every p > 0.01 / number of parameters).
The control fits chinchilla with the noise scale fixed at sigma = 0.002 (the simulations draw it
from its HalfNormal(0.1) prior), so its posteriors are far too narrow: it must FAIL the same check.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import jax
import numpyro

# run from anywhere: the default data folder sits beside the repository (not needed by SBC itself,
# set for consistency with the other benchmark scripts)
_DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
if "BAYESCALE_DATA" not in os.environ and _DEFAULT_DATA.is_dir():
    os.environ["BAYESCALE_DATA"] = str(_DEFAULT_DATA)

from bayescale.sbc import sbc  # noqa: E402
from bayescale.models import get_law  # noqa: E402

try:
    from results_file import write_section
except ImportError:  # run as a module
    from benchmarks.results_file import write_section

LAWS = ("power", "power:tokens", "power:compute", "kaplan-n", "kaplan-d", "kaplan-c", "kaplan-nd", "chinchilla")
LEVEL = 0.01
SETTINGS = {"chains": 1, "warmup": 200, "draws": 200, "thin": 2, "bins": 20}
CONTROL = {"name": "chinchilla, sigma fixed at 0.002 (control)", "law": "chinchilla",
           "fit_priors": {"sigma": "Delta(0.002)"}}


def run_one(label: str, law: str, n_sims: int, seed: int, bins: int, fit_priors=None, expect_pass=True) -> dict:
    t0 = time.perf_counter()
    result = sbc(law, n_sims=n_sims, seed=seed, fit_priors=fit_priors,
                 **{**SETTINGS, "bins": bins})
    seconds = time.perf_counter() - t0
    name, p_min = min(result.pvalues.items(), key=lambda kv: kv[1])
    threshold = LEVEL / len(result.pvalues)
    passed = result.passes(LEVEL)
    row = {
        "label": label, "n_sims": result.n_sims, "n_failed": result.n_failed,
        "divergent_fits": result.n_divergent_fits, "n_params": len(result.pvalues),
        "min_p": p_min, "min_p_param": name, "threshold": threshold, "passed": passed,
        "expect_pass": expect_pass, "seconds": seconds, "bins": result.bins, "L": result.n_draws,
        "median_fit_s": float(sorted(result.fit_seconds)[len(result.fit_seconds) // 2]) if len(result.fit_seconds) else float("nan"),
        "pvalues": dict(result.pvalues), "failures": result.failures[:3],
    }
    print(f"{label}: {result!r} ({seconds:.0f} s)", flush=True)
    return row


def markdown(rows: list[dict], args, complete: bool) -> str:
    lines = [
        "| law | sims | failed | fits with divergences | parameters | min p-value (parameter) | Bonferroni threshold | result | runtime |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        verdict = "pass" if r["passed"] else "FAIL"
        if not r["expect_pass"]:
            verdict += " (expected: fail)" if not r["passed"] else " (expected fail: check cannot fail!)"
        lines.append(f"| {r['label']} | {r['n_sims']} | {r['n_failed']} | {r['divergent_fits']} | {r['n_params']} "
                     f"| {r['min_p']:.3g} ({r['min_p_param']}) | {r['threshold']:.2g} | {verdict} "
                     f"| {r['seconds']:.0f} s (median fit {r['median_fit_s']:.2f} s) |")
    details = []
    for r in rows:
        ps = ", ".join(f"{k} {v:.2g}" for k, v in r["pvalues"].items())
        details.append(f"- {r['label']} (L = {r['L']}, {r['bins']} bins): {ps}")
        for i, reason in r["failures"]:
            details.append(f"  - simulation {i} failed: {reason}")
    seen = {}
    for r in rows:   # equal p-values: the same computation under another name (see the note)
        key = tuple(sorted(r["pvalues"].items()))
        if key in seen:
            details.append(f"- {r['label']} repeats {seen[key]} exactly: the same priors on the same centred "
                           "design (10 log-spaced sizes over three decades, centred at their geometric mean), "
                           "so with the same seed it is the same computation.")
        seen.setdefault(key, r["label"])
    status = "" if complete else "\n**Partial run: the sweep was still running when this was written.**\n"
    s = SETTINGS
    return f"""## Simulation-based calibration of every law (`benchmarks/sbc_sweep.py`)
{status}
Talts et al. (2018) SBC: parameters and data drawn from each law's prior on its default design
(`bayescale.sbc.default_design`: 10 log-spaced sizes for one-input laws, a 5 x 4 (N, D) grid
for two-input laws), refitted with NUTS ({s['chains']} chain x {s['warmup']} warmup + {s['draws']} draws, thinned by
{s['thin']}: ranks in 0..{s['draws'] // s['thin']}), {args.n_sims} simulations per law, seed {args.seed}. Uniformity: chi-square test per parameter
over {s['bins']} bins; a law passes when every p-value exceeds {LEVEL} / (number of parameters). The control fits
chinchilla with the noise scale fixed at sigma = 0.002 while the simulations draw it from the prior
(HalfNormal(0.1)), so its posteriors are far too narrow; it must fail the same check, with the same
budget. Runtime is wall time including
compilation; machine: {os.cpu_count()} CPU cores, {platform.machine()}, JAX {jax.__version__},
NumPyro {numpyro.__version__}; other jobs may share the cores.

{chr(10).join(lines)}

p-value per parameter:

{chr(10).join(details)}
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-sims", type=int, default=200)
    ap.add_argument("--seed", type=int, default=2)
    ap.add_argument("--laws", default=",".join(LAWS), help="comma list of law options")
    ap.add_argument("--no-control", action="store_true")
    args = ap.parse_args()
    laws = [law.strip() for law in args.laws.split(",") if law.strip()]
    for law in laws:
        get_law(law)  # fail fast on a bad name

    rows: list[dict] = []
    for law in laws:
        rows.append(run_one(law, law, args.n_sims, args.seed, SETTINGS["bins"]))
        write_section("sbc-sweep", markdown(rows, args, complete=False))
    if not args.no_control:
        rows.append(run_one(CONTROL["name"], CONTROL["law"], args.n_sims, args.seed, SETTINGS["bins"],
                            fit_priors=CONTROL["fit_priors"], expect_pass=False))
    md = markdown(rows, args, complete=True)
    write_section("sbc-sweep", md)
    print(md)
    ok = all(r["passed"] == r["expect_pass"] for r in rows)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()

"""Which metric and target acceptance sample bayescale's default model (the law plus the
discrepancy walk) best: bulk ESS per 1,000 leapfrog steps, a figure the machine's load does not
change.

Cases: 160-run Chinchilla simulations (as in default_health.py, seeds 0-4), and the backtest's
tables for Epoch, Gadre, Gemstones, Step Law and the LM learning curves (each at its law and
pooling there; all of them need the datasets folder). Settings: ``dense,0.99`` (the default for
a model with the walk), ``diag,0.9``, ``diag,0.95`` (``--settings`` to choose). One fit per case and
setting, 4 chains x 1000 warmup + 1000 draws, seed 0; ``grad`` is a diagonal metric scaled by the
gradients' variances (``sample_posterior(..., dense_mass=False, gradient_metric=True)``), ``dgrad``
its dense form, the geometric mean of the draws' covariance and the inverse of the gradients'
(``dense_mass=True, gradient_metric=True``). ESS and r_hat are over the scalar and
per-group parameters the fit reports, not the walk's increments. Prints one row per fit; the
figures quoted in RESULTS.md ("Performance: where the first fit's time goes", the metric probes)
came from these cases and settings.

Run: python benchmarks/metric_probe.py [--cases sim0,epoch,...] [--settings dense,0.99 diag,0.95]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
_DEFAULT_DATA = HERE.parent.parent / "shared" / "datasets"
if "BAYESCALE_DATA" not in os.environ and _DEFAULT_DATA.is_dir():
    os.environ["BAYESCALE_DATA"] = str(_DEFAULT_DATA)
sys.path.insert(0, str(HERE))

import arviz as az  # noqa: E402

from default_health import chinchilla_sim  # noqa: E402

from bayescale.inference import build, sample_posterior  # noqa: E402
from bayescale.models import get_law  # noqa: E402

STUDIES = ("epoch", "gadre", "gemstones", "step_law", "lc_lm")
# grad: diagonal, scaled by the gradients' variances; dgrad: dense, the geometric mean of the draws'
# covariance and the inverse of the gradients' covariance
METRICS = ("dense", "diag", "grad", "dgrad")
CASES = tuple(f"sim{s}" for s in range(5)) + STUDIES


def table(case: str):
    """(table, law, pool) of a case; None when its data folder is absent."""
    if case.startswith("sim"):
        return chinchilla_sim(int(case[3:])), "chinchilla", None
    import backtest

    study = {s.name: s for s in backtest.STUDIES}[case]
    df = backtest.load_study(study)
    return None if df is None else (df, study.law, study.pool)


def probe(case: str, metric: str, target_accept: float, seed: int = 0) -> dict:
    found = table(case)
    if found is None:
        return {"case": case, "skipped": "datasets folder absent"}
    df, law, pool = found
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # bayescale.fit's model at its defaults (the walk included), with the metric and target given
        spec, data = build(df, get_law(law), pool=pool, discrepancy="auto")
        idata, stats = sample_posterior(spec, data, seed=seed, chains=4, warmup=1000, draws=1000,
                                        target_accept=target_accept, dense_mass=metric in ("dense", "dgrad"),
                                        gradient_metric=metric in ("grad", "dgrad"))
    post = idata.posterior
    names = [v for v in post.data_vars if not v.startswith("disc_z") and post[v].size <= post.sizes["chain"]
             * post.sizes["draw"] * 16]
    ess = az.ess(post[names], method="bulk")
    min_ess = min(float(ess[k].min()) for k in names)
    steps = float(stats["mean_steps_per_draw"])
    draws = post.sizes["chain"] * (post.sizes["draw"] + 1000)   # every transition, warmup included
    return {"case": case, "metric": metric, "target_accept": target_accept,
            "steps_per_draw": steps, "divergences": int(idata.sample_stats["diverging"].sum()), "min_ess": min_ess,
            "ess_per_1000_steps": 1000 * min_ess / (draws * steps),
            "max_rhat": float(az.rhat(post[names]).to_array().max()), "seconds": time.perf_counter() - t0}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, from {', '.join(CASES)}")
    ap.add_argument("--settings", nargs="+", default=["dense,0.99", "diag,0.9", "diag,0.95"],
                    help=f"metric,target_accept pairs; metric is one of {', '.join(METRICS)}")
    args = ap.parse_args(argv)
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        ap.error(f"unknown case(s) {unknown}; choose from {list(CASES)}")
    settings = []
    for text in args.settings:
        metric, _, accept = text.partition(",")
        if metric not in METRICS or not accept:
            ap.error(f"a setting is metric,target_accept with metric one of {METRICS}, got {text!r}")
        settings.append((metric, float(accept)))
    for case in cases:
        for metric, accept in settings:
            row = probe(case, metric, accept)
            if "skipped" in row:
                print(f"{case}: skipped ({row['skipped']})", flush=True)
                break
            print(f"{row['case']:10s} {row['metric']:8s} {accept:.2f}  steps/draw {row['steps_per_draw']:7.1f}  "
                  f"divergences {row['divergences']:3d}  min ESS {row['min_ess']:6.0f}  "
                  f"ESS per 1000 steps {row['ess_per_1000_steps']:5.2f}  max r_hat {row['max_rhat']:.3f}  "
                  f"{row['seconds']:5.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

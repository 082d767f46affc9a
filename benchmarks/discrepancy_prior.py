"""Learn the prior of the model-discrepancy walk's scale across the public studies, honestly.

The walk's scale s (``bayescale.discrepancy``) sets how fast intervals widen beyond the fitted
runs. Inside one study the data say little about it, so its prior is learned across studies: the
meta level of "priors shared across families, tasks and data distributions".

Input: the rolling-origin backtest's cache (``python benchmarks/backtest.py``), which holds, per
study and origin, posterior draws of s under a wide prior and, paired draw by draw, a new run's
predictive draws at every held-out run. Changing s's prior to LogNormal(mu, tau) reweights those
draws by p_new(s) / p_wide(s) (importance sampling; only s's prior changes, so the weights are
exact), which scores any candidate prior without refitting.

Objective: the mean relative CRPS (CRPS / |truth|) of held-out runs, averaged within a study and
then over studies (each study counts once), minimised over a grid of (mu, tau), separately for
each link (log for losses, logit for rates: the walk's units differ). Candidates whose importance
weights have an effective sample size below ``MIN_ESS`` in some study-origin are not eligible.

* The shipped default (``bayescale/discrepancy_prior.json``) is learned from all studies of a link.
* For scoring, each study gets the prior learned from the *other* studies only (leave one study
  out), written to ``benchmarks/out/backtest/loso_priors.json`` for
  ``python benchmarks/backtest.py --rescore --prior-file benchmarks/out/backtest/loso_priors.json``.
No held-out run of a study is ever used to set the prior it is scored with.

Run: ``python benchmarks/discrepancy_prior.py [--cache DIR] [--no-ship]``.
"""
from __future__ import annotations

import argparse
import datetime
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import backtest  # noqa: E402

GRID_MU = np.round(np.linspace(np.log(1e-4), np.log(0.3), 33), 4)
GRID_TAU = (0.25, 0.5, 1.0)
MIN_ESS = 30.0
SHIPPED = HERE.parent / "bayescale" / "discrepancy_prior.json"
LOSO = backtest.OUT / "loso_priors.json"


def candidates() -> list[str]:
    return [f"LogNormal({mu:.4f}, {tau})" for mu in GRID_MU for tau in GRID_TAU]


def study_losses(caches: dict[str, list[dict]]) -> dict[str, dict[str, float]]:
    """{study: {prior: mean relative CRPS over its held-out runs, or inf when not eligible}}."""
    out = {}
    for study, items in caches.items():
        out[study] = {}
        for prior in candidates():
            values, ok = [], True
            for c in items:
                pts, ess = backtest.reweighted_scores(c, prior)
                if ess < MIN_ESS:
                    ok = False
                    break
                values.append(pts["rel_crps"])
            out[study][prior] = float(np.nanmean(np.concatenate(values))) if ok else np.inf
    return out


def best(losses: dict[str, dict[str, float]], studies: list[str]) -> tuple[str, float]:
    """The candidate with the lowest mean (over ``studies``) of the per-study losses."""
    scores = {p: float(np.mean([losses[s][p] for s in studies])) for p in candidates()}
    prior = min(scores, key=scores.get)
    return prior, scores[prior]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cache", default=str(backtest.CACHE))
    ap.add_argument("--no-ship", action="store_true", help="do not rewrite the shipped prior file")
    args = ap.parse_args(argv)
    caches: dict[str, list[dict]] = defaultdict(list)
    links: dict[str, str] = {}
    for path in sorted(Path(args.cache).glob("*.npz")):
        c = backtest.load_cache(path)
        if "disc_draws" not in c or "disc_scale" not in c:
            continue
        study = c["meta"]["study"]
        caches[study].append(c)
        links[study] = c["meta"]["link"]
    if not caches:
        print(f"no backtest cache in {args.cache}: run benchmarks/backtest.py first", file=sys.stderr)
        return 2
    losses = study_losses(caches)
    by_link = defaultdict(list)
    for study, link in links.items():
        by_link[link].append(study)
    shipped, loso = {}, {}
    for link, studies in sorted(by_link.items()):
        shipped[link], score = best(losses, studies)
        print(f"{link}: {len(studies)} studies {studies} -> {shipped[link]} (mean rel. CRPS {score:.4g})")
        for study in studies:
            others = [s for s in studies if s != study] or [s for s in links if s != study]
            loso[study], _ = best(losses, others)
            print(f"  leave out {study}: {loso[study]}")
    LOSO.parent.mkdir(parents=True, exist_ok=True)
    LOSO.write_text(json.dumps(loso, indent=1) + "\n")
    if not args.no_ship:
        SHIPPED.write_text(json.dumps({
            "priors": shipped,
            "provenance": {
                "what": "prior of the model-discrepancy walk's scale s (bayescale.discrepancy), per link",
                "learned_from": {link: sorted(studies) for link, studies in by_link.items()},
                "objective": "mean over studies of the mean relative CRPS of a new run's prediction at the "
                             "backtest's held-out runs (origins 50/70/85% along each study's axis), by "
                             "importance reweighting of fits under " + backtest.WIDE,
                "grid": {"mu": [float(GRID_MU[0]), float(GRID_MU[-1]), len(GRID_MU)], "tau": list(GRID_TAU)},
                "min_ess": MIN_ESS,
                "rebuild": "python benchmarks/backtest.py && python benchmarks/discrepancy_prior.py",
                "date": datetime.date.today().isoformat(),
            }}, indent=1) + "\n")
        print(f"wrote {SHIPPED}")
    print(f"wrote {LOSO}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Law uncertainty far from the data: does mixing two laws hold where one law bends away?

On the rolling-origin backtest's NMT learning curves the power law's 90 % intervals cover 0.64:
every curve flattens sooner than a power law fitted to its first points. This study asks whether a
mixture of the study's law with a law that can bend (or, on loss ladders, with Farseer's form)
fixes that without harming the studies where the law already held, and which weights to mix with.

For each study and origin of ``backtest.py`` (same studies, splits, pooling and priors), both laws
are fitted with the discrepancy walk, its scale's prior given per study (the leave-one-study-out
prior of the backtest, ``--prior-file``), target acceptance 0.95, seed 0, 4 x 1000 + 1000. A new
run's value at every held-out run is predicted by each law alone and by mixtures whose weights are
set on the training runs only:

* ``loo-stacking``: PSIS-LOO stacking (what ``bayescale.fit(law=[a, b])`` uses);
* ``pseudo-bma+``: pseudo-BMA+ weights (Bayesian-bootstrap PSIS-LOO, ArviZ ``BB-pseudo-BMA``);
* ``future-stacking``: leave-future-out stacking: each law is refitted to the training runs below
  the largest 30 % of the training axis values (``backtest.calibration_split``), predicts those
  (a new run's value), and the weights maximise the mixture's log score there, so they reward
  extrapolation rather than interpolation;
* ``equal``: 1/2 each, a reference with no data-based preference.

Run: ``python benchmarks/law_ensemble.py --prior-file PRIORS.json [--studies a,b] [--results]``
(PRIORS.json: {"<study>": "LogNormal(mu, tau)", ...}). Each study-origin is cached as JSON in
``benchmarks/out/law_ensemble/`` and skipped when present; ``--results`` writes the section of
RESULTS.md from whatever is cached. Nothing here uses a held-out run to fit or weigh.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from scipy.optimize import minimize
from scipy.special import logsumexp, softmax

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import backtest as bt  # noqa: E402  (sets BAYESCALE_DATA as the backtest does)

import arviz as az  # noqa: E402
import bayescale  # noqa: E402
from bayescale import scores as bscores  # noqa: E402
from bayescale.errors import BayescaleWarning  # noqa: E402
from bayescale.models import get_law  # noqa: E402
from bayescale.stacking import StackedFit, stacking_weights  # noqa: E402
from results_file import write_section  # noqa: E402

# the study's law and the alternative it is mixed with: a law that can bend for the learning curves,
# Farseer's form for the loss ladders
# (Step Law is left out: at its first origin 8 training runs leave 6 below the future split, fewer
# than Farseer's parameters)
ALTERNATIVE = {"lc_nmt": "bnsl:tokens", "lc_ic": "bnsl:tokens", "lc_bb": "bnsl:tokens", "lc_lm": "farseer",
               "epoch": "farseer"}
SCHEMES = ("loo-stacking", "pseudo-bma+", "future-stacking", "equal")
OUT = HERE / "out" / "law_ensemble"
BUDGET = dict(chains=4, warmup=1000, draws=1000)


def fit_law(study, rows, law: str, prior: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BayescaleWarning)
        return bayescale.fit(rows[list(study.fit_cols)], law, pool=study.pool, priors=study.priors, seed=bt.SEED,
                             progress=False, duplicates="keep", discrepancy=prior, target_accept=0.95, **BUDGET)


def mixture_weights(log_density: np.ndarray) -> np.ndarray:
    """Weights w on the simplex maximising sum_i log sum_k w_k p_k(y_i), from log_density[k, i]."""
    k = log_density.shape[0]

    def loss(z):
        logw = np.log(softmax(np.r_[0.0, z]))
        return -np.sum(logsumexp(log_density + logw[:, None], axis=0))

    z = minimize(loss, np.zeros(k - 1), method="Nelder-Mead", options={"xatol": 1e-6, "fatol": 1e-9}).x
    return softmax(np.r_[0.0, z])


def pseudo_bma_plus(fits: dict) -> dict[str, float]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # Pareto-k warnings, as bayescale.stacking
        table = az.compare({k: f.idata for k, f in fits.items()}, ic="loo", method="BB-pseudo-BMA", seed=bt.SEED)
    return {k: float(table.loc[k, "weight"]) for k in fits}


def future_weights(study, train, laws: list[str], prior: str) -> tuple[dict[str, float], dict]:
    """Leave-future-out stacking on the training runs: fit below the largest 30 % of the axis
    values, score the log predictive density of a new run's value at those."""
    late_mask = bt.calibration_split(train[study.axis].to_numpy(np.float64))
    early, late = train[~late_mask], train[late_mask]
    response = get_law(laws[0]).response
    dens = []
    for law in laws:
        f = fit_law(study, early, law, prior)
        draws = np.asarray(bt.observation_draws(f, late[list(study.fit_cols)]), dtype=np.float64)
        dens.append(bscores.log_predictive_density(draws, late[response].to_numpy(np.float64)))
    dens = np.array(dens)
    w = mixture_weights(dens)
    return dict(zip(laws, map(float, w))), {"n_early": int(len(early)), "n_late": int(len(late)),
                                             "elpd_late": dict(zip(laws, map(float, dens.sum(axis=1))))}


def scores(draws: np.ndarray, truth: np.ndarray) -> dict:
    lo, hi = np.quantile(draws, [0.05, 0.95], axis=0)
    lo50, hi50 = np.quantile(draws, [0.25, 0.75], axis=0)
    med = np.median(draws, axis=0)
    return {"covered_90": ((truth >= lo) & (truth <= hi)).tolist(), "above_90": (truth > hi).tolist(),
            "covered_50": ((truth >= lo50) & (truth <= hi50)).tolist(),
            "rel_width_90": ((hi - lo) / np.abs(med)).tolist(),
            "rel_crps": (bscores.crps(draws, truth) / np.abs(truth)).tolist()}


def run_origin(study, df, origin: str, mask: np.ndarray, prior: str) -> dict:
    laws = [study.law, ALTERNATIVE[study.name]]
    train, test = df[mask].reset_index(drop=True), df[~mask].reset_index(drop=True)
    truth = test[get_law(study.law).response].to_numpy(np.float64)
    t0 = time.perf_counter()
    fits = {law: fit_law(study, train, law, prior) for law in laws}
    seconds_full = time.perf_counter() - t0
    weights = {"loo-stacking": stacking_weights(fits), "pseudo-bma+": pseudo_bma_plus(fits)}
    t1 = time.perf_counter()
    weights["future-stacking"], future = future_weights(study, train, laws, prior)
    seconds_future = time.perf_counter() - t1
    weights["equal"] = {law: 1.0 / len(laws) for law in laws}
    for law in laws:
        weights[f"{law} alone"] = {k: float(k == law) for k in laws}
    out = {"study": study.name, "origin": origin, "laws": laws, "prior": prior, "n_train": int(len(train)),
           "n_heldout": int(len(test)), "weights": weights, "future": future,
           "diagnostics": {law: {k: f.diagnostics[k] for k in ("max_rhat", "min_ess_bulk", "divergences")
                                 if k in f.diagnostics} for law, f in fits.items()},
           "seconds": {"full_fits": seconds_full, "future_fits": seconds_future}, "scores": {}}
    cols = list(study.fit_cols)
    for name, w in weights.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", BayescaleWarning)
            _, draws = StackedFit(fits, w).predict(test[cols], kind="observation", seed=bt.SEED, return_draws=True)
        out["scores"][name] = scores(np.asarray(draws.values, dtype=np.float64), truth)
    return out


def summarise(results: list[dict]) -> str:
    lines = []
    by_study: dict[str, list[dict]] = {}
    for r in results:
        by_study.setdefault(r["study"], []).append(r)
    head = ("| study | origin | n | weights (loo-stacking / pseudo-BMA+ / future-stacking), on the alternative "
            "| elpd of the late training runs (law, alternative) |")
    lines += [head, "|---|---|---|---|---|"]
    for study, rs in by_study.items():
        for r in rs:
            alt = r["laws"][1]
            w = " / ".join(f"{r['weights'][s][alt]:.2f}" for s in ("loo-stacking", "pseudo-bma+", "future-stacking"))
            e = r["future"]["elpd_late"]
            lines.append(f"| {study} ({r['laws'][0]} + {alt}) | {r['origin']} % | {r['n_heldout']} | {w} | "
                         f"{e[r['laws'][0]]:.1f}, {e[alt]:.1f} (n = {r['future']['n_late']}) |")
    lines.append("")
    schemes = ["law alone", "alternative alone", *SCHEMES]
    lines += ["90 % coverage (share of held-out runs above the interval) and median relative 90 % width, all "
              "origins:", "",
              "| study | n | " + " | ".join(schemes) + " |", "|---|---|" + "---|" * len(schemes)]
    crps_lines = ["| study | n | " + " | ".join(schemes) + " |", "|---|---|" + "---|" * len(schemes)]
    pooled: dict[str, dict[str, list]] = {s: {"c": [], "a": [], "w": [], "r": []} for s in schemes}
    for study, rs in by_study.items():
        n = sum(r["n_heldout"] for r in rs)
        cells, crps_cells = [], []
        for s in schemes:
            key = {"law alone": f"{rs[0]['laws'][0]} alone", "alternative alone": f"{rs[0]['laws'][1]} alone"}.get(s, s)
            c = np.concatenate([r["scores"][key]["covered_90"] for r in rs])
            a = np.concatenate([r["scores"][key]["above_90"] for r in rs])
            w = np.concatenate([r["scores"][key]["rel_width_90"] for r in rs])
            cr = np.concatenate([r["scores"][key]["rel_crps"] for r in rs])
            for k, v in zip("cawr", (c, a, w, cr)):
                pooled[s][k].append(v)
            cells.append(f"{c.mean():.2f} ({a.mean():.2f}), {np.median(w):.3g}")
            crps_cells.append(f"{cr.mean():.4g}")
        lines.append(f"| {study} | {n} | " + " | ".join(cells) + " |")
        crps_lines.append(f"| {study} | {n} | " + " | ".join(crps_cells) + " |")
    lines += ["", "Per origin, 90 % coverage:", "",
              "| study, origin | n | " + " | ".join(schemes) + " |", "|---|---|" + "---|" * len(schemes)]
    for study, rs in by_study.items():
        for r in rs:
            keys = [{"law alone": f"{r['laws'][0]} alone", "alternative alone": f"{r['laws'][1]} alone"}.get(s, s)
                    for s in schemes]
            lines.append(f"| {study} {r['origin']} % | {r['n_heldout']} | "
                         + " | ".join(f"{np.mean(r['scores'][k]['covered_90']):.2f}" for k in keys) + " |")
    lines += ["", "Mean relative CRPS (CRPS / |truth|; lower is better):", "", *crps_lines]
    return "\n".join(lines)


def render(results: list[dict]) -> str:
    seconds = sum(sum(r["seconds"].values()) for r in results)
    diag = [f"{r['study']} {r['origin']} % {law}: r_hat {d.get('max_rhat', float('nan')):.3f}, "
            f"divergences {d.get('divergences', 0)}" for r in results for law, d in r["diagnostics"].items()
            if d.get("max_rhat", 1.0) > 1.01 or d.get("divergences", 0) > 0]
    priors = {r["study"]: r["prior"] for r in results}
    text = ["## Law uncertainty far from the data (`benchmarks/law_ensemble.py`)", "",
            f"Seed {bt.SEED}; NUTS 4 x 1000 + 1000, target acceptance 0.95; the backtest's studies, origins, "
            f"pooling and priors; the walk's scale with each study's leave-one-study-out prior "
            + ", ".join(f"{k}: {v}" for k, v in priors.items())
            + f". The fits took {seconds:.0f} s. Weights are set on the training runs only (see the script's "
            "docstring); the law is the backtest's, the alternative is the law it is mixed with.", "",
            summarise(results), ""]
    text.append("Fits with r_hat > 1.01 or divergences: " + ("; ".join(diag) if diag else "none") + ".")
    return "\n".join(text)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--studies", default=",".join(ALTERNATIVE))
    ap.add_argument("--prior-file", help='JSON {"<study>": "LogNormal(mu, tau)", ...}: the walk\'s scale prior per study')
    ap.add_argument("--results", action="store_true", help="write the RESULTS.md section from the cache")
    args = ap.parse_args(argv)
    names = [s.strip() for s in args.studies.split(",") if s.strip()]
    unknown = [s for s in names if s not in ALTERNATIVE]
    if unknown:
        ap.error(f"unknown studies {unknown}; choose from {list(ALTERNATIVE)}")
    priors = json.loads(Path(args.prior_file).read_text()) if args.prior_file else {}
    OUT.mkdir(parents=True, exist_ok=True)
    results = []
    for name in names:
        study = bt.BY_NAME[name]
        df = bt.load_study(study)
        if df is None:
            continue
        for origin, mask in bt.origin_splits(df[study.axis].to_numpy(np.float64)).items():
            path = OUT / f"{name}_{origin}.json"
            if not path.exists():
                if name not in priors:
                    print(f"[{name} {origin}%] skipped: no prior for it in --prior-file", flush=True)
                    continue
                t = time.perf_counter()
                r = run_origin(study, df, origin, mask, priors[name])
                path.write_text(json.dumps(r))
                cov = {k: round(float(np.mean(v["covered_90"])), 2) for k, v in r["scores"].items()}
                print(f"[{name} {origin}%] {time.perf_counter() - t:.0f} s  coverage 90 {cov}", flush=True)
            results.append(json.loads(path.read_text()))
    if results:
        text = render(results)
        print(text)
        if args.results:
            write_section("law-ensemble", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Held-out scoring: fit on the runs a holdout protocol leaves, predict the held-out large runs, and
score coverage, PIT, CRPS, interval score, ARE and log predictive density beside the classical
baselines on the same split (:func:`calibrate`).

The holdout protocols themselves are in :mod:`bayescale.holdout`; simulation-based calibration is in
:mod:`bayescale.sbc`.
"""
from __future__ import annotations

import json
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import holdout as holdout_protocols
from .data import GROUP_COLUMNS
from .checks import check_positive_int
from .errors import BayescaleError, BayescaleWarning, warnings_labelled
from .models import get_law
from .progress import bar as progress_bar, resolve as resolve_progress
from .results import SAMPLING_REMEDY
from .scores import LEVELS, aggregate, score_points

__all__ = ["CalibrationResult", "calibrate"]

METHOD = "bayescale"
NEW_RUN = f"{METHOD} (new observation)"            # the model's predictions of a new run
CURVE = f"{METHOD} (mean curve)"                    # the same model's curve alone
ALONE = f"{METHOD}, law alone (new observation)"   # the law refitted without the discrepancy


@dataclass
class CalibrationResult:
    """Scores of bayescale and its baselines on one held-out split."""

    law: str
    holdout: str
    n_train: int
    n_heldout: int
    summary: dict                      # the JSON summary (DESIGN.md keys)
    points: pd.DataFrame               # held-out rows with per-method predictions and scores
    pit: dict[str, np.ndarray]
    fit: object
    heldout: pd.DataFrame
    notes: list[str] = field(default_factory=list)

    def table(self) -> pd.DataFrame:
        rows = {}
        for name, s in [(NEW_RUN, self.summary),
                        (CURVE, self.summary["mean_curve"]),
                        *([(ALONE, self.summary["law_alone"])]
                          if "law_alone" in self.summary else []),
                        *[(k, v) for k, v in self.summary["baselines"].items() if "coverage" in v]]:
            row = {f"cov_{k}": v for k, v in s["coverage"].items()}
            row.update({k: s[k] for k in ("median_are", "crps", "interval_score_90", "elpd")})
            rows[name] = row
        return pd.DataFrame.from_dict(rows, orient="index")

    def width_explanation(self) -> str:
        """One paragraph: where a held-out run's predictive width comes from, and why it is wider
        than the law's posterior alone."""
        s = self.summary
        shares = s.get("width_shares", {})
        far = s.get("decades_beyond_data", {})
        pct = {k: 100 * v for k, v in shares.items()}
        parts = [f"{pct['parameters']:.0f}% from the law's parameters",
                 f"{pct['discrepancy']:.0f}% from the model discrepancy (what the law's curve may miss, "
                 "growing with the distance from the fitted runs)"]
        if "law" in pct:
            parts.append(f"{pct['law']:.0f}% from the stacked laws' disagreement")
        parts.append(f"{pct['noise']:.0f}% from run-to-run noise")
        own = s.get("decades_beyond_group") or {}
        same = (own.get("median") is None or far.get("median") is None
                or (abs(own["median"] - far["median"]) < 0.05 and abs(own["max"] - far["max"]) < 0.05))
        own_text = ("" if same else   # said only where a group's own runs end earlier
                    f" ({own['median']:.2f}, at most {own['max']:.2f}, beyond their own group's runs)")
        where = ("" if far.get("median") is None else   # None: a law of the loss has no axis in decades
                 f"the held-out runs lie a median {far['median']:.2f} (at most {far['max']:.2f}) decades beyond "
                 f"the fitted runs{own_text}; ")
        text = (f"Why the intervals are this wide: {where}of a held-out run's squared 90% "
                f"width (mean over runs) " + ", ".join(parts) + ".")
        k = s.get("narrower_without_discrepancy")
        alone = s.get("law_alone")
        if alone is not None:
            how = _narrower_words(alone["width_ratio_90"])
            text += (f" Fitted without the discrepancy on the same runs, the law's posterior alone gives 90% intervals "
                     f"{how} (median over held-out runs) that cover "
                     f"{alone['coverage']['0.9']:.2f} of them (CRPS {alone['crps']:.4g}), against "
                     f"{s['coverage']['0.9']:.2f} (CRPS {s['crps']:.4g}) with it. "
                     + ("Here the law alone scored as well or better: the law fits these runs, and the discrepancy's "
                        "extra width is the price of covering runs where a law does not (it cannot know beforehand "
                        "which case it is in)."
                        if alone["crps"] <= s["crps"] and alone["coverage"]["0.9"] >= s["coverage"]["0.9"] else
                        "The discrepancy lets the curve bend where the runs show the law's misfit, and its bends "
                        "continue beyond the runs.")
                     + " (The walk and the law's parameters share the runs' misfit and trade off, so each alone is "
                     "wider than the two together; their split of the width is averaged over both orders of adding "
                     "them.)")
        elif s.get("discrepancy") is None and "law" not in pct:
            text += (" This fit has no model-discrepancy term (discrepancy='none'): its intervals know only the "
                     "law's own parameter uncertainty and the noise, and are too narrow wherever the law is "
                     "not exactly right.")
        elif k is not None:
            text += (f" The law's posterior alone (parameters and noise) would give intervals "
                     f"{_narrower_words(k)} (median over runs).")
        return text

    def write_json(self, path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.summary, indent=2))
        return path

    def sampling_warnings(self) -> list[str]:
        """A line per fitted law whose sampling checks fail: the scores below rest on it."""
        fits = getattr(self.fit, "fits", {"": self.fit})
        out = []
        for name, one in fits.items():
            problems = one.sampling_problems()
            if problems:
                out.append(f"Warning: the sampling checks of the fit to the training runs{' (' + name + ')' if name else ''} "
                           f"fail ({'; '.join(problems)}); the held-out scores may be off. {SAMPLING_REMEDY}.")
        return out

    def skipped_baselines(self) -> list[str]:
        """One line per baseline that was asked for but not run, with the reason."""
        return [f"baseline {k} not run: {v['skipped']}" for k, v in self.summary["baselines"].items()
                if "skipped" in v]

    def write_report(self, out_dir) -> Path:
        from .report import plot_fit, plot_pit, plot_reliability, write_html

        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        fits = getattr(self.fit, "fits", {"": self.fit})
        images = []
        for i, one in enumerate(fits.values()):
            images.append(f"fit{i or ''}.png")
            plot_fit(one, out_dir / images[-1], heldout=self.heldout)
        curves = {NEW_RUN: self.summary,
                  CURVE: self.summary["mean_curve"]}
        if "law_alone" in self.summary:   # what the default's extra width buys, in the plots too
            curves[ALONE] = self.summary["law_alone"]
        curves.update({k: v for k, v in self.summary["baselines"].items() if "coverage" in v})
        plot_reliability(curves, out_dir / "reliability.png")
        plot_pit(self.pit, out_dir / "pit.png")
        return write_html(out_dir, f"bayescale calibration: {self.law}, holdout {self.holdout}",
                          images + ["reliability.png", "pit.png"],
                          {"scores on held-out runs": self.table(), "held-out points": _readable(self.points)},
                          summary=self.summary, notes=self.notes,
                          intro=[*self.sampling_warnings(), self.width_explanation(), *self.skipped_baselines()],
                          glossary=SCORE_GLOSSARY)


SCORE_GLOSSARY = {
    "cov_0.5, cov_0.9 (coverage)": "share of held-out runs inside the central 50% / 90% interval; calibrated "
                                   "intervals give about 0.5 / 0.9 (more is too wide, less too narrow).",
    "median_are": "median absolute relative error of the predictive median, |median - truth| / truth; "
                  "lower is better (0.01 = 1%).",
    "crps": "continuous ranked probability score, mean over held-out runs, in the response's units: the error "
            "of the whole predictive distribution (a point prediction's absolute error when it is a point); "
            "lower is better.",
    "interval_score_90": "width of the 90% interval plus 20x how far the truth lies outside it, mean over "
                         "held-out runs; rewards narrow intervals that still cover; lower is better.",
    "elpd": "log predictive density of the held-out runs, summed (a kernel estimate from each method's "
            "draws, so every method is scored alike); higher is better.",
    "reliability diagram": "nominal against empirical coverage at every level; calibrated methods lie on "
                           "the diagonal, below it they are overconfident.",
    "PIT histogram": "where each held-out run falls in its predictive distribution; flat is calibrated, "
                     "U-shaped overconfident, humped underconfident.",
}



def _narrower_words(ratio: float) -> str:
    """'1.8x narrower', '1.3x wider', or 'about as wide (0.98x)' for a width ratio (ours / theirs)
    within 5 % of 1, which one decimal would print as 1.0x narrower or wider."""
    if abs(ratio - 1) < 0.05:
        return f"about as wide ({1 / ratio:.2f}x the width)"
    return f"{ratio:.1f}x narrower" if ratio > 1 else f"{1 / ratio:.1f}x wider"

def _readable(points: pd.DataFrame) -> pd.DataFrame:
    """The held-out points without columns that tell a reader nothing: plot colours and group
    columns with one value throughout."""
    drop = [c for c in points.columns
            if c == "hex_color" or (c in GROUP_COLUMNS and points[c].nunique(dropna=False) <= 1)]
    return points.drop(columns=drop)


def _narrowing(table: pd.DataFrame, shares) -> float | None:
    """About how many times narrower a held-out run's interval would be without the model
    discrepancy and the laws' disagreement (median over rows of 1 / sqrt(their variance share's
    complement)); None when the prediction has no such parts."""
    extra = sum(table[f"share_{k}"].to_numpy() for k in shares if k in ("discrepancy", "law"))
    rest = 1.0 - np.asarray(extra, dtype=np.float64)
    if not np.any(np.asarray(extra) > 0):
        return None
    return float(np.nanmedian(1.0 / np.sqrt(np.clip(rest, 1e-12, None))))


def _scored(draws, truth, levels):
    points = score_points(draws, truth, levels)
    return points, aggregate(points, levels)


BASELINES = ("bootstrap", "no-pool")


def _distance_summary(decades: pd.Series) -> dict:
    """Median and largest distance beyond the fitted runs, in decades; None where the law has no
    axis measured in decades (a law of the loss)."""
    if decades.isna().all():
        return {"median": None, "max": None}
    return {"median": float(decades.median()), "max": float(decades.max())}


def calibrate(df: pd.DataFrame, law="chinchilla", holdout="top-compute:0.1", *, by: str | None = None,
              pool=None, priors=None, seed: int = 0, chains: int = 4, warmup: int = 1000,
              draws: int = 1000, n_boot: int = 1000, baselines=("bootstrap", "no-pool"),
              natural=None, levels=LEVELS, progress: bool | None = None, columns=None,
              duplicates: str = "error", discrepancy="auto", target_accept=None,
              strict: bool = False, offset=None, discrepancy_by="auto", law_alone: bool = True) -> CalibrationResult:
    """Fit on the runs a holdout protocol leaves, predict the held-out ones, score both.

    ``holdout`` is 'top-compute:F', 'largest-n:K', 'natural' (with ``natural`` the dataset's mask)
    or a boolean mask. The headline scores are for a new observation (noise included), the
    quantity a held-out run measures; ``summary["mean_curve"]`` scores the law's mean curve.
    Baselines on the same split: 'bootstrap' (Huber + L-BFGS grid + bootstrap, Epoch's method)
    and 'no-pool' (separate bayescale fits per group of the pooled grouping).
    ``progress`` (None: only when stderr is a terminal) shows each fit's sampling bar on stderr and,
    with baselines, a bar of fits and one of the bootstrap refits.
    ``discrepancy`` is passed to the fit (see :func:`bayescale.fit`); the summary's
    ``width_shares`` say how much of a held-out run's squared 90 % width comes from the law's
    parameters, the model discrepancy and the noise. ``offset`` (group offsets, see
    :func:`bayescale.fit`) is passed to the main fit and its law-alone twin, not to the no-pool
    baseline. ``law_alone=False`` skips that twin (a refit of the law without the discrepancy,
    which says how much wider the default is and what that buys).
    """
    from .baselines import fits_losses, huber_bootstrap
    from .data import apply_column_map
    from .inference import fit as fit_law
    from .spec import build

    t_start = time.perf_counter()
    unknown = [b for b in baselines if b not in BASELINES]
    if unknown:   # before any fit, not after the main fit
        raise BayescaleError(f"unknown baseline {unknown[0]!r}; choose from {list(BASELINES)}")
    if "bootstrap" in baselines:   # checked before any fit, not after the NUTS fit it follows
        n_boot = check_positive_int(n_boot, "n_boot")
    progress = resolve_progress(progress)
    stacked = isinstance(law, (list, tuple))
    law_arg = list(law) if stacked else law
    law = get_law(law_arg[0] if stacked else law_arg)   # stacked laws share the response
    table = apply_column_map(df, columns).reset_index(drop=True)
    laws = law_arg if stacked else [law_arg]
    if stacked:   # each law's own pooling and priors, as fit reads a stack's (shared names, per-law entries)
        from .inference import _pool_per_law, _priors_per_law

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", BayescaleWarning)   # the fit says them
            pools, law_priors = _pool_per_law(pool, laws), _priors_per_law(priors, laws)
    else:
        pools, law_priors = {str(law_arg): pool}, {str(law_arg): priors}
    for one in laws:   # the whole table, as fit checks it, before the split
        _, whole = build(table, one, pool=pools[str(one)], priors=law_priors[str(one)], duplicates=duplicates)
    if whole.kept is not None and len(whole.kept) < len(table):
        # repeated rows dropped once, here, and said once with the file's lines: the split and its
        # counts are of the runs fitted, and the fits below see no repeats to say again
        n_given = len(table)
        table = table.iloc[whole.kept].reset_index(drop=True)
        for key in ("source_file", "source_blank_lines"):   # positions are no longer the file's lines
            table.attrs.pop(key, None)
        # a mask given per row of the table as given (natural split, explicit mask) follows the rows kept
        if natural is not None and len(np.asarray(natural)) == n_given:
            natural = np.asarray(natural)[whole.kept]
        if not isinstance(holdout, str) and len(np.asarray(holdout)) == n_given:
            holdout = np.asarray(holdout)[whole.kept]
    if isinstance(holdout, str):
        mask = holdout_protocols.parse(holdout, table, by=by, natural=natural)
        label = f"{holdout} per {by}" if by else holdout   # in the title, the printout and the JSON
    else:
        mask, label = np.asarray(holdout, dtype=bool), "explicit mask"
        if mask.shape != (len(table),) or mask.all() or not mask.any():
            raise BayescaleError("an explicit holdout mask must be one boolean per row, with rows on both sides")
    train, test = table.loc[~mask].reset_index(drop=True), table.loc[mask].reset_index(drop=True)
    for part in (train, test):   # a part's row positions are not the file's lines any more
        for key in ("source_file", "source_blank_lines"):
            part.attrs.pop(key, None)
    response = law.response
    if response not in test:
        raise BayescaleError(f"held-out rows need the response column '{response}'")
    truth = pd.to_numeric(test[response]).to_numpy(np.float64)
    notes: list[str] = list(df.attrs.get("notes", []))   # what loading the table fixed (e.g. outliers dropped)

    # one step per fit: the main fit, the bootstrap baseline, each no-pool group fit
    with progress_bar(total=1 + len(baselines), desc=f"calibrate {law.spec}", unit="fit",
                      disable=not progress or not baselines) as bar:
        main = fit_law(train, law_arg, pool=pool, priors=priors, seed=seed, chains=chains, warmup=warmup,
                       target_accept=target_accept, strict=strict,
                       draws=draws, progress=progress, duplicates=duplicates, discrepancy=discrepancy,
                       offset=offset, discrepancy_by=discrepancy_by)
        bar.update(1)
        t_fit = time.perf_counter() - t_start
        obs_table, obs_draws = main.predict(test, kind="observation", seed=seed, return_draws=True)
        _, mean_draws = main.predict(test, kind="mean", seed=seed, return_draws=True)
        obs_points, obs_summary = _scored(obs_draws.values, truth, levels)
        _, mean_summary = _scored(mean_draws.values, truth, levels)
        points = test.copy()
        points[f"{METHOD}_median"] = np.median(obs_draws.values, axis=0)
        for k in ("pit", "crps", "are"):
            points[f"{METHOD}_{k}"] = obs_points[k]
        pit_values = {NEW_RUN: obs_points["pit"]}

        first = next(iter(main.fits.values())) if stacked else main
        shares = ("parameters", "discrepancy", "noise") + (("law",) if stacked else ())
        summary = {"law": main.law_spec if stacked else law.spec, "holdout": label, "n_train": int(len(train)), "n_heldout": int(len(test)),
                   "kind": "observation (new run's loss, noise included)", **obs_summary,
                   "mean_curve": {"kind": "mean (the law's expected value, no run noise)", **mean_summary},
                   "baselines": {}, "seed": int(seed), "pooled": first.spec.pooled,
                   "diagnostics": main.diagnostics,
                   "discrepancy": None if first.spec.discrepancy is None else first.spec.discrepancy.to_json()["prior"],
                   "width_shares": {k: float(obs_table[f"share_{k}"].mean()) for k in shares},
                   "narrower_without_discrepancy": _narrowing(obs_table, shares),
                   "decades_beyond_data": _distance_summary(obs_table["decades_beyond_data"])}
        if "decades_beyond_group" in obs_table:   # per family/task: each held-out run from its own group's runs
            summary["decades_beyond_group"] = _distance_summary(obs_table["decades_beyond_group"])

        for name in baselines:
            t0 = time.perf_counter()
            bar.set_postfix_str(name)
            if name == "no-pool" and stacked:
                summary["baselines"][name] = {"skipped": "the no-pool baseline fits one law; not run for a "
                                              "stacked fit"}
                bar.update(1)
                continue
            if name == "bootstrap" and not fits_losses(law):
                summary["baselines"][name] = {"skipped": f"the Huber + bootstrap baseline is for losses; "
                                              f"{law.spec} models a rate"}
                bar.update(1)
                continue
            if name == "bootstrap":
                boot = huber_bootstrap(train, law, n_boot=n_boot, seed=seed, duplicates=duplicates,
                                       progress=progress)
                bar.update(1)
                _, bdraws = boot.predict(test, kind="mean", seed=seed, return_draws=True)
                bpoints, bsummary = _scored(bdraws, truth, levels)
                bsummary["kind"] = (f"Huber (delta 1e-3) + L-BFGS grid + {n_boot} bootstrap refits of {law.spec}, "
                                    "parameter intervals")
                pit_values[name] = bpoints["pit"]
                points[f"{name}_median"] = np.median(bdraws, axis=0)
            else:   # "no-pool" (the names were checked at the start)
                groups = sorted({g for k, g in first.spec.pooled.items() if k in law.params})
                if not groups:
                    summary["baselines"][name] = {"skipped": "no law parameter is pooled on these data, "
                                                  "so the no-pool fit is the bayescale fit itself"}
                    bar.update(1)
                    continue
                g = groups[0]
                pdraws = np.full((obs_draws.shape[0], len(test)), np.nan)
                # each group on its own: no between-group spreads, so their priors do not apply
                unpooled_priors = {k: v for k, v in (priors or {}).items() if not k.endswith("_tau")}
                labels_g = sorted(test[g].astype(str).unique())
                bar.total += len(labels_g) - 1  # one fit per group instead of one step
                for label_g in labels_g:
                    tr = train[train[g].astype(str) == label_g]
                    rows = np.flatnonzero(test[g].astype(str).to_numpy() == label_g)
                    if len(tr) < law.n_free + 1:
                        notes.append(f"no-pool: {g} {label_g!r} has {len(tr)} training runs, too few for its "
                                     f"own fit; its {len(rows)} held-out runs are not scored for no-pool")
                        bar.update(1)
                        continue
                    with warnings_labelled(f"no-pool fit of {g} {label_g!r}", os.path.dirname(__file__)):
                        sep = fit_law(tr, law, pool="none", priors=unpooled_priors, seed=seed, chains=chains,
                                      target_accept=target_accept,
                                      warmup=warmup, draws=draws, progress=progress, duplicates=duplicates,
                                      discrepancy=discrepancy)
                    _, d = sep.predict(test.iloc[rows], kind="observation", seed=seed, return_draws=True)
                    pdraws[:, rows] = d.values[: pdraws.shape[0]]
                    bar.update(1)
                ok = ~np.isnan(pdraws).any(axis=0)
                if not ok.any():
                    summary["baselines"][name] = {"skipped": "no group had enough training runs"}
                    continue
                bpoints, bsummary = _scored(pdraws[:, ok], truth[ok], levels)
                bsummary["kind"] = f"separate bayescale fit per {g}, new observation"
                bsummary["n_scored"] = int(ok.sum())
                pit_values[name] = bpoints["pit"]
            bsummary["runtime_seconds"] = time.perf_counter() - t0
            summary["baselines"][name] = bsummary
    if first.spec.discrepancy is not None and not stacked and law_alone:
        # the same law without the discrepancy, on the same split: how much wider the default is
        # than the law's posterior alone, and what that buys
        with warnings_labelled("the law-alone refit (no discrepancy)", os.path.dirname(__file__)):
            alone = fit_law(train, law, pool=pool, priors=priors, seed=seed, chains=chains, warmup=warmup,
                            target_accept=target_accept, draws=draws, progress=progress, duplicates=duplicates,
                            discrepancy="none", offset=offset)
        alone_table, alone_draws = alone.predict(test, kind="observation", seed=seed, return_draws=True)
        alone_points, alone_summary = _scored(alone_draws.values, truth, levels)
        # the plots' order: the model, the law alone, the baselines
        pit_values = {NEW_RUN: pit_values.pop(NEW_RUN), ALONE: alone_points["pit"], **pit_values}
        ratio = (obs_table["upper_90"] - obs_table["lower_90"]) / (alone_table["upper_90"] - alone_table["lower_90"])
        summary["law_alone"] = {**alone_summary, "width_ratio_90": float(np.median(ratio)),
                                "diagnostics": alone.diagnostics}
        # the refit measures what the share-based estimate only approximates: one answer, not two
        summary.pop("narrower_without_discrepancy", None)
    summary["runtime_seconds"] = time.perf_counter() - t_start
    summary["fit_seconds"] = t_fit
    summary["notes"] = notes + main.notes
    return CalibrationResult(law=summary["law"], holdout=label, n_train=len(train), n_heldout=len(test),
                             summary=summary, points=points, pit=pit_values, fit=main, heldout=test,
                             notes=notes)

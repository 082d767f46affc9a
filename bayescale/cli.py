"""The command line: bayescale laws | fit | predict | summary | allocate | demo | datasets ..."""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import warnings
from pathlib import Path

import pandas as pd

from .errors import BayescaleError, BayescaleWarning, UnreliableSamplingError

LEVELS = (0.5, 0.9)
STRICT_FAILED = 3   # exit status of `fit --strict` when the sampling diagnostics fail


# ---- argument helpers ---------------------------------------------------------------------------

def parse_pairs(items, what: str, convert=str) -> dict:
    """["a=1", "b=2,c=3"] -> {"a": 1, ...}; clear error on a malformed pair."""
    out = {}
    for item in items or []:
        for part in item.split(","):
            if not part.strip():
                continue
            key, sep, value = part.partition("=")
            if not sep or not key.strip() or not value.strip():
                raise BayescaleError(f"{what} expects NAME=VALUE, got {part!r}")
            try:
                out[key.strip()] = convert(value.strip())
            except ValueError as exc:
                raise BayescaleError(f"{what} {key.strip()}: cannot read {value.strip()!r} ({exc})") from exc
    return out


def parse_priors(items) -> dict:
    """--prior alpha=Normal(0.3,0.1): split at the first '=' only, since priors contain commas."""
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise BayescaleError(f"--prior expects NAME=DIST(args), got {item!r}")
        out[key.strip()] = value.strip()
    return out


def read_table(source: str) -> pd.DataFrame:
    """A CSV or Parquet path, or dataset:NAME for a registered dataset."""
    if source.startswith("dataset:"):
        from . import datasets

        return datasets.load(source.split(":", 1)[1])
    path = Path(source)
    if not path.exists():
        raise BayescaleError(f"no such file: {source}; give a CSV or Parquet path, or dataset:NAME")
    if path.is_dir():
        raise BayescaleError(f"{source} is a folder; give a CSV or Parquet file")
    try:
        with open(path, "rb") as fh:
            magic = fh.read(4)
        if path.suffix.lower() in (".parquet", ".pq") or magic == b"PAR1":   # Parquet, whatever its name
            return _unique_columns(pd.read_parquet(path), source)
        with open(path, newline="", encoding="utf-8-sig", errors="replace") as fh:
            header = fh.readline()
        sep = _separator(header)
        _unique_columns(pd.DataFrame(columns=next(csv.reader([header], delimiter=sep), [])), source)
        return pd.read_csv(path, sep=sep)
    except BayescaleError:
        raise
    except (ValueError, OSError, ImportError, pd.errors.ParserError) as exc:
        raise BayescaleError(f"cannot read {source} as a table: {exc}") from exc


def _separator(header: str) -> str:
    """The CSV's separator: a comma, or a semicolon or tab when the header has those and no comma
    (European spreadsheets write ';', many tools write tab-separated files)."""
    if "," in header:
        return ","
    for sep in (";", "\t"):
        if sep in header:
            return sep
    return ","


def _unique_columns(df: pd.DataFrame, source: str) -> pd.DataFrame:
    """Refuse a table with repeated column names (read as loss and loss.1, the first silently used)."""
    names = [str(c).strip() for c in df.columns]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise BayescaleError(f"{source} has repeated column names {repeated}; give each column its own name "
                             "so it is clear which one to use")
    return df


def _progress(args) -> bool:
    """Progress bars on stderr for long commands, unless --quiet or stderr is not a terminal."""
    from .progress import resolve

    return not getattr(args, "quiet", False) and resolve(None)


def _fmt(x: float) -> str:
    return f"{x:.4g}"


# ---- commands ---------------------------------------------------------------------------------

def cmd_laws(args) -> int:
    from .models import REGISTRY, get_law

    rows = [get_law(name).describe() for name in sorted(REGISTRY)]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for d in rows:
        print(f"{d['name']}: {d['formula']}")
        print(f"  inputs: {', '.join(d['inputs'])}")
        for k, v in d["params"].items():
            pool = f", pooled by {v['pool']}" if v["pool"] else ""
            print(f"  {k:<8} {v['prior']}{pool}  {v['doc']}")
    print("options: power:params | power:tokens | power:compute")
    return 0


def _pool_from_args(args):
    """--pool alpha=family --pool E=none -> {"alpha": "family", "E": None}; None when not given."""
    if not args.pool:
        return None
    return {k: (None if v.lower() in ("none", "shared") else v)
            for k, v in parse_pairs(args.pool, "--pool").items()}


def law_choice(text: str):
    """--law chinchilla, or --law chinchilla,farseer for a stacked fit of several laws."""
    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names:
        raise BayescaleError("--law expects a law name (see `bayescale laws`) or several, comma-separated")
    return names[0] if len(names) == 1 else names


def _offset_terms(text: str):
    """--offset family, or family,family*task."""
    terms = [t.strip() for t in text.split(",") if t.strip()]
    return terms[0] if len(terms) == 1 else terms


def _fit_from_args(args, df):
    from .inference import fit

    pool = "none" if args.no_pool else _pool_from_args(args)
    return fit(
        df, law=law_choice(args.law), pool=pool, priors=parse_priors(args.prior), seed=args.seed,
        chains=args.chains, warmup=args.warmup, draws=args.draws, progress=_progress(args),
        columns=parse_pairs(args.col, "--col"), duplicates=args.duplicates, discrepancy=args.discrepancy,
        offset=args.offset, discrepancy_by=args.discrepancy_by, target_accept=args.target_accept,
        strict=args.strict, max_draws=args.max_draws,
    )


def print_fit(fit, out=None) -> None:
    out = out or sys.stdout  # looked up at call time, so redirected stdout is honoured
    if hasattr(fit, "fits"):   # a stacked fit: its weights, then each law's fit
        print(f"stacked fit of {len(fit.fits)} laws, PSIS-LOO stacking weights: "
              + ", ".join(f"{k} {w:.3f}" for k, w in fit.weights.items()), file=out)
        for name, one in fit.fits.items():
            print(f"\n--- {name} (weight {fit.weights[name]:.3f}) ---", file=out)
            print_fit(one, out)
        return
    d = fit.diagnostics
    print(f"law {fit.law.spec}  ({fit.law.formula})  n_obs={fit.config['n_obs']}  pooled={fit.spec.pooled or 'none'}", file=out)
    cols = ["mean", "sd", "2.5%", "50%", "97.5%", "r_hat", "ess_bulk"]
    print(fit.summary()[cols].to_string(float_format=_fmt), file=out)
    disc = fit.spec.discrepancy
    print("model discrepancy: " + ("none (the law's own parameter uncertainty only)" if disc is None else
                                   f"walk with scale prior {disc.to_json()['prior']}"
                                   + (f", one per {disc.group} (shared scale)" if disc.group else "")), file=out)
    for term in fit.spec.offsets:
        print(f"group offset: by {term.group}, spread prior {term.to_json()['prior']}", file=out)
    print(f"diagnostics: max r_hat {d['max_rhat']:.3f}, min bulk ESS {d['min_ess_bulk']:.0f}, "
          f"divergences {d['divergences']}, mean leapfrog steps/draw {d['mean_steps_per_draw']:.1f}", file=out)
    for note in fit.notes:
        print(f"note: {note}", file=out)


def _check_out(out: str, flag: str = "--out", example: str = "fit.nc") -> None:
    """Refuse an impossible output file before a long fit, not after it."""
    path = Path(out)
    if path.is_dir():
        raise BayescaleError(f"{flag} {out} is a folder; give a file name such as {path / example}")
    if not path.parent.is_dir():
        raise BayescaleError(f"{flag} {out}: folder {path.parent} does not exist; create it first")
    if not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise BayescaleError(f"{flag} {out}: not writable here; choose another place")


def _check_out_dir(out: str, flag: str) -> None:
    """An output folder (created if missing) must not be a file and must be writable."""
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise BayescaleError(f"{flag} {out} is a file; give a folder name (it is created if missing)")
    parent = path if path.is_dir() else next((p for p in path.parents if p.exists()), Path("."))
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise BayescaleError(f"{flag} {out}: cannot write in {parent}; choose another place")


def cmd_fit(args) -> int:
    _check_out(args.out)
    df = read_table(args.data)
    try:
        fit = _fit_from_args(args, df)
    except UnreliableSamplingError as exc:   # --strict: the fit is kept for inspection, the status says no
        if isinstance(law_choice(args.law), str):
            exc.fit.save(args.out)
            print_fit(exc.fit)
            print(f"saved {args.out} for inspection only")
        print(f"bayescale: error: --strict: {exc}", file=sys.stderr)
        return STRICT_FAILED
    fit.save(args.out)
    print_fit(fit)
    print(f"saved {args.out}")
    return 0


def _points(args, fit) -> pd.DataFrame:
    if args.data:
        return read_table(args.data)
    if not args.at:
        raise BayescaleError("give the points to predict: --at params=7e10,tokens=1.4e12 (repeatable) or --data FILE")
    from .data import GROUP_COLUMNS

    known = None
    if fit is not None:   # a misspelt name (famly=dense) must not be dropped in silence
        law = next(iter(fit.fits.values())).law if hasattr(fit, "fits") else fit.law
        known = (set(law.inputs) | set(GROUP_COLUMNS) | set(law.extras) | set(law.mean_extras) | {"compute"}
                 | set(parse_pairs(args.col, "--col").values()))
    rows = []
    for item in args.at:
        pairs = parse_pairs([item], "--at")
        unknown = sorted(set(pairs) - known) if known is not None else []
        if unknown:
            raise BayescaleError(f"--at: unknown column(s) {unknown}; this fit knows {sorted(known)}")
        row = {}
        for k, v in pairs.items():
            if k in GROUP_COLUMNS:   # labels stay as typed: family=1 is the label '1', not 1.0
                row[k] = v
                continue
            try:
                row[k] = float(v)
            except ValueError:
                row[k] = v
        rows.append(row)
    return pd.DataFrame(rows)


def cmd_predict(args) -> int:
    from .saved import load

    if args.chain:
        args.kind = args.kind or "mean"
        return _predict_chain(args)
    args.kind = args.kind or "observation"
    if not args.fit:
        raise BayescaleError("give a saved fit (bayescale predict FIT.nc ...) or --chain LOSS_FIT.nc DOWNSTREAM_FIT.nc")
    fit = load(args.fit)
    points = _points(args, fit)
    levels = tuple(args.level) if args.level else LEVELS
    pred = fit.predict(points, levels=levels, kind=args.kind, seed=args.seed,
                       columns=parse_pairs(args.col, "--col"))
    if args.json:
        print(json.dumps({"law": fit.law_spec, "kind": args.kind, "notes": pred.attrs.get("notes", []),
                          **({"weights": fit.weights} if hasattr(fit, "weights") else {}),
                          "predictions": json.loads(pred.to_json(orient="records"))}, indent=2))
    else:
        what = {"mean": "expected value on the law's curve", "curve": "the law's normalised curve",
                "observation": "new observation, with noise"}[args.kind]
        print(f"{args.kind} of {fit.response} ({what}) from {fit.law_spec}")
        print(pred.to_string(index=False, float_format=_fmt))
        for note in pred.attrs.get("notes", []):
            print(f"note: {note}")
    return 0


def _predict_chain(args) -> int:
    from .chaining import chain
    from .data import apply_column_map

    if args.fit:
        raise BayescaleError("give either a fit or --chain LOSS_FIT.nc DOWNSTREAM_FIT.nc, not both")
    ch = chain(*args.chain)
    points = apply_column_map(_points(args, None), parse_pairs(args.col, "--col"))
    levels = tuple(args.level) if args.level else LEVELS
    pred = ch.predict(points, levels=levels, kind=args.kind, loss_kind=args.loss_kind, seed=args.seed)
    law = ch.downstream_fit.law
    if args.json:
        print(json.dumps({"loss_law": ch.loss_fit.law.spec, "law": law.spec, "kind": args.kind,
                          "loss_kind": args.loss_kind,
                          "predictions": json.loads(pred.to_json(orient="records"))}, indent=2))
    else:
        print(f"{args.kind} of {law.response} from {law.spec}, at the loss of {ch.loss_fit.law.spec} "
              f"({args.loss_kind}), draw by draw")
        print(pred.to_string(index=False, float_format=_fmt))
    return 0


def cmd_summary(args) -> int:
    from .saved import load

    print_fit(load(args.fit))
    return 0


def cmd_allocate(args) -> int:
    from .saved import load

    fit = load(args.fit)
    budgets = []
    for v in (v.strip() for part in args.compute for v in part.split(",")):
        if not v:
            continue
        try:
            budgets.append(float(v))
        except ValueError:
            raise BayescaleError(f"--compute expects FLOP budgets like 1e21,1e22, got {v!r}") from None
    if not budgets:
        raise BayescaleError("--compute expects at least one FLOP budget, e.g. --compute 1e21,1e22")
    labels = parse_pairs(args.label, "--label")
    table = fit.optimal_allocation(budgets, levels=(0.9,), **labels)
    if args.json:
        print(table.to_json(orient="records", indent=2))
    else:
        cols = ["compute"] + [f"{q}_{s}" for q in ("params", "tokens", "loss")
                              for s in ("median", "lower_90", "upper_90")]
        print(table[cols].to_string(index=False, float_format=_fmt))
        for note in table.attrs.get("notes", []):
            print(f"note: {note}")
    return 0


def cmd_demo(args) -> int:
    from .datasets.demo import demo_target, demo_data
    from .inference import fit

    if args.out:
        _check_out(args.out)
    df = demo_data()
    print(f"SYNTHETIC demo data: {len(df)} runs of {df['family'].nunique()} model families, "
          f"params {df['params'].min():.2g}-{df['params'].max():.2g}, simulated by bayescale "
          "from known chinchilla parameters")
    result = fit(df, law="chinchilla", seed=args.seed, progress=_progress(args), strict=args.strict)
    print_fit(result)
    target, truth = demo_target(df)
    pred = result.predict(target, levels=(0.5, 0.9))
    biggest = (df["params"] * df["tokens"]).max() * 6
    print(f"\nprediction 100x beyond the largest demo run (C = {6 * target['params'].iloc[0] * target['tokens'].iloc[0]:.3g} "
          f"FLOP vs {biggest:.3g}):")
    for i, row in pred.iterrows():
        inside = row["lower_90"] <= truth[i] <= row["upper_90"]
        print(f"  {row['family']:<9} N={row['params']:.3g} D={row['tokens']:.3g}: median {row['median']:.4f}  "
              f"50% [{row['lower_50']:.4f}, {row['upper_50']:.4f}]  90% [{row['lower_90']:.4f}, {row['upper_90']:.4f}]  "
              f"true {truth[i]:.4f} ({'inside' if inside else 'OUTSIDE'} the 90% interval)")
    if args.out:
        result.save(args.out)
        print(f"saved {args.out}")
    return 0


def _natural_holdout(holdout: str, data: str, df, usage: str):
    """The registered dataset's own holdout mask when ``holdout`` is "natural", else None."""
    if holdout != "natural":
        return None
    if not data.startswith("dataset:"):
        raise BayescaleError(f"--holdout natural needs a registered dataset: {usage}")
    from . import datasets

    return datasets.holdout(data.split(":", 1)[1], df)


def cmd_calibrate(args) -> int:
    from .heldout import calibrate

    if args.json:
        _check_out(args.json, "--json", "out.json")
    if args.report:
        _check_out_dir(args.report, "--report")
    df = read_table(args.data)
    natural = _natural_holdout(args.holdout, args.data, df, "DATA = dataset:NAME")
    pool = _pool_from_args(args)
    baselines = tuple(b for b in args.baselines.split(",") if b.strip()) if args.baselines else ()
    result = calibrate(
        df, law_choice(args.law), args.holdout, by=args.by, discrepancy=args.discrepancy, pool=pool,
        offset=args.offset, discrepancy_by=args.discrepancy_by, target_accept=args.target_accept,
        priors=parse_priors(args.prior),
        seed=args.seed, chains=args.chains, warmup=args.warmup, draws=args.draws, n_boot=args.n_boot,
        baselines=baselines, natural=natural, progress=_progress(args),
        columns=parse_pairs(args.col, "--col"), duplicates=args.duplicates, strict=args.strict,
    )
    print(f"law {result.law}, holdout {result.holdout}: {result.n_train} training runs, "
          f"{result.n_heldout} held out")
    print(result.table().to_string(float_format=_fmt))
    print(result.width_explanation())
    for note in result.summary.get("notes", []):
        print(f"note: {note}")
    if args.json:
        result.write_json(args.json)
        print(f"wrote {args.json}")
    if args.report:
        path = result.write_report(args.report)
        print(f"wrote {path}")
    return 0


def cmd_sbc(args) -> int:
    from .sbc import sbc

    if args.json:
        _check_out(args.json, "--json", "sbc.json")

    result = sbc(args.law, n_sims=args.n_sims, seed=args.seed, chains=args.chains, warmup=args.warmup,
                 draws=args.draws, thin=args.thin, bins=args.bins, pool=_pool_from_args(args),
                 priors=parse_priors(args.prior), sampler=args.sampler, scheduler=args.scheduler,
                 progress=_progress(args))
    print(result)
    print(result.summary().to_string(float_format=_fmt))
    print(f"rank uniformity {'not rejected' if result.passes(0.01) else 'REJECTED'} at family-wise 1 %")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "law": result.law, "n_sims": result.n_sims, "n_failed": result.n_failed,
            "pvalues": result.pvalues, "passes": result.passes(0.01), "settings": {
                k: v for k, v in result.settings.items() if k in ("seed", "sampler", "chains", "warmup",
                                                                   "draws", "thin")}}, indent=2))
        print(f"wrote {args.json}")
    return 0 if result.passes(0.01) else 1


def cmd_report(args) -> int:
    from .saved import load
    from .report import fit_report

    _check_out_dir(args.out, "--out")
    path = fit_report(load(args.fit), args.out)
    print(f"wrote {path}")
    return 0


def cmd_compare(args) -> int:
    from . import comparison
    from .saved import load

    if args.json:
        _check_out(args.json, "--json", "compare.json")
    fits = [load(path) for path in args.fits]
    scores = None
    if args.holdout:
        if not args.data:
            raise BayescaleError("--holdout needs the table the fits were made on: --data FILE or dataset:NAME")
        df = read_table(args.data)
        natural = _natural_holdout(args.holdout, args.data, df, "--data dataset:NAME")
        scores = comparison.holdout_scores(fits, df, args.holdout, names=args.name, natural=natural,
                                           seed=args.seed, chains=args.chains, warmup=args.warmup,
                                           draws=args.draws, progress=_progress(args))
    with warnings.catch_warnings():  # its warnings are printed below as notes
        warnings.simplefilter("ignore", BayescaleWarning)
        result = comparison.compare(*fits, names=args.name, calibration=scores)
    cols = [c for c in ("law", "rank", "elpd_loo", "elpd_se", "elpd_diff", "elpd_diff_se", "p_loo",
                        "weight", "n_bad_k", "heldout_crps", "heldout_cov_90", "heldout_median_are",
                        "heldout_elpd") if c in result.table]
    print("PSIS-LOO ELPD on the observed site (log loss), best first:")
    print(result.table[cols].to_string(float_format=_fmt))
    for note in result.notes:
        print(f"note: {note}")
    if args.json:
        result.write_json(args.json)
        print(f"wrote {args.json}")
    return 0


# ---- the parser ---------------------------------------------------------------------------------

class _Parser(argparse.ArgumentParser):
    """argparse, except that a usage error is one line on stderr and exit 2, like any user error."""

    def error(self, message):
        self.exit(2, f"bayescale: error: {message} (see `{self.prog} --help`)\n")


def _add_data_and_law(s) -> None:
    """The table, the law(s), the model discrepancy and NUTS's target acceptance: shared by `fit`
    and `calibrate`."""
    s.add_argument("data", help="CSV or Parquet file, or dataset:NAME")
    s.add_argument("--law", default="chinchilla",
                   help="a law (see `bayescale laws`), or several comma-separated (chinchilla,farseer): each is "
                        "fitted and predictions mix them by PSIS-LOO stacking weights")
    s.add_argument("--discrepancy", default="auto", metavar="auto|none|PRIOR",
                   help="model-discrepancy term that widens intervals beyond the fitted runs: auto (default: "
                        "its scale's prior learned across public studies), none (the law alone), or a "
                        "prior for its scale such as 'LogNormal(-4, 1)'")
    s.add_argument("--discrepancy-by", default="auto", metavar="auto|none|GROUP",
                   help="a discrepancy walk per group, all with one scale: auto (default: per label of the "
                        "grouping the law's parameters vary by, when there is one), none (one walk for every "
                        "run), or a grouping column (family, dataset, task)")
    s.add_argument("--offset", metavar="GROUP[,GROUP*GROUP]", type=_offset_terms,
                   help="a shift of the curve per GROUP (family, dataset or task), shared across scales and "
                        "across the groupings the law's parameters vary by: for runs from families that are "
                        "consistently better or worse than the law at every size. An interaction such as "
                        "family*task gives each (family, task) pair its own shift; several terms are "
                        "comma-separated, e.g. family,family*task (default: none)")
    s.add_argument("--target-accept", type=float, metavar="P",
                   help="NUTS's target acceptance rate in (0, 1): higher (0.95, 0.99) takes smaller steps, "
                        "for posteriors with divergences (default 0.99 with a discrepancy, 0.95 with pooling, else 0.8)")
    _add_strict(s)


def _add_strict(s) -> None:
    s.add_argument("--strict", action="store_true",
                   help=f"exit with status {STRICT_FAILED} when a fit's r_hat, bulk ESS or divergences fail "
                        "(`fit` still saves it, for inspection)")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="bayescale", description="Bayesian scaling laws with calibrated intervals.")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("laws", help="list the laws")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_laws)

    s = sub.add_parser("fit", help="fit a law to a table and save the posterior (netCDF)")
    _add_data_and_law(s)
    s.add_argument("--pool", action="append", metavar="PARAM=GROUP", help="e.g. alpha=family (repeatable)")
    s.add_argument("--no-pool", action="store_true", help="share every law parameter")
    s.add_argument("--prior", action="append", metavar="PARAM=DIST", help="e.g. alpha='Normal(0.3, 0.1)'")
    s.add_argument("--col", action="append", metavar="SCHEMA=YOURS", help="column mapping, e.g. params=n_params")
    s.add_argument("--duplicates", choices=("error", "drop", "keep"), default="error")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--chains", type=int, default=4)
    s.add_argument("--warmup", type=int, default=1000)
    s.add_argument("--draws", type=int, default=None,
                   help="draws per chain (default 1000, continued up to --max-draws when the diagnostics "
                        "miss their targets by what more draws can fix; a number given here is kept exactly)")
    s.add_argument("--max-draws", type=int, default=None, help="default 4000 with the default --draws")
    s.add_argument("--out", required=True, help="where to write the fit (.nc)")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_fit)

    s = sub.add_parser("predict", help="credible intervals at new points from a saved fit")
    s.add_argument("fit", nargs="?")
    s.add_argument("--chain", nargs=2, metavar=("LOSS_FIT", "DOWNSTREAM_FIT"),
                   help="accuracy at new (N, D): loss from the first fit fed into the second (a law of loss)")
    s.add_argument("--loss-kind", choices=("mean", "observation"), default="mean",
                   help="with --chain: the loss fit's curve or a new run's loss")
    s.add_argument("--at", action="append", metavar="params=7e10,tokens=1.4e12")
    s.add_argument("--data", help="a table of points instead of --at")
    s.add_argument("--level", action="append", type=float, help="interval level(s), default 0.5 and 0.9")
    s.add_argument("--kind", choices=("observation", "mean", "curve"), default=None,
                   help="observation (default for one fit): what a new run will measure, model "
                        "discrepancy and noise included; mean (default with --chain, where a new run's "
                        "score would need the number of questions): expected value (an accuracy for "
                        "accuracy-sigmoid); curve: the law's own curve (for accuracy-sigmoid the share "
                        "above chance)")
    s.add_argument("--col", action="append", metavar="SCHEMA=YOURS")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_predict)

    s = sub.add_parser("summary", help="posterior summary and diagnostics of a saved fit")
    s.add_argument("fit")
    s.set_defaults(func=cmd_summary)

    s = sub.add_parser("allocate", help="compute-optimal N*, D* at given budgets")
    s.add_argument("fit")
    s.add_argument("--compute", action="append", required=True, metavar="C1,C2")
    s.add_argument("--label", action="append", metavar="family=NAME")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_allocate)

    s = sub.add_parser("demo", help="fit the embedded synthetic demo and extrapolate 100x")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", help="also save the demo fit")
    s.add_argument("--quiet", action="store_true")
    _add_strict(s)
    s.set_defaults(func=cmd_demo)

    s = sub.add_parser("calibrate", help="fit on small runs, score predictions of held-out large runs")
    _add_data_and_law(s)
    s.add_argument("--holdout", default="top-compute:0.1",
                   help="top-compute:FRACTION | largest-n:K | natural (dataset:NAME only)")
    s.add_argument("--by", help="apply the holdout per group, e.g. family")
    s.add_argument("--pool", action="append", metavar="PARAM=GROUP")
    s.add_argument("--prior", action="append", metavar="PARAM=DIST")
    s.add_argument("--col", action="append", metavar="SCHEMA=YOURS")
    s.add_argument("--duplicates", choices=("error", "drop", "keep"), default="error")
    s.add_argument("--baselines", default="bootstrap,no-pool", help="comma list: bootstrap, no-pool ('' for none)")
    s.add_argument("--n-boot", type=int, default=1000)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--chains", type=int, default=4)
    s.add_argument("--warmup", type=int, default=1000)
    s.add_argument("--draws", type=int, default=1000)
    s.add_argument("--json", metavar="OUT.json", help="write the summary as JSON")
    s.add_argument("--report", metavar="DIR", help="write report.html and plots")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_calibrate)

    s = sub.add_parser("sbc", help="simulation-based calibration of a law (exit status 1 if it fails)")
    s.add_argument("law")
    s.add_argument("--n-sims", type=int, default=100)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--chains", type=int, default=1)
    s.add_argument("--warmup", type=int, default=200)
    s.add_argument("--draws", type=int, default=400)
    s.add_argument("--thin", type=int, default=4)
    s.add_argument("--bins", type=int)
    s.add_argument("--pool", action="append", metavar="PARAM=GROUP")
    s.add_argument("--prior", action="append", metavar="PARAM=DIST")
    s.add_argument("--sampler", choices=("nuts", "hmc"), default="nuts",
                   help="nuts: one fit after another; hmc: all simulations in one compiled batch")
    s.add_argument("--scheduler", metavar="ADDRESS",
                   help="Dask distributed scheduler (e.g. tcp://host:8786): fit the batch on its workers")
    s.add_argument("--json", metavar="OUT.json", help="write p-values and settings as JSON")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_sbc)

    s = sub.add_parser("report", help="plots and summary of a saved fit")
    s.add_argument("fit")
    s.add_argument("--out", required=True, metavar="DIR")
    s.set_defaults(func=cmd_report)

    s = sub.add_parser("compare", help="rank saved fits of different laws on the same data (PSIS-LOO)")
    s.add_argument("fits", nargs="+", metavar="FIT.nc")
    s.add_argument("--name", action="append", help="a name per fit, in order (default: the law)")
    s.add_argument("--holdout", help="also score held-out runs per law: top-compute:F | largest-n:K | natural")
    s.add_argument("--data", help="the table the fits were made on (needed with --holdout)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--chains", type=int, default=4)
    s.add_argument("--warmup", type=int, default=1000)
    s.add_argument("--draws", type=int, default=1000)
    s.add_argument("--json", metavar="OUT.json", help="write the ranking as JSON")
    s.add_argument("--quiet", action="store_true", help="no progress bars (with --holdout)")
    s.set_defaults(func=cmd_compare)

    try:
        from .datasets.cli import add_parser as add_datasets_parser
    except ImportError:
        add_datasets_parser = None
    if add_datasets_parser is not None:
        add_datasets_parser(sub)
    return p


def main(argv=None) -> int:
    from .progress import warnings_above_bars
    from .runtime import ensure_configured

    ensure_configured()   # JAX's persistent compile cache, ArviZ without numba (bayescale.runtime)
    parser = build_parser()
    args = parser.parse_args(argv)
    old_format = warnings.formatwarning
    try:
        with warnings.catch_warnings():  # CLI-style warnings only while a command runs
            warnings.simplefilter("default", BayescaleWarning)
            warnings.formatwarning = _format_warning
            with warnings_above_bars():   # a warning is a line of its own, never inside a bar's line
                return int(args.func(args) or 0)
    except UnreliableSamplingError as exc:   # --strict
        print(f"bayescale: error: --strict: {exc}", file=sys.stderr)
        return STRICT_FAILED
    except BayescaleError as exc:
        print(f"bayescale: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bayescale: interrupted", file=sys.stderr)
        return 130
    finally:
        warnings.formatwarning = old_format


def _format_warning(message, category, *args, **kwargs) -> str:
    if issubclass(category, BayescaleWarning):
        return f"bayescale: warning: {message}\n"
    return f"{category.__name__}: {message}\n"


if __name__ == "__main__":
    sys.exit(main())

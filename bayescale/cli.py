"""The command line: bayescale laws | fit | predict | summary | allocate | demo | datasets ..."""
from __future__ import annotations

import argparse
import csv
import json
import math
import os
import re
import sys
import warnings
from decimal import Decimal
from pathlib import Path

import pandas as pd

from .data import SI_EXPONENTS
from .errors import BayescaleError, BayescaleWarning, UnreliableSampling, UnreliableSamplingError
from .files import check_fit_name
from .results import REFERENCE_SYMBOL

LEVELS = (0.5, 0.9)
STRICT_FAILED = 3   # exit status of `fit --strict` when the sampling diagnostics fail


# ---- argument helpers ---------------------------------------------------------------------------

SI_FORMS = "7e10, 70B, 1.4T, 500M or 3k (k/K = 1e3, M = 1e6, B/G = 1e9, T = 1e12, P = 1e15)"
_NUMBER = re.compile(r"([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)([A-Za-z]?)")


def parse_number(text, option: str, *, what: str = "a number", si: bool = True,
                 examples: str | None = None) -> float:
    """The one reader of numbers typed on the command line: '1e24', '0.9', and with ``si`` the
    suffixes of SI_EXPONENTS ('70B' -> 7e10, '1.4T' -> 1.4e12). A bad value is a one-line error
    naming the option, the value and the accepted forms. Lower-case m and p are refused: they
    read as milli and pico."""
    value = str(text).strip()
    match = _NUMBER.fullmatch(value)
    exponent = 0
    if match and match.group(2):
        exponent = SI_EXPONENTS.get(match.group(2)) if si else None
    if match is None or exponent is None:
        suffix = match.group(2) if match and si else ""
        hint = {"m": " ('m' would be milli: write M)", "p": " ('p' would be pico: write P)"}.get(suffix, "")
        forms = examples or (SI_FORMS if si else "a plain number such as 0.9")
        raise BayescaleError(f"{option} expects {what}, got {value!r}; write {forms}{hint}")
    return float(Decimal(match.group(1)).scaleb(exponent))   # exact: 1.4T is 1.4e12, not 1.4 * 1e12


def comma_items(text: str, option: str, example: str) -> list[str]:
    """The items of a comma list, stripped. An empty item ('1e22,,1e23', 'a,') is an error, not
    skipped: a value left out between commas is more often a typo than a wish."""
    items = [part.strip() for part in str(text).split(",")]
    if not any(items):
        raise BayescaleError(f"{option} got {text!r}, which names nothing; write {example}")
    if not all(items):
        raise BayescaleError(f"{option} {text!r} has an empty item between its commas; write {example}")
    return items


class Numbers(argparse.Action):
    """An option taking numbers read by :func:`parse_number`. With ``many`` (the default) it is
    repeatable and each value may be a comma list: ``--level 0.5,0.9`` = ``--level 0.5 --level 0.9``."""

    def __init__(self, option_strings, dest, *, many: bool = True, what: str = "a number", si: bool = True,
                 examples: str | None = None, **kwargs):
        self.many, self.what, self.si, self.examples = many, what, si, examples
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        try:
            if self.many and not values.replace(",", "").strip():   # nothing but commas: unreadable
                parse_number(values, option_string, what=self.what, si=self.si, examples=self.examples)
            parts = comma_items(values, option_string, self.examples or "1e22,1e23") if self.many else [values]
            numbers = [parse_number(part, option_string, what=self.what, si=self.si, examples=self.examples)
                       for part in parts]
        except BayescaleError as exc:
            parser.error(str(exc))   # names this command's --help
        if self.many:
            setattr(namespace, self.dest, list(getattr(namespace, self.dest, None) or []) + numbers)
        else:
            setattr(namespace, self.dest, numbers[0])


def parse_pairs(items, what: str, convert=str) -> dict:
    """["a=1", "b=2,c=3"] -> {"a": 1, ...}; clear error on a malformed pair."""
    out = {}
    for item in items or []:
        for part in comma_items(item, what, "NAME=VALUE,NAME=VALUE"):
            key, sep, value = part.partition("=")
            if not sep or not key.strip() or not value.strip():
                raise BayescaleError(f"{what} expects NAME=VALUE, got {part!r}")
            if key.strip() in out:   # params=70B,...,params=1B: which one was meant?
                raise BayescaleError(f"{what} gives {key.strip()} twice; give each name once")
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


MAX_BLANK_LINES = 1000   # pandas deep-copies a frame's attrs at every step: keep them small


def dataset_source(text: str) -> tuple[str, dict]:
    """dataset:NAME, or dataset:NAME?OPTION=VALUE,... with the loader's options (as `datasets
    export --option` takes them): dataset:chinchilla_epoch?exclude_outliers=false."""
    from .datasets.cli import _options

    name, _, query = text.split(":", 1)[1].partition("?")
    items = comma_items(query, "dataset:NAME?", "dataset:NAME?OPTION=VALUE,OPTION=VALUE") if query else []
    return name, _options(items)


def read_table(source: str, columns: dict | None = None) -> pd.DataFrame:
    """A CSV or Parquet path, or dataset:NAME for a registered dataset.

    A CSV's group columns (family, dataset, task, or the names ``columns`` maps onto them) are
    read as the text written: a parser's guess would turn labels '007' and '0007' into one number
    7, and 'NA' into a missing label."""
    if source.startswith("dataset:"):
        from . import datasets

        name, options = dataset_source(source)
        return datasets.load(name, **options)
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
            # rows after the header if one per line; blank lines are skipped by the parser, so
            # their numbers are kept to name a row's line (a few; a file of many is not named)
            lines, blank = 0, []
            for number, line in enumerate(fh, start=2):
                if line.strip():
                    lines += 1
                elif len(blank) <= MAX_BLANK_LINES:
                    blank.append(number)
        if header.lstrip().startswith("#"):   # a comment would be read as the header's only column
            raise BayescaleError(f"{source}: line 1 is a comment ({header.strip()[:60]!r}); the first line must be "
                                 "the header (column names): remove the comment lines")
        sep = _separator(header)
        names = next(csv.reader([header], delimiter=sep), [])
        _unique_columns(pd.DataFrame(columns=names), source)
        table = pd.read_csv(path, sep=sep)
        text = _label_columns(columns)
        labels = [c for c in table.columns if c in text]
        if labels:   # an empty cell stays missing (validate names it); everything else as written
            table[labels] = pd.read_csv(path, sep=sep, usecols=labels, dtype=str, keep_default_na=False,
                                        na_values=[""])[labels]
        if lines == len(table) and len(blank) <= MAX_BLANK_LINES:   # errors can name the file's lines
            table.attrs["source_file"] = path.name
            table.attrs["source_blank_lines"] = tuple(blank)
        return table
    except BayescaleError:
        raise
    except (ValueError, OSError, ImportError, pd.errors.ParserError) as exc:
        raise BayescaleError(f"cannot read {source} as a table: {exc}") from exc


def _column_map(args) -> dict:
    """The --col mapping of a command (empty for commands without --col)."""
    return parse_pairs(getattr(args, "col", None), "--col")


def _label_columns(columns: dict | None) -> set[str]:
    """The table's names of the group columns under the ``--col`` mapping ``columns``."""
    from .data import GROUP_COLUMNS

    mapped = {schema: yours for schema, yours in (columns or {}).items() if schema in GROUP_COLUMNS}
    return {mapped.get(g, g) for g in GROUP_COLUMNS}


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

    laws = [get_law(name) for name in (args.names or sorted(REGISTRY))]
    rows = [law.describe() for law in laws]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for law, d in zip(laws, rows):
        print(f"{d['name']}: {d['formula']}")
        print(f"  inputs: {', '.join(d['inputs'])}")
        forms = [f"{law.name}:{option}" for option in law.options or ()] if law.spec == law.name else []
        if forms:   # the same law with another input or number of breaks, e.g. power:tokens
            print(f"  forms: {', '.join(forms)}")
        for k, v in d["params"].items():
            pool = f", pooled by {v['pool']}" if v["pool"] else ""
            print(f"  {k:<8} {v['prior']}{pool}  {v['doc']}")
        for k, doc in d["derived"].items():   # rows of the posterior summary computed from the parameters
            print(f"  {k:<8} (derived) {doc}")
    return 0


def _pool_from_args(args):
    """--pool alpha=family --pool E=none -> {"alpha": "family", "E": None}; None when not given.
    In a stack, --pool LAW:PARAM=GROUP (farseer:log_u=family) pools one law's parameter; a PARAM
    without a law goes to every law that has it."""
    if not args.pool:
        return None
    pairs = {k: (None if v.lower() in ("none", "shared") else v) for k, v in parse_pairs(args.pool, "--pool").items()}
    return _per_law_keys(pairs, args, "--pool", "GROUP")


def _priors_from_args(args):
    """--prior alpha='Normal(0.3, 0.1)'; in a stack --prior chinchilla:alpha=... for one law."""
    priors = parse_priors(args.prior)
    return _per_law_keys(priors, args, "--prior", "DIST") if priors else priors


def _per_law_keys(pairs: dict, args, option: str, value: str) -> dict:
    """Keys LAW:NAME (a law's name may hold a colon itself: power:tokens:E) as the Python API's
    per-law entries {LAW: {NAME: ...}}, beside the shared NAME keys; one law: one flat dict."""
    laws = [args.law] if isinstance(getattr(args, "law", None), str) else list(getattr(args, "law", None) or [])
    shared = {k: v for k, v in pairs.items() if ":" not in k}
    own: dict = {}   # law -> its own entries
    for key, setting in pairs.items():
        if ":" in key:
            law, _, name = key.rpartition(":")
            if law not in laws:
                raise BayescaleError(f"{option} {key}={setting or 'none'} names law {law!r}, which is not fitted here "
                                     f"(--law {','.join(laws) or '?'}); write LAW:PARAM={value} with one of them, "
                                     f"or PARAM={value} for every law that has the parameter")
            own.setdefault(law, {})[name] = setting
    if not own:
        return shared
    if len(laws) == 1:
        return {**shared, **own[laws[0]]}
    return {**shared, **own}   # the stack's reading: shared names to every law that has them, then each law's own


def option_type(read):
    """An argparse ``type`` from a reader that raises BayescaleError: argparse shows only the
    message of an ArgumentTypeError, so the reader's own words reach the user, before any file is
    read."""
    def convert(text):
        try:
            return read(text)
        except BayescaleError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    convert.__name__ = read.__name__
    return convert


def law_choice(text: str):
    """--law chinchilla, or --law chinchilla,farseer for a stacked fit of several laws."""
    # "chinchilla," must not quietly become a single-law fit
    names = comma_items(text, "--law", "one law (--law chinchilla) or several (--law chinchilla,farseer); "
                                       "`bayescale laws` lists them")
    return names[0] if len(names) == 1 else names


def _baseline_names(text: str) -> list[str]:
    """--baselines bootstrap,no-pool; '' for none."""
    if not text.strip():
        return []
    return comma_items(text, "--baselines", "--baselines bootstrap,no-pool (or '' for none)")


def _fit_names(text: str) -> list[str]:
    """compare --name a,b (repeatable)."""
    return comma_items(text, "--name", "--name a,b or --name a --name b")


def _offset_terms(text: str):
    """--offset family, or family,family*task."""
    terms = comma_items(text, "--offset", "--offset family or --offset family,family*task")
    return terms[0] if len(terms) == 1 else terms


def _fit_from_args(args, df):
    from .inference import fit

    pool = "none" if args.no_pool else _pool_from_args(args)
    return fit(
        df, law=args.law, pool=pool, priors=_priors_from_args(args), seed=args.seed,
        chains=args.chains, warmup=args.warmup, draws=args.draws, progress=_progress(args),
        columns=_column_map(args), duplicates=args.duplicates, discrepancy=args.discrepancy,
        offset=args.offset, discrepancy_by=args.discrepancy_by, target_accept=args.target_accept,
        strict=args.strict, max_draws=args.max_draws,
    )


def print_fit(fit, out=None, warned: set[str] = frozenset()) -> None:
    """The fit's summary; ``warned``: warnings already shown (the sampling problems once, not twice)."""
    out = out or sys.stdout  # looked up at call time, so redirected stdout is honoured
    if hasattr(fit, "fits"):   # a stacked fit: its weights, then each law's fit
        print(f"stacked fit of {len(fit.fits)} laws, PSIS-LOO stacking weights: "
              + ", ".join(f"{k} {w:.3f}" for k, w in fit.weights.items()), file=out)
        for note in fit.stack_notes:   # each law's own notes follow with its fit
            print(f"note: {note}", file=out)
        for name, one in fit.fits.items():
            print(f"\n--- {name} (weight {fit.weights[name]:.3f}) ---", file=out)
            print_fit(one, out, warned)
        return
    d = fit.diagnostics
    print(f"law {fit.law.spec}  ({fit.law.formula})  n_obs={fit.config['n_obs']}  pooled={fit.spec.pooled or 'none'}", file=out)
    if fit.reference_scales:   # what N0, D0 in the formula are: the priors on log_A0, ... are about them
        print("reference scales (near the data's centre; the formula is written about them): " + ", ".join(
            f"{REFERENCE_SYMBOL[k]} = {v:.4g}" if k in REFERENCE_SYMBOL else f"{k} centred at {v:.4g}"
            for k, v in fit.reference_scales.items()), file=out)
    cols = ["mean", "sd", "2.5%", "50%", "97.5%", "r_hat", "ess_bulk"]
    print(fit.summary()[cols].to_string(float_format=_fmt), file=out)
    disc = fit.spec.discrepancy
    print("model discrepancy: " + ("none (the law's own parameter uncertainty only)" if disc is None else
                                   f"walk with scale prior {disc.to_json()['prior']}"
                                   + (f", one per {disc.group} (shared scale)" if disc.group else "")), file=out)
    for term in fit.spec.offsets:
        print(f"group offset: by {term.group}, spread prior {term.to_json()['prior']}", file=out)
    print(f"diagnostics: max r_hat {d['max_rhat']:.3f}, min bulk ESS {d['min_ess_bulk']:.0f}, "
          f"divergences {d['divergences']}, mean leapfrog steps/draw {d['mean_steps_per_draw']:.1f} "
          "(over the sampled parameters; the table's derived rows can read a little worse)", file=out)
    from .results import SAMPLING_REMEDY

    problems = fit.sampling_problems()
    if problems and not any("; ".join(problems) in w for w in warned):
        # as fit warned when it was made (unless this command just showed that warning)
        print("sampling looks UNRELIABLE: " + "; ".join(problems) + f". {SAMPLING_REMEDY}.", file=out)
    for note in fit.notes:
        print(f"note: {note}", file=out)


def fit_record(fit) -> dict:
    """What print_fit says, as JSON: the law, the posterior summary, the model's terms, the
    sampling diagnostics and what they flag, the notes (a stack: its weights, then each law's)."""
    if hasattr(fit, "fits"):
        return {"law": fit.law_spec, "weights": fit.weights, "notes": list(fit.stack_notes),
                "fits": {name: fit_record(one) for name, one in fit.fits.items()}}
    disc = fit.spec.discrepancy
    table = fit.summary()[["mean", "sd", "2.5%", "50%", "97.5%", "r_hat", "ess_bulk"]]
    return {
        "law": fit.law.spec, "formula": fit.law.formula, "response": fit.response,
        "n_obs": fit.config["n_obs"], "pooled": dict(fit.spec.pooled),
        "reference_scales": {REFERENCE_SYMBOL.get(k, k): v for k, v in fit.reference_scales.items()},
        "discrepancy": None if disc is None else {"prior": disc.to_json()["prior"], "by": disc.group},
        "offsets": [{"by": t.group, "prior": t.to_json()["prior"]} for t in fit.spec.offsets],
        "parameters": json.loads(table.to_json(orient="index")),
        # r_hat of a one-chain fit is NaN, which JSON has no word for
        "diagnostics": {k: (None if isinstance(v, float) and math.isnan(v) else v)
                        for k, v in fit.diagnostics.items()},
        "sampling_problems": fit.sampling_problems(), "notes": fit.notes,
    }


def _check_out(out: str, flag: str = "--out", example: str = "fit.nc") -> None:
    """Refuse an impossible output file before a long fit, not after it."""
    path = Path(out)
    if path.is_dir():
        raise BayescaleError(f"{flag} {out} is a folder; give a file name such as {path / example}")
    if example.endswith(".nc"):
        check_fit_name(out, flag)
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


def _check_json_and_report(args, json_example: str) -> None:
    """--json FILE and --report DIR, both checked before any fitting."""
    if args.json:
        _check_out(args.json, "--json", json_example)
    if args.report:
        _check_out_dir(args.report, "--report")


def cmd_fit(args) -> int:
    _check_out(args.out)
    df = read_table(args.data, _column_map(args))
    try:
        fit, warned = _warning_once(lambda: _fit_from_args(args, df))
    except UnreliableSamplingError as exc:   # --strict: the fit is kept for inspection, the status says no
        exc.fit.save(args.out)   # a single law's fit, or every law's (a stack)
        print_fit(exc.fit)
        print(f"saved {args.out} for inspection only")
        print(f"bayescale: error: --strict: {exc}", file=sys.stderr)
        return STRICT_FAILED
    fit.save(args.out)
    print_fit(fit, warned=warned)
    print(f"saved {args.out}")
    return 0


def _load_fit(args):
    """The saved fit, with --weights LAW=W,... set on a stacked fit (e.g. equal weights where
    stacking put all on one law whose lead is within the noise)."""
    from .saved import load

    fit = load(args.fit)
    given = getattr(args, "weights", None)
    if given:
        if not hasattr(fit, "fits"):
            raise BayescaleError(f"--weights is for a stacked fit (bayescale fit --law a,b); {args.fit} is one law's "
                                 f"fit ({fit.law_spec})")
        fit.weights = parse_pairs(given, "--weights", float)   # checked: one per law, >= 0, summing to 1
    return fit


def _add_weights(s) -> None:
    s.add_argument("--weights", action="append", metavar="LAW=W[,LAW=W...]",
                   help="a stacked fit's weights instead of its PSIS-LOO stacking weights, one per law, "
                        "summing to 1 (e.g. chinchilla=0.5,farseer=0.5)")


def _fit_column_map(args, fit) -> dict:
    """--col, else the map the fit was made with (its rows may use the user's own names)."""
    given = _column_map(args)
    if given or fit is None:
        return given
    one = next(iter(fit.fits.values())) if hasattr(fit, "fits") else fit
    return dict(one.config.get("columns") or {})


def _points(args, fit) -> pd.DataFrame:
    mapping = _fit_column_map(args, fit)
    if args.data:
        return read_table(args.data, mapping)
    if not args.at:
        raise BayescaleError("give the points to predict: --at params=70B,tokens=1.4T (repeatable) or --data FILE")
    from .data import GROUP_COLUMNS

    # group labels under their own names or the user's (--col family=team)
    labels = set(GROUP_COLUMNS) | {yours for schema, yours in mapping.items() if schema in GROUP_COLUMNS}
    known = None
    if fit is not None:   # a misspelt name (famly=dense) must not be dropped in silence
        law = next(iter(fit.fits.values())).law if hasattr(fit, "fits") else fit.law
        known = (set(law.inputs) | set(GROUP_COLUMNS) | set(law.extras) | set(law.mean_extras) | {"compute"}
                 | set(mapping.values()))
    rows = []
    for item in args.at:
        pairs = parse_pairs([item], "--at")
        unknown = sorted(set(pairs) - known) if known is not None else []
        if unknown:
            raise BayescaleError(f"--at: unknown column(s) {unknown}; this fit knows {sorted(known)}")
        # labels stay as typed (family=1 is the label '1', not 1.0); every other column is a number
        rows.append({k: v if k in labels else parse_number(v, f"--at {k}") for k, v in pairs.items()})
    if fit is not None:
        _check_compute(rows, law)
    every = set().union(*rows)
    for item, row in zip(args.at, rows):   # a column missing from one point would reach the fit as NaN
        if set(row) != every:
            missing = sorted(every - set(row))
            raise BayescaleError(f"--at {item} lacks {missing}, which another --at gives: give every point the "
                                 f"same columns, e.g. --at {item},{missing[0]}=...")
    points = pd.DataFrame(rows)
    points.attrs["source_at"] = True   # errors about these rows name --at, not a table's rows and columns
    return points


def _check_compute(rows: list[dict], law) -> None:
    """--at compute=... for a law in params and tokens: it must agree with 6·params·tokens (it
    is not used otherwise), and it does not stand in for tokens."""
    if "compute" in law.inputs or not {"params", "tokens"} <= set(law.inputs):
        return
    for row in rows:
        if "compute" not in row:
            continue
        if "tokens" not in row and "params" in row:
            raise BayescaleError(
                f"--at compute: law {law.spec!r} takes params and tokens; give tokens="
                f"{row['compute'] / (6 * row['params']):.4g} (compute / (6·params)) instead of compute")
        if "tokens" in row and "params" in row:
            implied = 6.0 * row["params"] * row["tokens"]
            if abs(row["compute"] / implied - 1.0) > 0.01:
                raise BayescaleError(
                    f"--at compute={row['compute']:g} disagrees with 6·params·tokens = {implied:.4g}; "
                    f"law {law.spec!r} uses params and tokens, so leave compute out or correct it")


def _warning_once(call):
    """``call()`` and the texts of the warnings it gave, shown as they came: a command then prints
    as a note only what was not already said as a warning (predictions keep every note in their
    attrs and JSON)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = call()
    for w in caught:
        sys.stderr.write(warnings.formatwarning(w.message, w.category, w.filename, w.lineno))
    return result, {str(w.message) for w in caught}


def cmd_predict(args) -> int:

    if args.chain:
        args.kind = args.kind or "mean"
        if args.kind == "curve":   # a chain's downstream law is evaluated at drawn losses: no curve of its own
            raise BayescaleError("--kind curve is for one fit; with --chain use --kind mean (the expected "
                                 "rate) or --kind observation (a new run's measured rate, needs trials)")
        return _predict_chain(args)
    args.kind = args.kind or "observation"
    if not args.fit:
        raise BayescaleError("give a saved fit (bayescale predict FIT.nc ...) or --chain LOSS_FIT.nc DOWNSTREAM_FIT.nc")
    fit = _load_fit(args)
    points = _points(args, fit)
    levels = tuple(args.level) if args.level else LEVELS
    pred, warned = _warning_once(lambda: fit.predict(points, levels=levels, kind=args.kind, seed=args.seed,
                                                     columns=_column_map(args) or None))
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
            if note not in warned:   # a warning already said it
                print(f"note: {note}")
    return 0


def _predict_chain(args) -> int:
    from .chaining import chain
    from .data import apply_column_map

    if args.fit:
        raise BayescaleError("give either a fit or --chain LOSS_FIT.nc DOWNSTREAM_FIT.nc, not both")
    ch = chain(*args.chain)
    points = apply_column_map(_points(args, None), _column_map(args))
    levels = tuple(args.level) if args.level else LEVELS
    pred, warned = _warning_once(lambda: ch.predict(points, levels=levels, kind=args.kind,
                                                    loss_kind=args.loss_kind, seed=args.seed))
    law = ch.downstream_fit.law
    notes = pred.attrs.get("notes", [])
    if args.json:
        print(json.dumps({"loss_law": ch.loss_fit.law.spec, "law": law.spec, "kind": args.kind,
                          "loss_kind": args.loss_kind, "notes": notes,
                          "predictions": json.loads(pred.to_json(orient="records"))}, indent=2))
    else:
        print(f"{args.kind} of {law.response} from {law.spec}, at the loss of {ch.loss_fit.law.spec} "
              f"({args.loss_kind}), draw by draw")
        print(pred.to_string(index=False, float_format=_fmt))
        for note in notes:
            if note not in warned and note.partition("loss fit: ")[2] not in warned:
                print(f"note: {note}")
    return 0


def cmd_summary(args) -> int:
    from .saved import load

    fit = load(args.fit)
    if args.json:
        print(json.dumps(fit_record(fit), indent=2))
    else:
        print_fit(fit)
    return 0


def cmd_allocate(args) -> int:

    fit = _load_fit(args)
    labels = parse_pairs(args.label, "--label")
    table, warned = _warning_once(lambda: fit.optimal_allocation(args.compute, levels=(0.9,), **labels))
    if args.json:   # the envelope of predict --json: what was fitted and the notes, beside the numbers
        print(json.dumps({"law": fit.law_spec, "notes": table.attrs.get("notes", []),
                          **({"weights": fit.weights} if hasattr(fit, "weights") else {}),
                          "allocations": json.loads(table.to_json(orient="records"))}, indent=2))
    else:
        cols = ["compute"] + [f"{q}_{s}" for q in ("params", "tokens", "loss")
                              for s in ("median", "lower_90", "upper_90")]
        print(table[cols].to_string(index=False, float_format=_fmt))
        for note in table.attrs.get("notes", []):
            if note not in warned:
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

    return datasets.holdout(dataset_source(data)[0], df)


def cmd_calibrate(args) -> int:
    from .heldout import calibrate

    _check_json_and_report(args, "out.json")
    df = read_table(args.data, _column_map(args))
    natural = _natural_holdout(args.holdout, args.data, df, "DATA = dataset:NAME")
    pool = _pool_from_args(args)
    baselines = tuple(args.baselines)
    result = calibrate(
        df, args.law, args.holdout, by=args.by, discrepancy=args.discrepancy, pool=pool,
        offset=args.offset, discrepancy_by=args.discrepancy_by, target_accept=args.target_accept,
        priors=_priors_from_args(args),
        seed=args.seed, chains=args.chains, warmup=args.warmup, draws=args.draws, n_boot=args.n_boot,
        baselines=baselines, natural=natural, progress=_progress(args),
        columns=_column_map(args), duplicates=args.duplicates, strict=args.strict,
    )
    print(f"law {result.law}, holdout {result.holdout}: {result.n_train} training runs, "
          f"{result.n_heldout} held out")
    print(result.table().to_string(float_format=_fmt))
    for line in result.skipped_baselines():   # asked for (by default or by name) but not run: why
        print(line)
    for line in result.sampling_warnings():
        print(line)
    print(result.width_explanation())
    loaded = set(df.attrs.get("notes", []))   # warned about when the table was read
    for note in result.summary.get("notes", []):
        if note not in loaded:
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

    from .sbc import MAX_FAILED_SHARE

    design = read_table(args.design) if args.design else None
    result = sbc(args.law, design, n_sims=args.n_sims, seed=args.seed, chains=args.chains, warmup=args.warmup,
                 draws=args.draws, thin=args.thin, bins=args.bins, pool=_pool_from_args(args),
                 priors=_priors_from_args(args), sampler=args.sampler, scheduler=args.scheduler,
                 progress=_progress(args), discrepancy=None if args.discrepancy == "none" else args.discrepancy)
    print(result)
    model = ("the law alone" if args.discrepancy == "none" else
             f"the law with the discrepancy walk ({args.discrepancy})")
    print(f"model: {model}, simulated from its prior and fitted to {result.settings['design_rows']} runs per simulation")
    reasons = result.failure_reasons()
    for reason, count in reasons.items():
        print(f"failed: {count} simulation(s): {reason}")
    if result.pvalues:
        print(result.summary().to_string(float_format=_fmt))
    passes = result.passes(0.01)
    if result.n_failed > MAX_FAILED_SHARE * result.n_sims:
        verdict = (f"no verdict: {result.n_failed} of {result.n_sims} simulations failed (more than "
                   f"{MAX_FAILED_SHARE:.0%}), so the ranks describe only part of the prior")
    else:
        verdict = f"rank uniformity {'not rejected' if passes else 'REJECTED'} at family-wise 1 %"
    print(verdict)
    if args.json:
        Path(args.json).write_text(json.dumps({
            "law": result.law, "n_sims": result.n_sims, "n_failed": result.n_failed, "failures": reasons,
            "pvalues": result.pvalues, "passes": passes, "verdict": verdict, "model": model, "settings": {
                k: v for k, v in result.settings.items() if k in ("seed", "sampler", "chains", "warmup",
                                                                   "draws", "thin", "discrepancy",
                                                                   "design_rows")}}, indent=2))
        print(f"wrote {args.json}")
    return 0 if passes else 1


def cmd_report(args) -> int:
    from .report import fit_report

    _check_out_dir(args.out, "--out")
    fit = _load_fit(args)
    targets = _points(args, fit) if (args.at or args.data) else None
    budgets = args.compute or []
    path = fit_report(fit, args.out, targets, budgets, seed=args.seed)
    print(f"wrote {path}")
    return 0


def cmd_plan(args) -> int:
    from .next_runs import plan

    _check_json_and_report(args, "plan.json")
    fit = _load_fit(args)
    if not args.at or len(args.at) != 1:
        raise BayescaleError("give one target run: --at params=7e10,tokens=1.4e12 (and its group labels, if any)")
    target = _points(args, fit)
    candidates = read_table(args.candidates, _column_map(args)) if args.candidates else None
    budget = args.budget
    with warnings.catch_warnings():   # a failing fit's diagnostics are printed below as a note
        warnings.simplefilter("ignore", UnreliableSampling)
        result = plan(fit, target, candidates, budget=budget, batch=args.batch, method=args.method, seed=args.seed)
    chosen = result.chosen
    print(f"target's 90% interval width now {_fmt(result.width_now)} ({result.response}); "
          f"{len(chosen)} run(s) chosen ({result.method} estimate), cost {_fmt(chosen['cost'].sum())} FLOP"
          + (f" of the budget {_fmt(budget)}" if budget else ""))
    if len(chosen):
        print(f"expected width after them: {_fmt(chosen['width_90_after'].iloc[-1])}")
        print(chosen.to_string(index=False, float_format=_fmt))
    for note in result.notes:
        print(f"note: {note}")
    if args.json:
        from .files import write_atomically

        text = json.dumps(result.to_json(), indent=2)
        write_atomically(args.json, lambda tmp: Path(tmp).write_text(text), example="plan.json")
        print(f"wrote {args.json}")
    if args.report:
        from .report.plan_page import plan_report

        print(f"wrote {plan_report(result, args.report)}")
    return 0


def cmd_compare(args) -> int:
    from . import comparison
    from .saved import load

    if args.json:
        _check_out(args.json, "--json", "compare.json")
    fits = [load(path) for path in args.fits]
    if args.name:   # "--name a,b" as "--name a --name b", as other options take several values
        args.name = [name for names in args.name for name in names]
    elif len(fits) > 1:   # two fits of one law (e.g. with and without the walk): their files name them
        laws = [f.law_spec for f in fits]
        stems = [Path(p).stem for p in args.fits]
        if len(set(laws)) < len(laws) and len(set(stems)) == len(stems):
            args.name = stems
    scores = None
    if not args.holdout:   # the sampling options are for --holdout's refits: without it they would do nothing
        given = [f"--{k}" for k, default in (("chains", 4), ("warmup", 1000), ("draws", 1000), ("seed", 0))
                 if getattr(args, k, default) != default]
        given += [o for o, v in (("--data", args.data), ("--col", getattr(args, "col", None))) if v]
        if given:
            raise BayescaleError(f"{', '.join(given)} set how compare --holdout "
                                 "refits the laws on a split; without --holdout compare ranks the saved fits as they "
                                 "are (PSIS-LOO) and refits nothing: add --holdout top-compute:0.1, or drop them")
    if args.holdout:
        if not args.data:
            raise BayescaleError("--holdout needs the table the fits were made on: --data FILE or dataset:NAME")
        df = read_table(args.data, _column_map(args))
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

class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Examples (the epilog) printed as written, and every option's default shown unless its help
    already says it or there is none to show."""

    def _get_help_string(self, action):
        text = action.help or ""
        default = action.default
        shown = not (default is None or default is False or default is argparse.SUPPRESS or default == "")
        if (shown and "default" not in text
                and (action.option_strings or action.nargs in (argparse.OPTIONAL, argparse.ZERO_OR_MORE))):
            text += " (default: %(default)s)"
        return text


class _Parser(argparse.ArgumentParser):
    """argparse, except that a usage error is one line on stderr and exit 2, like any user error,
    naming the help of the command it is about (`bayescale fit --help`)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", _HelpFormatter)   # subcommands' parsers too
        super().__init__(*args, **kwargs)

    def error(self, message):
        if message == "argument --json: expected one argument":   # a flag elsewhere: this one writes a file
            message = "--json takes the file to write, e.g. --json out.json"
        # "argument --law: --law 'a,' has ...": an option's reader already names the option
        message = re.sub(r"^argument (\S+): (?=\1 )", "", message)
        self.exit(2, f"bayescale: error: {message} (see `{self.prog} --help`)\n")

    def parse_args(self, args=None, namespace=None):
        # argparse reports an unknown option of a subcommand from the top parser, whose help does
        # not list it: report it from the subcommand that was given instead
        argv = list(sys.argv[1:] if args is None else args)
        parsed, extras = self.parse_known_args(argv, namespace)
        if extras:
            parser = self._innermost(parsed)
            after_json = [e for e in extras if argv.index(e) > 0 and argv[argv.index(e) - 1] == "--json"]
            if after_json and getattr(parsed, "json", None) is True:
                # quick commands print their JSON; the long ones (calibrate, plan, ...) write a file
                parser.error(f"{parser.prog} --json prints JSON and takes no file name ({after_json[0]!r}); "
                             f"to keep it, redirect it: {parser.prog} ... --json > {after_json[0]}")
            parser.error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed

    def _innermost(self, parsed) -> argparse.ArgumentParser:
        parser = self
        while True:
            chosen = next((a.choices[getattr(parsed, a.dest)] for a in parser._actions
                           if isinstance(a, argparse._SubParsersAction)
                           and getattr(parsed, a.dest, None) in a.choices), None)
            if chosen is None:
                return parser
            parser = chosen


def command(sub, name: str, summary: str, examples, **kwargs) -> argparse.ArgumentParser:
    """A subcommand whose --help starts with ``summary`` and ends with example lines."""
    epilog = "examples:\n" + "\n".join(f"  {line}" for line in examples)
    return sub.add_parser(name, help=summary, description=summary[0].upper() + summary[1:] + ".",
                          epilog=epilog, **kwargs)


def law_names_help() -> str:
    """The registered laws by base name (from the law registry), for --law's help."""
    from .models import REGISTRY

    return (f"one of {', '.join(sorted(REGISTRY))}; some take a form after a colon, e.g. power:tokens "
            "or bnsl:2 (`bayescale laws` lists the forms and formulas)")


def _add_data_and_law(s) -> None:
    """The table, the law(s), the model discrepancy and NUTS's target acceptance: shared by `fit`
    and `calibrate`."""
    s.add_argument("data", help="CSV or Parquet file, or dataset:NAME (`bayescale datasets list`; "
                                "dataset:demo is the built-in synthetic table)")
    s.add_argument("--law", default="chinchilla", metavar="LAW[,LAW...]", type=option_type(law_choice),
                   help=f"the law: {law_names_help()}. Several comma-separated (chinchilla,farseer): each "
                        "is fitted and predictions mix them by PSIS-LOO stacking weights")
    s.add_argument("--discrepancy", default="auto", metavar="auto|none|PRIOR",
                   help="model-discrepancy term that widens intervals beyond the fitted runs: auto (default: "
                        "its scale's prior learned across public studies), none (the law alone), or a "
                        "prior for its scale such as 'LogNormal(-4, 1)'")
    s.add_argument("--discrepancy-by", default="auto", metavar="auto|none|GROUP",
                   help="a discrepancy walk per group, all with one scale: auto (default: per label of the "
                        "grouping the law's parameters vary by, when there is one), none (one walk for every "
                        "run), or a grouping column (family, dataset, task)")
    s.add_argument("--offset", metavar="GROUP[,GROUP*GROUP]", type=option_type(_offset_terms),
                   help="a shift of the curve per GROUP (family, dataset or task), shared across scales and "
                        "across the groupings the law's parameters vary by: for runs from families that are "
                        "consistently better or worse than the law at every size. An interaction such as "
                        "family*task gives each (family, task) pair its own shift; several terms are "
                        "comma-separated, e.g. family,family*task (default: none)")
    s.add_argument("--target-accept", action=Numbers, many=False, metavar="P",
                   what="a target acceptance rate between 0 and 1", si=False, examples="0.95 or 0.99",
                   help="NUTS's target acceptance rate in (0, 1): higher (0.95, 0.99) takes smaller steps, "
                        "for posteriors with divergences (default 0.99 with a discrepancy, 0.95 with pooling, else 0.8)")
    _add_strict(s)


def _add_strict(s) -> None:
    s.add_argument("--strict", action="store_true",
                   help=f"exit with status {STRICT_FAILED} when a fit's r_hat, bulk ESS or divergences fail "
                        "(`fit` still saves it, for inspection)")


def _add_sampling(s, draws: int | None = 1000, chains: int = 4, warmup: int = 1000) -> None:
    s.add_argument("--seed", type=int, default=0, help="random seed, in [0, 2^32)")
    s.add_argument("--chains", type=int, default=chains, help="NUTS chains")
    s.add_argument("--warmup", type=int, default=warmup, help="warmup (adaptation) iterations per chain")
    if draws is not None:
        s.add_argument("--draws", type=int, default=draws, help="draws per chain")


def _add_quiet(s, what: str = "no progress bars") -> None:
    s.add_argument("--quiet", action="store_true",
                   help=f"{what} (bars are drawn on stderr only when it is a terminal)")


def _add_col(s) -> None:
    s.add_argument("--col", action="append", metavar="SCHEMA=YOURS",
                   help="your column names, e.g. params=n_params,loss=val_loss (repeatable)")


def _add_pool_and_prior(s) -> None:
    s.add_argument("--pool", action="append", metavar="PARAM=GROUP",
                   help="a law parameter that varies by a grouping column, e.g. log_A0=family; "
                        "PARAM=none shares it (repeatable; default: the law's own pooling). With several "
                        "laws it goes to each law that has PARAM; LAW:PARAM=GROUP (farseer:log_u=family) "
                        "to one law")
    s.add_argument("--prior", action="append", metavar="PARAM=DIST",
                   help="a prior, e.g. alpha='Normal(0.3, 0.1)' (repeatable). With several laws it goes to each "
                        "law that has PARAM; LAW:PARAM=DIST to one law")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="bayescale", description="Bayesian scaling laws with calibrated intervals.",
                epilog="examples:\n"
                       "  bayescale datasets export demo --out runs.csv   # a synthetic table to try things on\n"
                       "  bayescale fit runs.csv --law chinchilla --out fit.nc\n"
                       "  bayescale predict fit.nc --at params=70B,tokens=1.4T --level 0.5,0.9\n\n"
                       "`bayescale COMMAND --help` shows a command's options, defaults and examples.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = command(sub, "laws", "list the laws: formulas, inputs, parameters, priors",
                ["bayescale laws", "bayescale laws farseer power:tokens", "bayescale laws --json"])
    s.add_argument("names", nargs="*", metavar="LAW", help="only these laws (default: all)")
    s.add_argument("--json", action="store_true", help="print them as JSON")
    s.set_defaults(func=cmd_laws)

    s = command(sub, "fit", "fit a law to a table and save the posterior (netCDF)", [
        "bayescale fit runs.csv --law chinchilla --pool log_A0=family --out fit.nc",
        "bayescale fit runs.csv --law chinchilla,farseer --out stack.nc   # law uncertainty",
        "bayescale fit my_runs.csv --col params=n_params,loss=val_loss --out fit.nc --quiet"])
    _add_data_and_law(s)
    _add_pool_and_prior(s)
    s.add_argument("--no-pool", action="store_true", help="share every law parameter")
    _add_col(s)
    s.add_argument("--duplicates", choices=("error", "drop", "keep"), default="error",
                   help="what to do with repeated rows")
    _add_sampling(s, draws=None)
    s.add_argument("--draws", type=int, default=None,
                   help="draws per chain (default 1000, continued up to --max-draws when the diagnostics "
                        "miss their targets by what more draws can fix; a number given here is kept exactly)")
    s.add_argument("--max-draws", type=int, default=None, help="at least --draws; default 4000 with the default --draws")
    s.add_argument("--out", required=True, help="where to write the fit (.nc)")
    _add_quiet(s)
    s.set_defaults(func=cmd_fit)

    s = command(sub, "predict", "credible intervals at new points from a saved fit", [
        "bayescale predict fit.nc --at params=70B,tokens=1.4T --level 0.5,0.9",
        "bayescale predict fit.nc --data new_runs.csv --kind mean --json",
        "bayescale predict --chain loss.nc err.nc --at params=7B,tokens=2T"])
    s.add_argument("fit", nargs="?", help="a saved fit (.nc), from `bayescale fit`")
    _add_weights(s)
    s.add_argument("--chain", nargs=2, metavar=("LOSS_FIT", "DOWNSTREAM_FIT"),
                   help="accuracy at new (N, D): loss from the first fit fed into the second (a law of loss)")
    s.add_argument("--loss-kind", choices=("mean", "observation"), default="mean",
                   help="with --chain: the loss fit's curve or a new run's loss")
    s.add_argument("--at", action="append", metavar="params=70B,tokens=1.4T",
                   help=f"one point, NAME=VALUE pairs (repeatable); numbers as {SI_FORMS}")
    s.add_argument("--data", help="a table of points instead of --at")
    s.add_argument("--level", action=Numbers, what="interval levels between 0 and 1", si=False,
                   examples="0.5,0.9", metavar="L[,L...]",
                   help="interval level(s), e.g. 0.5,0.9 (repeatable; default 0.5 and 0.9)")
    s.add_argument("--kind", choices=("observation", "mean", "curve"), default=None,
                   help="observation (default for one fit): what a new run will measure, model "
                        "discrepancy and noise included; mean (default with --chain, where a new run's "
                        "score would need the number of questions): expected value (an accuracy for "
                        "accuracy-sigmoid); curve (one fit, not --chain): the law's own curve (for accuracy-sigmoid "
                        "the share above chance)")
    _add_col(s)
    s.add_argument("--seed", type=int, default=0, help="random seed of the predictive draws")
    s.add_argument("--json", action="store_true", help="print JSON instead of a table")
    s.set_defaults(func=cmd_predict)

    s = command(sub, "summary", "posterior summary and diagnostics of a saved fit", ["bayescale summary fit.nc"])
    s.add_argument("fit", help="a saved fit (.nc)")
    s.add_argument("--json", action="store_true",
                   help="print JSON instead of a table: law, parameters (mean, sd, quantiles, r_hat, ESS), "
                        "the model's terms, diagnostics, sampling problems and notes; a stack: weights and each law's")
    s.set_defaults(func=cmd_summary)

    s = command(sub, "allocate", "compute-optimal N*, D* and loss at given compute budgets", [
        "bayescale allocate fit.nc --compute 1e22,1e23",
        "bayescale allocate fit.nc --compute 3e24 --label family=dense --json"])
    s.add_argument("fit", help="a saved fit (.nc)")
    _add_weights(s)
    s.add_argument("--compute", action=Numbers, required=True, metavar="C[,C...]", what="FLOP budgets",
                   examples="1e22,1e23 or 3e24 (k/K = 1e3, M = 1e6, B/G = 1e9, T = 1e12, P = 1e15)",
                   help="FLOP budget(s), e.g. 1e22,1e23 (repeatable)")
    s.add_argument("--label", action="append", metavar="family=NAME",
                   help="the group to allocate for, e.g. family=dense (default: the population's typical parameter "
                        "values, a typical group; an unseen label draws a new group)")
    s.add_argument("--json", action="store_true",
                   help="print JSON instead of a table: law, notes, weights (a stack) and one record per budget "
                        "under 'allocations'")
    s.set_defaults(func=cmd_allocate)

    s = command(sub, "demo", "fit the built-in synthetic demo and extrapolate 100x beyond it", [
        "bayescale demo", "bayescale demo --out demo.nc --quiet"])
    s.add_argument("--seed", type=int, default=0, help="random seed, in [0, 2^32)")
    s.add_argument("--out", help="also save the demo fit (.nc)")
    _add_quiet(s)
    _add_strict(s)
    s.set_defaults(func=cmd_demo)

    s = command(sub, "calibrate", "fit on small runs, score predictions of held-out large runs", [
        "bayescale calibrate runs.csv --law chinchilla --holdout top-compute:0.1",
        "bayescale calibrate dataset:chinchilla_epoch --holdout natural --json out.json --report rep/",
        "bayescale calibrate runs.csv --baselines no-pool --by family --quiet"])
    _add_data_and_law(s)
    s.add_argument("--holdout", default="top-compute:0.1",
                   help="top-compute:FRACTION (the runs with the largest compute, that share of them) | largest-n:K (every run "
                        "of the K largest model sizes) | natural (dataset:NAME only: the dataset's own split)")
    s.add_argument("--by", help="apply the holdout per group, e.g. family")
    _add_pool_and_prior(s)
    _add_col(s)
    s.add_argument("--duplicates", choices=("error", "drop", "keep"), default="error",
                   help="what to do with repeated rows")
    s.add_argument("--baselines", default="bootstrap,no-pool", type=option_type(_baseline_names),
                   help="comma list: bootstrap (Huber + L-BFGS + bootstrap refits), no-pool (a fit per "
                        "group); '' for none")
    s.add_argument("--n-boot", type=int, default=1000, help="bootstrap refits of the bootstrap baseline")
    _add_sampling(s)
    s.add_argument("--json", metavar="OUT.json", help="write the summary as JSON")
    s.add_argument("--report", metavar="DIR", help="write report.html and plots")
    _add_quiet(s)
    s.set_defaults(func=cmd_calibrate)

    s = command(sub, "sbc", "simulation-based calibration of a law (exit status 1 if it fails, or if more than "
                "a tenth of the simulations fail)", [
        "bayescale sbc power --n-sims 50 --json sbc.json",
        "bayescale sbc chinchilla --discrepancy auto --n-sims 50",
        "bayescale sbc chinchilla --design runs.csv --pool log_A0=family"])
    s.add_argument("law", help=f"the law: {law_names_help()}")
    s.add_argument("--n-sims", type=int, default=100, help="simulated data sets")
    s.add_argument("--design", metavar="FILE",
                   help="CSV or Parquet of the runs to simulate (the law's inputs, and group columns for --pool); "
                        "default: a small grid over the law's inputs, one family")
    s.add_argument("--discrepancy", default="none", metavar="none|auto|PRIOR",
                   help="none (default): the law alone; auto: with the discrepancy walk and its cross-study prior "
                        "(what `bayescale fit` fits by default); or a prior for the walk's scale")
    _add_sampling(s, draws=400, chains=1, warmup=200)
    s.add_argument("--thin", type=int, default=4, help="keep every THIN-th draw for the ranks")
    s.add_argument("--bins", type=int, help="rank histogram bins (default: min(20, fits / 5))")
    _add_pool_and_prior(s)
    s.add_argument("--sampler", choices=("nuts", "hmc"), default="nuts",
                   help="nuts: one fit after another; hmc: all simulations in one compiled batch")
    s.add_argument("--scheduler", metavar="ADDRESS",
                   help="Dask distributed scheduler (e.g. tcp://host:8786): fit the batch on its workers")
    s.add_argument("--json", metavar="OUT.json", help="write p-values and settings as JSON")
    _add_quiet(s, "no progress bar")
    s.set_defaults(func=cmd_sbc)

    s = command(sub, "report", "one HTML page: what a new run at each target will reach (median and intervals), "
                "the compute-optimal allocation, the fit's plot, diagnostics, parameters and priors", [
                    "bayescale report fit.nc --out report/",
                    "bayescale report fit.nc --out report/ --at params=70B,tokens=1.4T --compute 1e24"])
    s.add_argument("fit", help="a saved fit (.nc)")
    s.add_argument("--out", required=True, metavar="DIR", help="folder for report.html (and fit.png)")
    _add_weights(s)
    s.add_argument("--at", action="append", metavar="params=7e10,tokens=1.4e12",
                   help="a target run (repeatable); default: the largest fitted run at 10x and 100x its compute")
    s.add_argument("--data", help="a table of targets instead of --at")
    s.add_argument("--compute", action=Numbers, metavar="C[,C...]", what="FLOP budgets",
                   help="budgets for the compute-optimal allocation, e.g. 1e24 (repeatable or comma-separated)")
    s.add_argument("--col", action="append", metavar="SCHEMA=YOURS", help="column mapping for --data")
    s.add_argument("--seed", type=int, default=0, help="seed of the predictive draws (as bayescale predict)")
    s.set_defaults(func=cmd_report)

    s = command(sub, "plan", "which runs to train next: the candidates that would narrow a target run's "
                "interval most per FLOP, chosen within a budget", [
                    "bayescale plan fit.nc --at params=70B,tokens=1.4T --budget 1e21",
                    "bayescale plan fit.nc --at params=7e10,tokens=1.4e12 --candidates runs.csv --budget 3e20 "
                    "--report plan/ --json plan.json"])
    s.add_argument("fit", help="a saved fit (.nc)")
    _add_weights(s)
    s.add_argument("--at", action="append", metavar="params=7e10,tokens=1.4e12", help="the target run (one)")
    s.add_argument("--candidates", metavar="RUNS.csv",
                   help="candidate runs (params, tokens[, group labels][, cost]); default: a grid of sizes "
                        "from the smallest fitted run to the target at 5-160 tokens per parameter")
    s.add_argument("--budget", action=Numbers, many=False, metavar="FLOP", what="a FLOP budget",
                   help="total compute for the chosen runs (6ND each), e.g. 1e21")
    s.add_argument("--batch", type=int, help="at most this many runs (default: fill the budget; one without)")
    s.add_argument("--method", choices=("gaussian", "importance"), default="importance",
                   help="how the expected width after the runs is computed: importance reweighting of the "
                        "fit's draws (default) or a Gaussian approximation (faster)")
    s.add_argument("--col", action="append", metavar="SCHEMA=YOURS", help="column mapping, e.g. params=n_params")
    s.add_argument("--data", help=argparse.SUPPRESS)
    s.add_argument("--seed", type=int, default=0, help="random seed of the predictive draws")
    s.add_argument("--json", metavar="OUT.json", help="write the ranked candidates and the chosen runs")
    s.add_argument("--report", metavar="DIR", help="write report.html with the width-against-cost plot")
    s.set_defaults(func=cmd_plan)

    s = command(sub, "compare", "rank saved fits of different laws on the same data (PSIS-LOO)", [
        "bayescale compare chinchilla.nc farseer.nc",
        "bayescale compare a.nc b.nc --holdout top-compute:0.1 --data runs.csv --json compare.json"])
    s.add_argument("fits", nargs="+", metavar="FIT.nc", help="saved fits of the same rows")
    s.add_argument("--name", action="append", type=option_type(_fit_names),
                   help="a name per fit, in order, comma-separated or repeated (default: the law)")
    s.add_argument("--holdout", help="also score held-out runs per law: top-compute:F | largest-n:K (every run of "
                                    "the K largest model sizes) | natural")
    s.add_argument("--data", help="the table the fits were made on (needed with --holdout)")
    _add_sampling(s)
    s.add_argument("--json", metavar="OUT.json", help="write the ranking as JSON")
    _add_quiet(s, "no progress bars (with --holdout)")
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
                status = int(args.func(args) or 0)
                sys.stdout.flush()   # inside the try: a reader that left raises here, not at exit
                return status
    except UnreliableSamplingError as exc:   # --strict
        print(f"bayescale: error: --strict: {exc}", file=sys.stderr)
        return STRICT_FAILED
    except BayescaleError as exc:
        print(f"bayescale: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bayescale: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:   # `bayescale summary fit.nc | head`: the reader left; stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    finally:
        warnings.formatwarning = old_format


def _format_warning(message, category, *args, **kwargs) -> str:
    if issubclass(category, BayescaleWarning):
        return f"bayescale: warning: {message}\n"
    return f"{category.__name__}: {message}\n"


if __name__ == "__main__":
    sys.exit(main())

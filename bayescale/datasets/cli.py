"""`bayescale datasets list | show NAME | export NAME --out FILE | fetch NAME`."""
from __future__ import annotations

import sys
import warnings
from pathlib import Path

from ..errors import BayescaleError, BayescaleWarning


def _options(items) -> dict:
    """--option exclude_outliers=false -> {"exclude_outliers": False}; numbers and booleans converted."""
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise BayescaleError(f"--option expects NAME=VALUE, got {item!r}")
        v = value.strip()
        low = v.lower()
        if low in ("true", "false"):
            out[key.strip()] = low == "true"
        else:
            try:
                out[key.strip()] = int(v)
            except ValueError:
                out[key.strip()] = v
    return out


def _load_quiet(args):
    """Load a dataset; fixes are printed as notes instead of warnings."""
    from . import load

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BayescaleWarning)
        return load(args.name, data_home=args.data_home, **_options(args.option))


def cmd_list(args) -> int:
    from .paths import find_home
    from .registry import REGISTRY

    home = find_home(args.data_home)
    print(f"data home: {home if home else 'not found (bayescale datasets fetch NAME)'}")
    print(f"{'demo':<28} SYNTHETIC demo: three model families simulated from known Chinchilla "
          "parameters  [built in]")
    for name in sorted(REGISTRY):
        t = REGISTRY[name]
        present = home is not None and (home / t.source.folder).is_dir()
        mark = "" if present else "  [not downloaded]"
        print(f"{name:<28} {t.card.title}{mark}")
    return 0


def cmd_show(args) -> int:
    from . import DEMO
    from .registry import format_card, get

    df = _load_quiet(args)
    print(f"demo: {df.attrs['description']}" if args.name == DEMO else format_card(get(args.name)))
    print(f"\ntable: {len(df)} rows x {len(df.columns)} columns; response '{df.attrs.get('response')}'")
    for col in ("params", "tokens", "compute", df.attrs.get("response")):
        if col in df:
            print(f"  {col:<10} {df[col].min():.4g} .. {df[col].max():.4g}")
    for col in (c for c in ("family", "dataset", "task") if c in df):
        labels = df[col].unique()
        shown = ", ".join(map(str, labels[:6])) + (", ..." if len(labels) > 6 else "")
        print(f"  {col:<10} {len(labels)} label(s): {shown}")
    from . import holdout

    if args.name != DEMO:   # the demo has no natural holdout
        mask = holdout(args.name, df)
        print(f"  holdout    {int(mask.sum())} row(s); training part {int((~mask).sum())}")
    for note in df.attrs.get("notes", []):
        print(f"note: {note}")
    return 0


def cmd_export(args) -> int:
    from ..files import write_atomically

    out = Path(args.out)
    parquet = out.suffix.lower() in (".parquet", ".pq")
    if not parquet and out.suffix.lower() not in (".csv", ".txt", ""):   # e.g. .xlsx: CSV text under that name
        raise BayescaleError(f"--out {args.out}: export writes CSV (.csv) or Parquet (.parquet), not "
                             f"{out.suffix}; e.g. --out {out.with_suffix('.csv').name}")
    # checked before loading, which can take a while; the file itself is written whole or not at all
    if out.is_dir():
        raise BayescaleError(f"--out {args.out} is a folder; give a file name such as {out / (args.name + '.csv')}")
    if out.exists() and not args.force:
        raise BayescaleError(f"--out {args.out} exists; add --force to replace it, or choose another name")
    if not out.parent.is_dir():
        raise BayescaleError(f"--out {args.out}: folder {out.parent} does not exist; create it first")
    df = _load_quiet(args)

    def write(tmp: str) -> None:
        try:
            if parquet:
                df.to_parquet(tmp, index=False)
            else:
                df.to_csv(tmp, index=False)
        except (ImportError, ValueError) as exc:
            raise BayescaleError(f"cannot write {args.out}: {exc}") from exc

    write_atomically(out, write, example=f"{args.name}.csv")
    print(f"wrote {len(df)} rows of {args.name} to {args.out}")
    for note in df.attrs.get("notes", []):
        print(f"note: {note}")
    return 0


def cmd_fetch(args) -> int:
    from .fetch import BASE_URL, fetch

    progress = (lambda msg: print(msg, file=sys.stderr)) if not args.quiet else None
    root = fetch(args.name, data_home=args.data_home, base_url=args.base_url or BASE_URL, progress=progress)
    print(f"{args.name}: files verified (sha256) in {root}")
    return 0


def _command(sub, name: str, summary: str, examples):
    """A subcommand whose --help starts with ``summary`` and ends with example lines."""
    return sub.add_parser(name, help=summary, description=summary[0].upper() + summary[1:] + ".",
                          epilog="examples:\n" + "\n".join(f"  {line}" for line in examples))


def add_parser(subparsers) -> None:
    p = _command(subparsers, "datasets", "public scaling datasets and the built-in demo: list, show, export, "
                 "fetch", ["bayescale datasets list", "bayescale datasets export demo --out runs.csv",
                           "bayescale datasets show chinchilla_epoch"])
    sub = p.add_subparsers(dest="datasets_command", required=True, metavar="COMMAND")

    def common(s, name=True):
        if name:
            s.add_argument("name", help="a dataset: demo (built in) or a public one (bayescale datasets list)")
        s.add_argument("--data-home", default=None, help="folder holding the dataset folders "
                       "(default: $BAYESCALE_DATA, ../shared/datasets, ~/.cache/bayescale/datasets)")

    s = _command(sub, "list", "the datasets: the built-in demo and the public ones, with what is downloaded",
                 ["bayescale datasets list", "bayescale datasets list --data-home ~/data/scaling"])
    common(s, name=False)
    s.set_defaults(func=cmd_list)

    s = _command(sub, "show", "the data card and a short summary of the table",
                 ["bayescale datasets show chinchilla_epoch", "bayescale datasets show gadre_overtraining --option eval=all"])
    common(s)
    s.add_argument("--option", action="append", metavar="NAME=VALUE", help="loader option, e.g. eval=all")
    s.set_defaults(func=cmd_show)

    s = _command(sub, "export", "write a dataset's table as CSV (or Parquet, by the file's suffix)",
                 ["bayescale datasets export demo --out runs.csv",
                  "bayescale datasets export chinchilla_epoch --out epoch.parquet --force"])
    common(s)
    s.add_argument("--out", required=True, help="the file to write: .csv (or .txt, also CSV text), or .parquet / .pq")
    s.add_argument("--force", action="store_true", help="replace --out if it exists")
    s.add_argument("--option", action="append", metavar="NAME=VALUE", help="loader option, e.g. eval=all")
    s.set_defaults(func=cmd_export)

    s = _command(sub, "fetch", "download the original files at the pinned commit (sha256-verified)",
                 ["bayescale datasets fetch chinchilla_epoch"])
    common(s)
    s.add_argument("--base-url", default=None, help="serves <owner>/<repo>/<commit>/<path> "
                   "(default: raw GitHub)")
    s.add_argument("--quiet", action="store_true", help="do not say which files are downloaded")
    s.set_defaults(func=cmd_fetch)

"""`bayescale datasets list | show NAME | export NAME --out FILE | fetch NAME`."""
from __future__ import annotations

import sys
import warnings

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
    for name in sorted(REGISTRY):
        t = REGISTRY[name]
        present = home is not None and (home / t.source.folder).is_dir()
        mark = "" if present else "  [not downloaded]"
        print(f"{name:<28} {t.card.title}{mark}")
    return 0


def cmd_show(args) -> int:
    from .registry import format_card, get

    print(format_card(get(args.name)))
    df = _load_quiet(args)
    print(f"\ntable: {len(df)} rows x {len(df.columns)} columns; response '{df.attrs.get('response')}'")
    for col in ("params", "tokens", "compute", df.attrs.get("response")):
        if col in df:
            print(f"  {col:<10} {df[col].min():.4g} .. {df[col].max():.4g}")
    for col in ("family", "dataset", "task"):
        labels = df[col].unique()
        shown = ", ".join(map(str, labels[:6])) + (", ..." if len(labels) > 6 else "")
        print(f"  {col:<10} {len(labels)} label(s): {shown}")
    from . import holdout

    mask = holdout(args.name, df)
    print(f"  holdout    {int(mask.sum())} row(s); training part {int((~mask).sum())}")
    for note in df.attrs.get("notes", []):
        print(f"note: {note}")
    return 0


def cmd_export(args) -> int:
    df = _load_quiet(args)
    try:
        if str(args.out).lower().endswith((".parquet", ".pq")):
            df.to_parquet(args.out, index=False)
        else:
            df.to_csv(args.out, index=False)
    except (OSError, ImportError, ValueError) as exc:
        raise BayescaleError(f"cannot write {args.out}: {exc}") from exc
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


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("datasets", help="public scaling datasets: list, show, export, fetch")
    sub = p.add_subparsers(dest="datasets_command", required=True)

    def common(s, name=True):
        if name:
            s.add_argument("name", help="a registered dataset (bayescale datasets list)")
        s.add_argument("--data-home", default=None, help="folder holding the dataset folders "
                       "(default: $BAYESCALE_DATA, ../shared/datasets, ~/.cache/bayescale/datasets)")

    s = sub.add_parser("list", help="registered datasets")
    common(s, name=False)
    s.set_defaults(func=cmd_list)

    s = sub.add_parser("show", help="the data card and a short summary of the table")
    common(s)
    s.add_argument("--option", action="append", metavar="NAME=VALUE", help="loader option, e.g. eval=all")
    s.set_defaults(func=cmd_show)

    s = sub.add_parser("export", help="write the loaded table as CSV (or Parquet)")
    common(s)
    s.add_argument("--out", required=True)
    s.add_argument("--option", action="append", metavar="NAME=VALUE", help="loader option, e.g. eval=all")
    s.set_defaults(func=cmd_export)

    s = sub.add_parser("fetch", help="download the original files at the pinned commit (sha256-verified)")
    common(s)
    s.add_argument("--base-url", default=None, help="serves <owner>/<repo>/<commit>/<path> "
                   "(default: raw GitHub)")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_fetch)

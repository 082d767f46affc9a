"""Reading a saved fit back: one law's fit, or a stacked fit of several laws."""
from __future__ import annotations

import gc
import sys
from pathlib import Path

from .errors import BayescaleError
from .integrity import damaged
from .results import Fit, load_idata
from .runtime import ensure_configured
from .stacking import read_stack


def load(path):
    """Read a fit written by :meth:`Fit.save` (or a stacked fit, :meth:`bayescale.stacking.StackedFit.save`)."""
    ensure_configured()   # like a first fit: reading a fit is where a session starts too
    path = Path(path)
    if not path.exists():
        raise BayescaleError(f"no fit file at {path}; write one with fit.save(path) or `bayescale fit --out`")
    if path.is_file():
        _refuse_text(path)
    try:
        stacked = read_stack(path)
        if stacked is not None:
            return stacked
        return Fit(load_idata(path))
    except BayescaleError:
        raise
    except Exception as exc:   # a damaged file fails in many libraries' ways: one clear error for all
        why = f"cannot read it ({type(exc).__name__}: {str(exc)[:200]})"
    _collect_quietly()   # outside the handler, so that the failed reader's frames are free
    raise damaged(path, why)


# Saved fits are netCDF-4 (HDF5); classic netCDF starts with "CDF". Anything else is not a fit.
_FIT_SIGNATURES = (b"\x89HDF\r\n\x1a\n", b"CDF")


def _refuse_text(path: Path) -> None:
    """A table of runs given where a fit belongs gets told what to do, not an HDF5 error."""
    with open(path, "rb") as fh:
        head = fh.read(4096)
    if not head or head.startswith(_FIT_SIGNATURES):
        return   # empty files and real netCDF files go on to the reader and its own errors
    try:
        first = head.decode("utf-8").splitlines()[0]
    except (UnicodeDecodeError, IndexError):
        return
    if any(sep in first for sep in (",", "\t", ";")):
        raise BayescaleError(
            f"{path} is a text table (its first line reads {first[:80]!r}), not a saved fit; fit it first: "
            f"`bayescale fit {path} --law chinchilla --out fit.nc`, then give fit.nc here")


def _collect_quietly() -> None:
    """Collect the half-opened file objects a damaged file leaves behind now, without the
    "Exception ignored in File.close" noise their finalisers print (h5netcdf)."""
    hook = sys.unraisablehook
    sys.unraisablehook = lambda _: None
    try:
        gc.collect()
    finally:
        sys.unraisablehook = hook

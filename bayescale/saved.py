"""Reading a saved fit back: one law's fit, or a stacked fit of several laws."""
from __future__ import annotations

from pathlib import Path

from .errors import BayescaleError
from .results import Fit, load_idata
from .runtime import ensure_configured
from .stacking import read_stack


def load(path):
    """Read a fit written by :meth:`Fit.save` (or a stacked fit, :meth:`bayescale.stacking.StackedFit.save`)."""
    ensure_configured()   # like a first fit: reading a fit is where a session starts too
    path = Path(path)
    if not path.exists():
        raise BayescaleError(f"no fit file at {path}; write one with fit.save(path) or `bayescale fit --out`")
    try:
        stacked = read_stack(path)
        if stacked is not None:
            return stacked
        idata = load_idata(path)
    except (OSError, ValueError) as exc:
        raise BayescaleError(f"{path} is not a readable netCDF fit file ({exc})") from exc
    return Fit(idata)

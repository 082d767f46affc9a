"""Saved fits are checked on load: a checksum of every array and of the metadata, finite draws.

A fit file that was damaged on disk (a flipped byte, a truncated copy, an edited attribute) must
not load as a fit that prints NaN or a wrong interval. :func:`stamp` records a SHA-256 of every
variable and coordinate of every group (and of their attributes), and of the posterior's
metadata in the posterior's attribute ``bayescale_checksums``; :func:`verify` recomputes them after
reading. Files written before checksums existed carry none: they are checked for finite draws and
readable metadata only.
"""
from __future__ import annotations

import hashlib
import json
from contextlib import contextmanager

import numpy as np

from .errors import BayescaleError

ATTR = "bayescale_checksums"


def damaged(path, why: str) -> BayescaleError:
    return BayescaleError(f"damaged or not a bayescale fit: {path}: {why}; write it again with fit.save(path) "
                          "or `bayescale fit --out`")


def _digest(values) -> str:
    """SHA-256 of an array's shape, kind and values: numbers by their bytes (as float64 or int64,
    so a reader's dtype does not matter), anything else by its text."""
    a = np.asarray(values)
    h = hashlib.sha256(repr(a.shape).encode())
    if a.dtype.kind in "fc":
        h.update(np.ascontiguousarray(a, dtype=np.complex128 if a.dtype.kind == "c" else np.float64).tobytes())
    elif a.dtype.kind in "iub":
        h.update(np.ascontiguousarray(a, dtype=np.int64).tobytes())
    else:
        h.update(json.dumps([str(v) for v in a.ravel()]).encode())
    return h.hexdigest()


def json_digest(obj) -> str:
    """SHA-256 of a JSON-able object, keys sorted (metadata, a stack's laws and weights)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def _metadata(posterior) -> str:
    return json_digest({k: str(v) for k, v in posterior.attrs.items() if k != ATTR})


def checksums(idata) -> dict[str, str]:
    """{"group/name": sha256} for every variable and coordinate, "group/name/attrs" for those that
    carry attributes (e.g. the scale ``observed_data.y`` is on), and "metadata" for the posterior's
    attributes."""
    out = {"metadata": _metadata(idata.posterior)}
    for group in idata.groups():
        ds = idata[group]
        for name in list(ds.data_vars) + list(ds.coords):
            out[f"{group}/{name}"] = _digest(ds[name].values)
            if ds[name].attrs:   # only then: files written before variables had attributes still verify
                out[f"{group}/{name}/attrs"] = json_digest({k: str(v) for k, v in ds[name].attrs.items()})
    return out


@contextmanager
def stamp(idata):
    """Within the block, the posterior carries the checksums of ``idata`` (for writing it)."""
    attrs = idata.posterior.attrs
    attrs[ATTR] = json.dumps(checksums(idata), sort_keys=True)
    try:
        yield idata
    finally:
        attrs.pop(ATTR, None)


def verify(idata, path) -> None:
    """Raise :func:`damaged` unless ``idata`` (just read from ``path``) matches its checksums and
    its posterior draws are finite. The checksum attribute is removed after the check."""
    if "posterior" not in idata.groups():
        raise damaged(path, "it has no posterior group")
    attrs = idata.posterior.attrs
    recorded = attrs.pop(ATTR, None)
    if recorded is not None:
        try:
            recorded = json.loads(recorded)
        except (TypeError, ValueError):
            raise damaged(path, "its checksum record is unreadable") from None
        now = checksums(idata)
        for key in sorted(set(recorded) | set(now)):
            if recorded.get(key) != now.get(key):
                what = ("its metadata" if key == "metadata" else
                        f"the attributes of {key[:-len('/attrs')]}" if key.endswith("/attrs") else f"array {key}")
                raise damaged(path, f"{what} does not match the checksum written with it")
    for name, var in idata.posterior.data_vars.items():
        values = np.asarray(var.values)
        if values.dtype.kind in "fc" and not np.all(np.isfinite(values)):
            raise damaged(path, f"posterior draws of {name} are not all finite")

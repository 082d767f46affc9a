"""Writing result files: whole or not at all, with the permissions the user's umask gives."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable

from .errors import BayescaleError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale(path: Path) -> None:
    """Temporary files of earlier saves to ``path`` whose process is gone (a save killed before its
    rename leaves one behind; nothing else would ever remove it)."""
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        parts = tmp.name[len(path.name) + 2:].split(".")
        if len(parts) >= 2 and parts[0].isdigit() and not _alive(int(parts[0])):
            try:
                tmp.unlink()
            except OSError:
                pass


# names that promise another format: a fit written there would be netCDF under a misleading name
NOT_NETCDF = (".csv", ".tsv", ".txt", ".json", ".parquet", ".pkl", ".pickle", ".xlsx", ".html", ".png")


def check_fit_name(path, flag: str = "") -> None:
    """A fit is saved as netCDF: refuse a file name whose suffix says it is something else."""
    suffix = Path(path).suffix.lower()
    if suffix in NOT_NETCDF:
        what = f"{flag} {path}" if flag else f"{path}"
        raise BayescaleError(f"{what}: a fit is saved as netCDF, not {suffix[1:]}; give a name ending in .nc "
                             f"(e.g. {Path(path).with_suffix('.nc').name}); for a table of the posterior, "
                             "write fit.summary() (CLI: bayescale summary FIT)")


def write_atomically(path, write: Callable[[str], None], example: str = "fit.nc") -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it into place, so a
    reader never sees a half-written file; the temporary file is removed on any failure, and the
    file gets the mode a newly created file would (0666 less the umask)."""
    path = Path(path)
    if path.is_dir():
        raise BayescaleError(f"cannot save to {path}: it is a folder; give a file name such as {example}")
    folder = path.parent
    if not folder.is_dir():
        raise BayescaleError(f"cannot save to {path}: folder {folder} does not exist")
    _remove_stale(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=folder)
        os.close(fd)
    except OSError as exc:
        raise BayescaleError(f"cannot write in {folder}: {exc}") from exc
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())   # mkstemp makes 0600
        os.replace(tmp, path)
    except OSError as exc:
        raise BayescaleError(f"cannot save to {path}: {exc}") from exc
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path

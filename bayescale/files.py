"""Writing result files: whole or not at all."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable

from .errors import BayescaleError


def write_atomically(path, write: Callable[[str], None], example: str = "fit.nc") -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it into place, so a
    reader never sees a half-written file; the temporary file is removed on any failure."""
    path = Path(path)
    if path.is_dir():
        raise BayescaleError(f"cannot save to {path}: it is a folder; give a file name such as {example}")
    folder = path.parent
    if not folder.is_dir():
        raise BayescaleError(f"cannot save to {path}: folder {folder} does not exist")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
        os.close(fd)
    except OSError as exc:
        raise BayescaleError(f"cannot write in {folder}: {exc}") from exc
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        raise BayescaleError(f"cannot save to {path}: {exc}") from exc
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path

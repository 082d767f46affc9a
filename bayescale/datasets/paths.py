"""Where the dataset files live: data_home= argument, then $BAYESCALE_DATA, then
../shared/datasets (relative to the working directory), then ~/.cache/bayescale/datasets."""
from __future__ import annotations

import os
from pathlib import Path

from ..errors import BayescaleError

ENV_VAR = "BAYESCALE_DATA"
SHARED = Path("..") / "shared" / "datasets"
CACHE = Path("~") / ".cache" / "bayescale" / "datasets"


def candidate_homes(data_home: str | os.PathLike | None = None) -> list[Path]:
    """The data homes to search, in order. An explicit data_home is the only candidate."""
    if data_home is not None:
        return [Path(data_home).expanduser()]
    homes = []
    if os.environ.get(ENV_VAR):
        homes.append(Path(os.environ[ENV_VAR]).expanduser())
    homes += [SHARED, CACHE.expanduser()]
    return homes


def default_fetch_home(data_home: str | os.PathLike | None = None) -> Path:
    """Where `fetch` writes: data_home=, else $BAYESCALE_DATA, else ~/.cache/bayescale/datasets."""
    if data_home is not None:
        return Path(data_home).expanduser()
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser()
    return CACHE.expanduser()


def find_home(data_home=None) -> Path | None:
    """The first candidate data home that exists (for tests and `datasets list`), or None."""
    for home in candidate_homes(data_home):
        if home.is_dir():
            return home
    return None


def source_dir(folder: str, data_home=None) -> Path:
    """The folder of one source, e.g. <home>/chinchilla_epoch; a clear error when it is missing."""
    homes = candidate_homes(data_home)
    for home in homes:
        if (home / folder).is_dir():
            return home / folder
    looked = ", ".join(str(h / folder) for h in homes)
    raise BayescaleError(
        f"dataset folder '{folder}' not found; looked in: {looked}. Get the data with "
        f"`bayescale datasets fetch {folder}` (downloads the original files into "
        f"{default_fetch_home(data_home)}), or point ${ENV_VAR} or data_home= at a folder that holds '{folder}/'"
    )


def data_file(folder: str, relpath: str, data_home=None) -> Path:
    """One file of a source; a clear error naming the file when it is missing."""
    root = source_dir(folder, data_home)
    path = root / relpath
    if not path.exists():
        raise BayescaleError(
            f"file '{relpath}' is missing from {root}; "
            f"re-download the source with `bayescale datasets fetch {folder}`"
        )
    return path

"""Download a source's original files at the pinned commit and verify their sha256."""
from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from ..errors import BayescaleError
from ._sha256 import SHA256
from .paths import default_fetch_home
from .registry import REGISTRY, Source

BASE_URL = "https://raw.githubusercontent.com"   # serves <owner>/<repo>/<commit>/<path>


def source_for(name: str) -> Source:
    """A registered dataset name or a source folder name -> its Source."""
    if name in REGISTRY:
        return REGISTRY[name].source
    for table in REGISTRY.values():
        if table.source.folder == name:
            return table.source
    raise BayescaleError(f"unknown dataset '{name}'; registered: {', '.join(sorted(REGISTRY))}")


def file_url(source: Source, relpath: str, base_url: str = BASE_URL) -> str:
    repo, commit, original = source.origin(relpath)
    return f"{base_url.rstrip('/')}/{repo}/{commit}/{urllib.parse.quote(original)}"


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _download(url: str, dest: Path, expected: str, timeout: float) -> None:
    tmp = dest.with_name(dest.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp, open(tmp, "wb") as out:
            while block := resp.read(1 << 20):
                out.write(block)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        tmp.unlink(missing_ok=True)
        raise BayescaleError(f"could not download {url}: {exc}; check the network or pass --base-url") from exc
    got = sha256_of(tmp)
    if got != expected:
        tmp.unlink(missing_ok=True)
        raise BayescaleError(f"sha256 mismatch for {url}: expected {expected}, got {got}; the file was not "
                             "saved. The server may serve a different commit or a corrupted copy")
    os.replace(tmp, dest)


def fetch(name: str, data_home=None, base_url: str = BASE_URL, timeout: float = 60.0,
          progress=None) -> Path:
    """Download every file of a source into <data_home>/<folder>/, verifying sha256.

    Files already present with the right hash are kept. Returns the source folder.
    """
    source = source_for(name)
    files = SHA256.get(source.folder)
    if not files:
        raise BayescaleError(f"no file list (sha256 manifest) registered for source '{source.folder}'")
    root = default_fetch_home(data_home) / source.folder
    for relpath, expected in files.items():
        dest = root / relpath
        if dest.exists() and sha256_of(dest) == expected:
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        url = file_url(source, relpath, base_url)
        if progress:
            progress(f"downloading {url}")
        _download(url, dest, expected, timeout)
    return root


def verify(name: str, data_home=None) -> list[str]:
    """Paths (relative to the source folder) whose sha256 differs from the registry, or that are missing."""
    from .paths import source_dir

    source = source_for(name)
    root = source_dir(source.folder, data_home)
    return [rel for rel, expected in SHA256.get(source.folder, {}).items()
            if not (root / rel).exists() or sha256_of(root / rel) != expected]

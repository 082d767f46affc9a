"""Download a source's original files at the pinned commit and verify their sha256.

The expected hashes live in `manifests/<source folder>.sha256`, one file per source in `sha256sum`
format (`<hex>  <path relative to the source folder>`), computed from the byte-identical copies
described in each PROVENANCE.md: `sha256sum -c` run inside a source folder checks it. Hashes only:
no data values live in this repository."""
from __future__ import annotations

import hashlib
import importlib.resources
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from ..errors import BayescaleError
from .paths import default_fetch_home
from .registry import REGISTRY, Source

BASE_URL = "https://raw.githubusercontent.com"   # serves <owner>/<repo>/<commit>/<path>
MANIFEST_SUFFIX = ".sha256"
_LINE = re.compile(r"([0-9a-f]{64}) [ *](.+)")


def _manifest_dir():
    return importlib.resources.files(__package__).joinpath("manifests")


def manifest_folders() -> list[str]:
    """The source folders that have a sha256 manifest, sorted."""
    return sorted(entry.name[:-len(MANIFEST_SUFFIX)] for entry in _manifest_dir().iterdir()
                  if entry.name.endswith(MANIFEST_SUFFIX))


def manifest(folder: str) -> dict[str, str]:
    """Relative path -> sha256 for one source folder, in the manifest's order ({} if it has none)."""
    resource = _manifest_dir().joinpath(folder + MANIFEST_SUFFIX)
    if not resource.is_file():
        return {}
    files: dict[str, str] = {}
    for lineno, line in enumerate(resource.read_text(encoding="utf-8").splitlines(), 1):
        match = _LINE.fullmatch(line)
        if match is None or match.group(2) in files:
            raise BayescaleError(f"malformed sha256 manifest for '{folder}', line {lineno}: {line!r}")
        files[match.group(2)] = match.group(1)
    return files


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
    files = manifest(source.folder)
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
    return [rel for rel, expected in manifest(source.folder).items()
            if not (root / rel).exists() or sha256_of(root / rel) != expected]

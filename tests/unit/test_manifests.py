"""The sha256 manifests shipped with the package: one per registered source, in `sha256sum` format."""
from __future__ import annotations

import re

import pytest

from bayescale.datasets import fetch as fetch_module
from bayescale.datasets.fetch import manifest, manifest_folders
from bayescale.datasets.registry import REGISTRY
from bayescale.errors import BayescaleError


def test_every_registered_source_has_a_manifest():
    folders = {table.source.folder for table in REGISTRY.values()}
    assert set(manifest_folders()) == folders
    for folder in folders:
        files = manifest(folder)
        assert files, folder
        assert all(re.fullmatch(r"[0-9a-f]{64}", h) for h in files.values())
        assert not any(p.startswith("/") or ".." in p.split("/") for p in files)


def test_unknown_folder_has_no_manifest():
    assert manifest("no_such_source") == {}


def test_malformed_manifest_is_a_clear_error(tmp_path, monkeypatch):
    (tmp_path / "bad.sha256").write_text("0" * 64 + "  ok.csv\nnot a hash  x.csv\n")
    monkeypatch.setattr(fetch_module, "_manifest_dir", lambda: tmp_path)
    with pytest.raises(BayescaleError, match="line 2"):
        manifest("bad")
    (tmp_path / "dup.sha256").write_text(("0" * 64 + "  a.csv\n") * 2)
    with pytest.raises(BayescaleError, match="line 2"):
        manifest("dup")

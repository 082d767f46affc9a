"""`bayescale datasets fetch` against a loopback HTTP server serving a copy of the original files."""
from __future__ import annotations

import functools
import http.server
import shutil
import threading
import warnings

import pytest

from bayescale import datasets
from bayescale.cli import main
from bayescale.datasets.fetch import (fetch, file_url, manifest, manifest_folders, sha256_of, source_for,
                                      verify)
from bayescale.datasets.paths import find_home
from bayescale.errors import BayescaleError

HOME = find_home()
NAME = "chinchilla_epoch"   # small, and spread over two upstream repositories
if HOME is None or not (HOME / NAME).is_dir():
    pytest.skip("public datasets not found: BAYESCALE_DATA / ../shared/datasets not found", allow_module_level=True)
HOME = HOME.resolve()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def served(tmp_path):
    """A copy of NAME laid out as <owner>/<repo>/<commit>/<original path>, served on 127.0.0.1."""
    root = tmp_path / "served"
    source = source_for(NAME)
    for rel in manifest(NAME):
        repo, commit, original = source.origin(rel)
        dest = root / repo / commit / original
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(HOME / NAME / rel, dest)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_urls_point_at_the_pinned_commit():
    source = source_for(NAME)
    url = file_url(source, "epoch-research_analyzing-chinchilla/data/svg_extracted_data.csv")
    assert url == ("https://raw.githubusercontent.com/epoch-research/analyzing-chinchilla/"
                   "92258837425e1b5f2851d624287f0120583a3d0e/data/svg_extracted_data.csv")
    assert source_for("pythia_evals") is source_for("pythia_evals")


def test_manifest_matches_the_local_files():
    for folder in manifest_folders():
        if (HOME / folder).is_dir():
            assert verify(folder) == [], f"{folder}: files differ from the registered sha256"
            present = {str(p.relative_to(HOME / folder)) for p in (HOME / folder).rglob("*") if p.is_file()}
            assert present - {"PROVENANCE.md"} == set(manifest(folder))


def test_fetch_over_loopback_then_load(served, tmp_path, capsys):
    _, url = served
    home = tmp_path / "home"
    rc = main(["datasets", "fetch", NAME, "--data-home", str(home), "--base-url", url, "--quiet"])
    assert rc == 0, capsys.readouterr().err
    for rel, digest in manifest(NAME).items():
        assert sha256_of(home / NAME / rel) == digest
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert len(datasets.load(NAME, data_home=home)) == 240
    # a second fetch finds every file verified and downloads nothing (the server is not needed)
    assert fetch(NAME, data_home=home, base_url="http://127.0.0.1:9") == home / NAME


def test_corrupted_file_fails_the_sha256_check(served, tmp_path, capsys):
    root, url = served
    source = source_for(NAME)
    rel = "epoch-research_analyzing-chinchilla/data/svg_extracted_data.csv"
    repo, commit, original = source.origin(rel)
    victim = root / repo / commit / original
    victim.write_bytes(victim.read_bytes().replace(b"5.005581996196243", b"1.005581996196243"))
    home = tmp_path / "home"
    with pytest.raises(BayescaleError, match="sha256 mismatch"):
        fetch(NAME, data_home=home, base_url=url)
    assert not (home / NAME / rel).exists() and not list((home / NAME).rglob("*.part"))
    assert main(["datasets", "fetch", NAME, "--data-home", str(home), "--base-url", url, "--quiet"]) == 2
    assert "sha256 mismatch" in capsys.readouterr().err


def test_missing_file_on_server_is_a_clear_error(served, tmp_path):
    root, url = served
    shutil.rmtree(root / "RylanSchaeffer")
    with pytest.raises(BayescaleError, match="could not download"):
        fetch(NAME, data_home=tmp_path / "home", base_url=url)


def test_fetch_default_destination_is_env(served, tmp_path, monkeypatch):
    _, url = served
    monkeypatch.setenv("BAYESCALE_DATA", str(tmp_path / "envhome"))
    assert fetch(NAME, base_url=url) == tmp_path / "envhome" / NAME

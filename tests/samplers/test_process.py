"""Importing bayescale changes nothing in the process; its process configuration is opt-in
(bayescale.runtime, called by the first fit or the CLI); and no module of the package assigns to
an attribute of a NumPyro module (the NUTS driver owns its adaptation instead of patching it).

Every process-level check runs in a fresh interpreter (``subprocess``)."""
from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import bayescale
from bayescale.runtime import cache_dir_from_env

PACKAGE = Path(bayescale.__file__).parent


def start_python(code: str, **env) -> subprocess.Popen:
    """Start ``code`` in a fresh interpreter (several run at once: each mostly waits on imports)."""
    base = {k: v for k, v in os.environ.items()
            if k not in ("BAYESCALE_JAX_CACHE", "JAX_COMPILATION_CACHE_DIR", "MPLBACKEND")}
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**base, "JAX_PLATFORMS": "cpu", **env})


def result_of(proc: subprocess.Popen) -> dict:
    """The JSON line a started interpreter printed last, as a dict."""
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def run_python(code: str, **env) -> dict:
    return result_of(start_python(code, **env))


# ---- import has no side effects ------------------------------------------------------------------

IMPORT = """
    import json
    import matplotlib
    import arviz
    backend = matplotlib.get_backend()
    numba = arviz.Numba.numba_flag if hasattr(arviz, "Numba") else None
    import bayescale, jax
    after_import = dict(cache=jax.config.jax_compilation_cache_dir, backend=matplotlib.get_backend(),
                        numba=arviz.Numba.numba_flag if hasattr(arviz, "Numba") else None)
    import bayescale.cli
    after_cli = dict(cache=jax.config.jax_compilation_cache_dir, backend=matplotlib.get_backend())
    print(json.dumps(dict(backend=backend, numba=numba, after_import=after_import, after_cli=after_cli)))
"""


def test_import_leaves_jax_matplotlib_and_arviz_alone(tmp_path):
    # a backend other than Agg, so that a module switching to Agg would show
    out = run_python(IMPORT, MPLBACKEND="svg", BAYESCALE_JAX_CACHE=str(tmp_path / "jax"))
    assert out["backend"].lower() == "svg"
    assert not out["after_import"]["cache"] and not out["after_cli"]["cache"]
    assert out["after_import"]["backend"] == out["backend"] and out["after_cli"]["backend"] == out["backend"]
    assert out["after_import"]["numba"] == out["numba"]


def test_import_alone_does_not_turn_on_the_compile_cache():
    out = run_python("import json, bayescale, jax; print(json.dumps([jax.config.jax_compilation_cache_dir]))")
    assert not out[0]


# ---- opt-in configuration --------------------------------------------------------------------------

def test_cache_dir_from_env(monkeypatch, tmp_path):
    monkeypatch.setenv("BAYESCALE_JAX_CACHE", "0")
    assert cache_dir_from_env() is None
    monkeypatch.setenv("BAYESCALE_JAX_CACHE", str(tmp_path))
    assert cache_dir_from_env() == str(tmp_path)
    monkeypatch.delenv("BAYESCALE_JAX_CACHE")
    assert cache_dir_from_env() == os.path.expanduser(os.path.join("~", ".cache", "bayescale", "jax"))


CONFIGURE = """
    import json, sys
    import arviz, jax
    import bayescale
    from bayescale import runtime
    mode = sys.argv[1] if len(sys.argv) > 1 else "{mode}"
    if mode == "user":
        jax.config.update("jax_compilation_cache_dir", "{user}")
    if mode == "opt-out":
        runtime.configure(compile_cache=False)
    if mode in ("user", "env", "opt-out", "fit"):
        import numpy as np, pandas as pd
        from bayescale.simulate import simulate
        df, _ = simulate("power", pd.DataFrame({{"params": np.geomspace(1e7, 1e10, 8)}}),
                         dict(E=1.8, log_A0=-0.5, alpha=0.35, sigma=0.03, nu=10.0), seed=0)
        bayescale.fit(df, "power", chains=1, warmup=20, draws=20, progress=False, discrepancy="none")
    else:
        runtime.configure()
    print(json.dumps(dict(cache=jax.config.jax_compilation_cache_dir, configured=runtime.is_configured(),
                          numba=arviz.Numba.numba_flag if hasattr(arviz, "Numba") else False)))
"""


MODES = ["configure", "fit", "env-off", "user", "opt-out"]


@pytest.fixture(scope="module")
def configured(tmp_path_factory) -> dict:
    """Each mode's interpreter, all started at once; {mode: (its output, its temporary folder)}."""
    started = {}
    for mode in MODES:
        tmp = tmp_path_factory.mktemp(mode.replace("-", "_"))
        env = {"BAYESCALE_JAX_CACHE": "0" if mode == "env-off" else str(tmp / "jax")}
        started[mode] = (start_python(CONFIGURE.format(mode=mode, user=str(tmp / "mine")), **env), tmp)
    return {mode: (result_of(proc), tmp) for mode, (proc, tmp) in started.items()}


@pytest.mark.parametrize("mode", MODES)
def test_configuration_is_opt_in_and_done_by_the_first_fit(mode, configured):
    out, tmp = configured[mode]
    assert out["configured"]
    expected = {"configure": str(tmp / "jax"), "fit": str(tmp / "jax"), "env-off": None,
                "user": str(tmp / "mine"), "opt-out": None}[mode]
    assert out["cache"] == expected or (expected is None and not out["cache"]), out
    assert out["numba"] is False   # ArviZ's numba off once configured


# ---- nothing assigns to NumPyro's modules -------------------------------------------------------------

ASSIGN = re.compile(r"^\s*(?:hmc_util|numpyro(?:\.\w+)+)\.\w+\s*(?:[-+*/|&]?=)(?!=)", re.M)
SETATTR = re.compile(r"setattr\(\s*(?:hmc_util|numpyro\b)")


def numpyro_patches(source: str) -> list[str]:
    """Lines of ``source`` that assign to an attribute of a numpyro module: by pattern
    (``hmc_util.x = ...``, ``numpyro.infer.x = ...``, ``setattr(numpyro...``) and by the AST
    (any name bound by ``import numpyro...`` / ``from numpyro... import <module>``, then
    ``name.attr = ...``, ``name.attr += ...`` or ``setattr(name, ...)``)."""
    found = [m.group(0).strip() for m in ASSIGN.finditer(source)]
    found += [m.group(0) for m in SETATTR.finditer(source)]
    tree = ast.parse(source)
    modules = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "numpyro":
                    modules.add(a.asname or a.name.split(".")[0])
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "numpyro":
            for a in node.names:
                if _is_module(f"{node.module}.{a.name}"):
                    modules.add(a.asname or a.name)

    def base(node):
        while isinstance(node, ast.Attribute):
            node = node.value
        return node.id if isinstance(node, ast.Name) else None

    for node in ast.walk(tree):
        targets = []
        if isinstance(node, (ast.Assign,)):
            targets = node.targets
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets = [node.target]
        for t in targets:
            if isinstance(t, ast.Attribute) and base(t) in modules:
                found.append(ast.unparse(t))
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "setattr"
                and node.args and base(node.args[0]) in modules):
            found.append(ast.unparse(node))
    return found


def _is_module(name: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def test_no_module_assigns_to_a_numpyro_module():
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 20 and PACKAGE / "samplers" / "nuts.py" in files
    offenders = {str(f.relative_to(PACKAGE)): hits for f in files if (hits := numpyro_patches(f.read_text()))}
    assert not offenders, offenders


@pytest.mark.parametrize("line", [
    "hmc_util.welford_covariance = mine",
    "numpyro.infer.hmc_util.welford_covariance = mine",
    "setattr(hmc_util, 'welford_covariance', mine)",
    "hu.welford_covariance = mine",          # an alias: found by the AST
    "setattr(hu, 'dual_averaging', mine)",
    "numpyro.primitives._PYRO_STACK += []",
])
def test_the_check_catches_a_planted_patch(line, tmp_path):
    """Control: the same check on a planted file finds each way of patching; clean code passes."""
    planted = tmp_path / "planted.py"
    planted.write_text("import numpyro\nfrom numpyro.infer import hmc_util\nimport numpyro.infer.hmc_util as hu\n"
                       f"mine = None\n{line}\n")
    assert numpyro_patches(planted.read_text())
    clean = "from numpyro.infer import hmc_util\nx = hmc_util.welford_covariance\nif x == 1:\n    pass\n"
    assert not numpyro_patches(clean)


def test_a_fit_leaves_every_numpyro_module_attribute_in_place():
    """At run time too: the objects bound in every loaded numpyro module are the same after a fit."""
    import numpy as np
    import pandas as pd

    from bayescale.simulate import simulate

    def snapshot():
        return {name: {k: id(v) for k, v in vars(mod).items()}
                for name, mod in list(sys.modules.items()) if name.split(".")[0] == "numpyro" and mod}

    df, _ = simulate("power", pd.DataFrame({"params": np.geomspace(1e7, 1e10, 9)}),
                     dict(E=1.8, log_A0=-0.5, alpha=0.35, sigma=0.03, nu=10.0), seed=1)
    bayescale.fit(df, "power", chains=1, warmup=30, draws=30, progress=False, discrepancy="none")   # modules loaded
    before = snapshot()
    bayescale.fit(df, "power", chains=2, warmup=60, draws=30, progress=False, dense_mass=False, discrepancy="none")
    after = snapshot()
    changed = {m: [k for k, v in attrs.items() if after.get(m, {}).get(k) != v] for m, attrs in before.items()}
    assert not {m: ks for m, ks in changed.items() if ks}


def test_importing_bayescale_in_a_fresh_home_prints_no_arviz_announcement(tmp_path):
    """ArviZ 0.x announces its 1.0 refactor with a multi-line FutureWarning on import in a fresh
    home; bayescale pins arviz < 1, so a first command must not show it. Control: arviz alone does."""
    import os
    import subprocess
    import sys

    def fresh(name):   # ArviZ says it once per home (it leaves a mark there): one home per import
        (tmp_path / name).mkdir()
        return {**os.environ, "HOME": str(tmp_path / name), "XDG_CONFIG_HOME": str(tmp_path / name / ".config"),
                "XDG_CACHE_HOME": str(tmp_path / name / ".cache")}

    ours = subprocess.run([sys.executable, "-W", "error::FutureWarning", "-c", "import bayescale"], env=fresh("a"),
                          capture_output=True, text=True)
    assert ours.returncode == 0, ours.stderr[-500:]
    theirs = subprocess.run([sys.executable, "-W", "error::FutureWarning", "-c", "import arviz"], env=fresh("b"),
                            capture_output=True, text=True)
    assert theirs.returncode != 0 and "ArviZ is undergoing" in theirs.stderr

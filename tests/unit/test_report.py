"""The report package draws on its own Figure objects: the host's matplotlib backend is left alone."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import bayescale.report

CHECK = """
import sys
import matplotlib
import numpy as np
import bayescale, bayescale.cli, bayescale.report as report
assert matplotlib.get_backend().lower() == "svg", matplotlib.get_backend()
out = sys.argv[1]
report.plot_pit({"bayescale (new observation)": np.linspace(0.05, 0.95, 30)}, out + "/pit.png")
report.plot_reliability({"bootstrap": {"coverage": {"0.5": 0.4, "0.9": 0.8}}}, out + "/reliability.png")
assert matplotlib.get_backend().lower() == "svg", matplotlib.get_backend()
import matplotlib.pyplot as plt
assert plt.get_fignums() == [], plt.get_fignums()   # no figure left registered with pyplot
"""


def test_backend_left_unchanged_and_no_pyplot_figures(tmp_path):
    env = dict(os.environ, MPLBACKEND="svg")
    proc = subprocess.run([sys.executable, "-c", CHECK, str(tmp_path)], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for name in ("pit.png", "reliability.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_sources_never_touch_pyplot_or_the_backend():
    for path in Path(bayescale.report.__file__).parent.glob("*.py"):
        text = path.read_text()
        assert not re.search(r"import\s+matplotlib\.pyplot|from\s+matplotlib\s+import\s+pyplot", text), path.name
        assert "matplotlib.use(" not in text, path.name


def test_public_names():
    assert set(bayescale.report.__all__) >= {"fit_report", "plot_fit", "plot_reliability", "plot_pit",
                                             "write_html", "plot_accuracy"}

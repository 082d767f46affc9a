"""Parameter recovery for every registered law, through one parametrised test.

Each case simulates a table from known, realistic parameter values (stated below, on the law's
centred scale: values at the design's geometric-mean reference N0 / D0 / C0, the same reference a
fit of those rows uses), fits it with NUTS on a small budget (2 chains x 300 warmup x 300 draws)
and requires, for every law parameter,

    z = |posterior mean - truth| / posterior sd  <  Z_MAX = 3.5

and at most MAX_DIVERGENCES divergent transitions. Under a calibrated posterior z is roughly
|N(0, 1)|, so 3.5 is a 1-in-2000 event per parameter; the seeds are fixed (the largest z over all
cases was checked offline on several seeds, see the comment at CASES).

The check must be able to fail: the last case fits data simulated from the saturating power law
(L = E + A (N/N0)^-0.34, E = 1.7) with Kaplan's pure power law (no E), which must violate Z_MAX for
the exponent and the intercept it shares with the true law.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bayescale.models import REGISTRY, get_law
from bayescale.simulate import simulate
from fit_helpers import MAX_DIVERGENCES, Z_MAX, fit_quietly, grid, z_scores

NOISE = {"sigma": 0.02, "nu": 30.0}  # 2 % log-loss noise, close to Gaussian


def one_input(col: str, lo: float, hi: float, n: int = 12) -> pd.DataFrame:
    return pd.DataFrame({col: np.geomspace(lo, hi, n)})


# (id, simulating law, fitting law, design, truth on the centred scale, seed, must_pass)
# Truth values follow the papers' fits re-expressed at the design's reference scale, e.g. for
# Chinchilla (Hoffmann et al.: E=1.69, A=406.4, alpha=0.34, B=410.7, beta=0.28) with N0 = 1e8 and
# D0 = 1e10: log_A0 = log(406.4) - 0.34 log(1e8) = -0.26 and log_B0 = log(410.7) - 0.28 log(1e10) = -0.43.
# Kaplan et al. (2020): alpha_N = 0.076, N_c = 8.8e13; alpha_D = 0.095, D_c = 5.4e13;
# alpha_C = 0.050, C_c = 3.1e8 PF-days = 2.7e28 FLOPs. The saturating laws in tokens and compute
# reuse E ~ 1.7 with B = 410.7, beta = 0.28 (tokens) and a compute exponent of 0.15 (illustrative).
# Seeds: every case was run offline with seeds 0, 1 and 2. The largest z over all passing cases
# and seeds was 2.68 (kaplan-nd, seed 1); with the seed used here (2) it is 1.52 (kaplan-nd), and
# the wrong-law control gives z = 31 (alpha) and 82 (log_A0), far beyond Z_MAX.
CASES = [
    ("power", "power", "power", one_input("params", 1e7, 1e10),
     {"E": 1.69, "log_A0": -0.65, "alpha": 0.34}, 2, True),
    ("power:tokens", "power:tokens", "power:tokens", one_input("tokens", 1e9, 1e12),
     {"E": 1.69, "log_A0": -0.75, "alpha": 0.28}, 2, True),
    ("power:compute", "power:compute", "power:compute", one_input("compute", 1e17, 1e21),
     {"E": 1.70, "log_A0": -0.50, "alpha": 0.15}, 2, True),
    ("kaplan-n", "kaplan-n", "kaplan-n", one_input("params", 1e7, 1e10),
     {"log_A0": 0.076 * np.log(8.8e13 / np.sqrt(1e7 * 1e10)), "alpha": 0.076}, 2, True),
    ("kaplan-d", "kaplan-d", "kaplan-d", one_input("tokens", 1e9, 1e12),
     {"log_A0": 0.095 * np.log(5.4e13 / np.sqrt(1e9 * 1e12)), "alpha": 0.095}, 2, True),
    ("kaplan-c", "kaplan-c", "kaplan-c", one_input("compute", 1e17, 1e21),
     {"log_A0": 0.050 * np.log(2.7e28 / np.sqrt(1e17 * 1e21)), "alpha": 0.050}, 2, True),
    ("kaplan-nd", "kaplan-nd", "kaplan-nd", grid(),
     {"L0": 3.0, "w": 0.4, "alpha_N": 0.076, "alpha_D": 0.103}, 2, True),
    ("chinchilla", "chinchilla", "chinchilla", grid(),
     {"E": 1.69, "log_A0": -0.26, "alpha": 0.34, "log_B0": -0.43, "beta": 0.28}, 2, True),
    # the control: right data, wrong law -> the same check must fail
    ("wrong-law:kaplan-n-on-power", "power", "kaplan-n", one_input("params", 1e7, 1e10),
     {"E": 1.69, "log_A0": -0.65, "alpha": 0.34}, 2, False),
]


# laws whose recovery tests live beside their other tests: law -> test file, under tests/laws/
RECOVERY_ELSEWHERE = {
    "farseer": "test_refined_loss_laws.py", "bnsl": "test_refined_loss_laws.py",
    "overtrain": "test_refined_loss_laws.py",
    "loss-to-error": "test_downstream_laws.py", "accuracy-sigmoid": "test_downstream_laws.py",
    "pass-until": "test_downstream_laws.py", "pass-at-k": "test_downstream_laws.py",
    "lr-annealing": "test_lr_annealing.py", "hyperparams": "test_hyperparams.py",
    "critical-batch": "test_critical_batch.py", "choice-mass": "test_choice_mass.py",
}
LAW_TESTS = Path(__file__).parents[1] / "laws"


def test_every_registered_law_has_a_recovery_case():
    laws = {get_law(c[2]).name for c in CASES if c[6]}
    for law, file in RECOVERY_ELSEWHERE.items():
        text = (LAW_TESTS / file).read_text()
        assert "recover" in text and (repr(law) in text or f'"{law}' in text), (law, file)
    covered = laws | set(RECOVERY_ELSEWHERE)
    assert covered == set(REGISTRY), f"recovery cases missing for {sorted(set(REGISTRY) - covered)}"
    powers = {c[2] for c in CASES if c[6] and c[2].startswith("power")}
    assert powers == {"power", "power:tokens", "power:compute"}


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_recovery(case):
    _, sim_law, fit_law, design, truth, seed, must_pass = case
    df, _ = simulate(get_law(sim_law), design, {**truth, **NOISE}, seed=seed)
    fit = fit_quietly(df, fit_law, seed=seed)   # low ESS on a small budget is expected
    z = z_scores(fit, truth, law_only=True)
    diag = fit.diagnostics
    report = f"{fit_law} on {sim_law} data: z={ {k: round(v, 2) for k, v in z.items()} }, diagnostics={diag}"
    if must_pass:
        assert set(z) == set(get_law(fit_law).params), report
        assert max(z.values()) < Z_MAX, report
        assert diag["divergences"] <= MAX_DIVERGENCES, report
    else:
        # a wrong law must be caught by the same bound, on the exponent the two laws share
        assert z["alpha"] > Z_MAX, report
        assert max(z.values()) > 3 * Z_MAX, report

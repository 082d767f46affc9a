"""SBC of a law with the model-discrepancy walk: simulate the walk from its prior with the law, fit
both. The control fits the law alone to the same data, and must fail: ignoring what the law
misses biases its parameters."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sbc_helpers import assert_calibrated, assert_control_fails, sbc_runs_in_fresh_processes

DESIGN = pd.DataFrame({"params": np.geomspace(1e7, 1e10, 16)})   # one curve over three decades
PRIOR = "HalfNormal(0.05)"
# a small noise scale, so that what the law misses is not absorbed as noise by the control;
# target_accept 0.95 rather than the default 0.99 with a walk: SBC checks the model, and at this
# budget the smaller steps would double the test's time
SETTINGS = dict(seed=2, chains=1, warmup=300, draws=400, thin=4, discrepancy=PRIOR,
                priors={"sigma": "HalfNormal(0.02)"}, target_accept=0.95)


# 40 simulations in the default suite (offline, seed 2: smallest p 0.12 for the correct model,
# 2.2e-5 for the control against a threshold of 0.0033); 200 with --run-slow
@pytest.mark.parametrize("n_sims", [pytest.param(40, id="ci"), pytest.param(200, id="full", marks=pytest.mark.slow)])
def test_sbc_with_discrepancy_and_control(n_sims):
    ok, control = sbc_runs_in_fresh_processes("power", DESIGN, dict(n_sims=n_sims, **SETTINGS),
                                              dict(n_sims=n_sims, fit_discrepancy="none", **SETTINGS))
    assert "disc_scale" in ok.pvalues
    assert_calibrated(ok, max_failed_share=0.05)
    assert "disc_scale" not in control.pvalues
    assert_control_fails(control)

"""SBC runs shared by the tests: the run itself, and the two verdicts every SBC test makes.

Each run happens in a new interpreter: late in a long pytest session (hundreds of XLA programs
compiled in one process) XLA's CPU compiler once crashed with SIGSEGV on these fits, while the same
fits passed in a fresh process. The result comes back pickled.
"""
from __future__ import annotations

import concurrent.futures
import multiprocessing

from bayescale.sbc import SBCResult, sbc
from bayescale.models import get_law

LEVEL = 0.01   # family-wise level of the rank-uniformity check (Bonferroni over parameters)


def _sbc(law, design, kwargs) -> SBCResult:
    return sbc(law, design, **kwargs)


def sbc_in_fresh_process(law: str, design=None, **kwargs) -> SBCResult:
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        return pool.submit(_sbc, law, design, kwargs).result()


def sbc_runs_in_fresh_processes(law: str, design, *settings: dict) -> list[SBCResult]:
    """Several SBC runs at once, each in its own fresh interpreter (their compiles and fits overlap;
    the draws do not depend on it)."""
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=len(settings), mp_context=ctx) as pool:
        futures = [pool.submit(_sbc, law, design, kwargs) for kwargs in settings]
        return [f.result() for f in futures]


def law_pvalues(result: SBCResult) -> dict[str, float]:
    """Uniformity p-values of the law's own parameters (not noise parameters or group values)."""
    law = get_law(result.law)
    return {k: p for k, p in result.pvalues.items() if k.split("[")[0] in law.params}


def assert_calibrated(result: SBCResult, max_failed_share: float = 0.02) -> None:
    print(result, result.summary(), sep="\n")
    assert result.n_failed <= max_failed_share * result.n_sims, result.failures[:5]
    assert result.passes(LEVEL), result.summary()


def assert_control_fails(result: SBCResult) -> None:
    """A misspecified fit must reject uniformity for some law parameter."""
    print(result, result.summary(), sep="\n")
    p = law_pvalues(result)
    assert min(p.values()) < LEVEL / len(p), result.summary()

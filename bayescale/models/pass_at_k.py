"""Coverage against the number of samples k (Brown et al. 2024, "Large Language Monkeys"):
coverage(k) = exp(a·k^b) with a, b < 0, i.e. -log coverage = c·k^-beta.

Rows hold the coverage (pass@k over problems, column ``p_correct``) at ``attempts`` = k and the
number of problems in ``trials``. The likelihood treats each k's coverage as Beta-Binomial in the
problems (see :class:`RateLaw`); coverages at different k reuse the same samples, which this
ignores, so intervals from many k of one model are somewhat too narrow. c and beta vary by
``family`` (one model per family label, as Brown et al. fit each model).
"""
from __future__ import annotations

from .pass_until import _StretchedRate
from .registry import register


@register
class PassAtK(_StretchedRate):
    name = "pass-at-k"
    formula = "coverage = exp(-c·k^-alpha)"
    x, symbol = "attempts", "k"
    pool, alpha_pool = "family", "family"

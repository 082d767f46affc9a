"""The one exception and the one warning class users see."""
import os
import sys
import warnings
from contextlib import contextmanager


class BayescaleError(ValueError):
    """Bad input or an impossible request. The message says what was expected and how to fix it."""


class BayescaleWarning(UserWarning):
    """Something was changed, excluded or looks unreliable (rows dropped, poor convergence)."""


class UnreliableSampling(BayescaleWarning):
    """The sampler's diagnostics failed (r_hat, bulk ESS, divergences). ``.fit`` is the fit, so that
    turning warnings into errors (``warnings.simplefilter("error")``) does not lose it."""

    def __init__(self, message: str, fit=None):
        super().__init__(message)
        self.fit = fit


class UnreliableSamplingError(BayescaleError):
    """Raised instead of the warning by ``bayescale.fit(..., strict=True)``; ``.fit`` is the fit."""

    def __init__(self, message: str, fit=None):
        super().__init__(message)
        self.fit = fit


def caller_stacklevel(folder: str) -> int:
    """The ``stacklevel`` that attributes a warning raised by the caller of this function to the
    first frame outside ``folder`` (a package directory), i.e. the user's call however deep the
    package's own calls go."""
    folder = os.path.abspath(folder) + os.sep
    frame, level = sys._getframe(1), 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(folder):
        frame, level = frame.f_back, level + 1
    return level


@contextmanager
def warnings_labelled(label: str, folder: str):
    """Warnings raised inside, re-raised with ``label: `` in front (which of several fits one is
    about: "no-pool fit of family 'a'"); a failing fit's warning keeps its fit. Others pass as they were."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    level = caller_stacklevel(folder)
    for w in caught:
        if isinstance(w.message, UnreliableSampling):
            warnings.warn(UnreliableSampling(f"{label}: {w.message}", fit=w.message.fit), stacklevel=level)
        elif issubclass(w.category, BayescaleWarning):
            warnings.warn(f"{label}: {w.message}", w.category, stacklevel=level)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)

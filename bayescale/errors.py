"""The one exception and the one warning class users see."""


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

"""The one exception and the one warning class users see."""


class BayescaleError(ValueError):
    """Bad input or an impossible request. The message says what was expected and how to fix it."""


class BayescaleWarning(UserWarning):
    """Something was changed, excluded or looks unreliable (rows dropped, poor convergence)."""

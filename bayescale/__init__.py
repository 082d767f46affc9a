"""bayescale: Bayesian scaling laws with calibrated extrapolation intervals."""
__version__ = "0.1.0"

import warnings as _warnings

_warnings.filterwarnings("ignore", category=FutureWarning, module="arviz")

from .errors import BayescaleError, BayescaleWarning  # noqa: E402
from .models import Law, Param, get_law, list_laws  # noqa: E402
from .fit import Fit, load  # noqa: E402  (before `fit`: the submodule name would shadow it)
from .inference import fit  # noqa: E402

__all__ = ["BayescaleError", "BayescaleWarning", "Fit", "Law", "Param", "fit", "get_law",
           "list_laws", "load", "__version__"]

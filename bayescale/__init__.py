"""bayescale: Bayesian scaling laws with calibrated extrapolation intervals."""
__version__ = "0.2.0"

import warnings as _warnings  # noqa: E402

with _warnings.catch_warnings():   # ArviZ 0.x announces its 1.0 API on first import; bayescale pins arviz < 1
    _warnings.filterwarnings("ignore", message=r"\s*ArviZ is undergoing", category=FutureWarning)
    import arviz as _arviz  # noqa: E402, F401

from .errors import BayescaleError, BayescaleWarning  # noqa: E402
from .models import Law, Param, get_law, list_laws  # noqa: E402
from .results import Fit  # noqa: E402
from .saved import load  # noqa: E402
from .inference import fit  # noqa: E402
from .chaining import chain  # noqa: E402
from .comparison import compare  # noqa: E402
from .samplers.cache import clear_caches  # noqa: E402
from .stacking import StackedFit  # noqa: E402
from .next_runs import plan  # noqa: E402
from .heldout import calibrate  # noqa: E402
from . import datasets  # noqa: E402  (bs.datasets.list(), bs.datasets.load(name))

__all__ = ["BayescaleError", "BayescaleWarning", "Fit", "Law", "Param", "StackedFit", "calibrate", "chain",
           "clear_caches", "compare", "datasets", "fit", "get_law", "list_laws", "load", "plan", "__version__"]

"""Scaling laws, one small file per family. Importing this package registers them all."""
from . import chinchilla, critical_batch, hyperparams, kaplan_nd, lr_annealing, power  # noqa: F401  (registration)
from . import bnsl, farseer, overtrain  # noqa: F401  (registration)
from . import accuracy_sigmoid, choice_mass, loss_to_error, pass_at_k, pass_until  # noqa: F401  (registration)
from .base import Law, Param
from .registry import REGISTRY, get_law, list_laws

__all__ = ["Law", "Param", "REGISTRY", "get_law", "list_laws"]

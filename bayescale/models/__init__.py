"""Scaling laws, one small file per family. Importing this package registers them all."""
from . import chinchilla, kaplan_nd, power  # noqa: F401  (registration)
from .base import Law, Param
from .registry import REGISTRY, get_law, list_laws

__all__ = ["Law", "Param", "REGISTRY", "get_law", "list_laws"]

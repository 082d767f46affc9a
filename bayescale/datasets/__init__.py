"""Datasets: the embedded synthetic demo (and, from step 2, loaders for the public datasets)."""
from .demo import demo_data

__all__ = ["demo_data"]

"""The law registry: names -> Law classes, with clear errors for unknown names."""
from __future__ import annotations

from ..errors import BayescaleError

REGISTRY: dict[str, type] = {}


def register(cls):
    REGISTRY[cls.name] = cls
    return cls


def get_law(spec):
    """A Law instance from a name such as "chinchilla" or "power:tokens" (or a Law itself)."""
    from .base import Law

    if isinstance(spec, Law):
        return spec
    if not isinstance(spec, str):
        raise BayescaleError(f"law must be a name or a Law, got {type(spec).__name__}")
    name, _, option = spec.partition(":")
    if name not in REGISTRY and "," in spec:
        raise BayescaleError(f"unknown law {spec!r}: to fit several laws and mix them, give a list, "
                             f"law={[p.strip() for p in spec.split(',')]} (the CLI takes --law {spec})")
    if name not in REGISTRY:
        raise BayescaleError(f"unknown law {name!r}; choose one of {sorted(REGISTRY)}")
    cls = REGISTRY[name]
    options = cls.options
    if option and option not in options:
        if not options:
            raise BayescaleError(f"law {name!r} takes no option, got {spec!r}")
        raise BayescaleError(f"law {name!r}: unknown option {option!r}; choose one of {list(options)}")
    return cls(option or None)


def list_laws() -> list[str]:
    return sorted(REGISTRY)

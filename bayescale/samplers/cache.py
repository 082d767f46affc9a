"""One bounded cache for every program bayescale compiles, and the lock that serialises tracing.

NumPyro runs a model through handlers kept on one process-wide stack
(``numpyro.primitives._PYRO_STACK``). Two threads tracing models at once push onto the same stack,
and one thread's sites land in the other's trace ("all sites must have unique names"). So every
trace of a NumPyro model -- compiling a sampler, a log-likelihood or a batched program,
``initialize_model``, a prior simulation -- happens while :data:`TRACE_LOCK` is held (use
``with tracing():``). Running a compiled program needs no lock: it does not touch the stack, and
JAX releases the GIL while it runs, so chains and concurrent fits still run in parallel.

:class:`CompileCache` is double-checked: look up, take the lock, look up again, build. Two threads
asking for the same program build it once; the second waits and gets the first one's.
"""
from __future__ import annotations

import contextlib
import threading
from collections import OrderedDict
from typing import Any, Callable, Hashable

TRACE_LOCK = threading.RLock()   # re-entrant: a build may trace several functions in turn
CACHE_SIZE = 48                  # compiled programs kept (least recently used dropped first)

_TRACES: dict[str, int] = {}     # law spec -> abstract traces of its model (see trace_count)


@contextlib.contextmanager
def tracing():
    """Hold the process-wide tracing lock: wrap anything that runs a NumPyro model under a
    handler (``trace``, ``seed``, ``initialize_model``, ``jax.jit(...).lower``)."""
    with TRACE_LOCK:
        yield


def trace_count(law: str | None = None) -> int:
    """How often a model was traced with abstract data (for ``law``'s spec, or all laws): once per
    program JAX compiles, so a fit that reuses a compiled sampler leaves it unchanged. (NumPyro's
    per-run initialisation also runs the model, on concrete data; that is not counted.)"""
    return _TRACES.get(law, 0) if law else sum(_TRACES.values())


class CompileCache:
    """A least-recently-used map from a key to a compiled object, built at most once per key."""

    def __init__(self, size: int = CACHE_SIZE):
        self.size = size
        self._items: OrderedDict[Hashable, Any] = OrderedDict()
        self._guard = threading.Lock()   # protects the dict only (short, never held while building)

    def _lookup(self, key):
        with self._guard:
            if key in self._items:
                self._items.move_to_end(key)
                return True, self._items[key]
        return False, None

    def get(self, key: Hashable, build: Callable[[], Any]) -> Any:
        """The object cached under ``key``; built by ``build()`` under :data:`TRACE_LOCK` if absent."""
        found, value = self._lookup(key)
        if found:
            return value
        with TRACE_LOCK:
            found, value = self._lookup(key)   # another thread may have built it meanwhile
            if found:
                return value
            value = build()
            with self._guard:
                self._items[key] = value
                while len(self._items) > self.size:
                    self._items.popitem(last=False)
            return value

    def peek(self, key: Hashable) -> tuple[bool, Any]:
        """(True, the object) if ``key`` is cached, else (False, None); never builds."""
        return self._lookup(key)

    def clear(self) -> None:
        with self._guard:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key) -> bool:
        return key in self._items


PROGRAMS = CompileCache()


def clear_caches() -> None:
    """Drop every program bayescale compiled (NUTS samplers, log-likelihoods, batched programs)
    and JAX's in-memory caches, e.g. between long jobs in one process. The next fit of each shape
    compiles again (or loads from JAX's persistent cache, see :func:`bayescale.runtime.configure`)."""
    import jax

    with TRACE_LOCK:   # not while another thread is compiling
        PROGRAMS.clear()
        jax.clear_caches()

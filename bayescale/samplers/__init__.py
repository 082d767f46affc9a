"""The samplers: a compiled NUTS driver (:mod:`.nuts`) and a batched fixed-trajectory HMC
(:mod:`.batched_hmc`) that share one warmup adaptation (:mod:`.adaptation`), one float-type
policy (:mod:`.precision`) and one bounded compile cache with the process-wide tracing lock
(:mod:`.cache`)."""
from .cache import TRACE_LOCK, clear_caches, trace_count, tracing

__all__ = ["TRACE_LOCK", "clear_caches", "trace_count", "tracing"]

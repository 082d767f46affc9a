"""The outputs program is built in a background thread while the chains sample
(bayescale.inference._Deferred): its result and its errors reach the caller, and it works in a
process forked after earlier builds (a process-wide executor's worker thread does not exist in a
forked child, so work submitted there never ran)."""
from __future__ import annotations

import multiprocessing
import os
import sys

import pytest

from bayescale.inference import _Deferred


def test_the_caller_gets_the_program_and_its_errors():
    assert _Deferred(lambda: (lambda a, b: a + b))(2, 3) == 5

    def broken():
        raise ValueError("no program")

    with pytest.raises(ValueError, match="no program"):
        _Deferred(broken)()


def _child(queue):
    queue.put(_Deferred(lambda: (lambda: os.getpid()))())


@pytest.mark.skipif(sys.platform == "win32", reason="fork is POSIX only")
def test_a_forked_child_builds_too():
    _Deferred(lambda: (lambda: None))()            # a build in the parent first
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_child, args=(queue,))
    child.start()
    child.join(timeout=30)
    hung = child.is_alive()
    if hung:
        child.kill()
    assert not hung, "the build never ran in the forked child"
    assert queue.get(timeout=5) == child.pid

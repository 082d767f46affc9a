"""Progress on stderr: one rule for when bars are drawn, bars that warnings do not break, and
one-line notes (such as a cold compile) written above any open bar.

Every public function with a ``progress`` argument takes ``None`` (the default: bars only when
stderr is a terminal, so logs, pipes, CI and captured output stay clean), ``True`` or ``False``.
"""
from __future__ import annotations

import contextlib
import logging
import sys
import warnings

from tqdm.auto import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm


def resolve(progress) -> bool:
    """``progress`` as a bool: None means "only when stderr is a terminal"."""
    if progress is None:
        stream = sys.stderr   # looked up now: tests and notebooks replace it
        try:
            return bool(stream is not None and stream.isatty())
        except (AttributeError, ValueError):   # no isatty, or a closed stream
            return False
    from .checks import check_flag

    return check_flag(progress, "progress", none=True)


def note(message: str) -> None:
    """One line on stderr, written above any open bar instead of into its line."""
    tqdm.write(message, file=sys.stderr)


class _AboveBars:
    """A file for warnings: each write goes through ``tqdm.write``, which lifts the open bars,
    writes, and draws them again below."""

    def write(self, text: str) -> None:
        if text:
            tqdm.write(text, file=sys.stderr, end="")

    def flush(self) -> None:
        sys.stderr.flush()


def _console_loggers() -> list[logging.Logger]:
    """Loggers that write to stdout or stderr: the root, and ArviZ's own logger (made outside
    logging's registry, with a stderr handler when the root has none)."""
    candidates = [logging.root, getattr(sys.modules.get("arviz"), "_log", None)]
    return [lg for lg in candidates if isinstance(lg, logging.Logger) and any(
        isinstance(h, logging.StreamHandler) and h.stream in (sys.stdout, sys.stderr) for h in lg.handlers)]


@contextlib.contextmanager
def warnings_above_bars():
    """While active, warnings (and log records of console loggers) are written through
    ``tqdm.write``. For warnings only the stream changes: the current ``warnings.showwarning``
    still decides what is shown (pytest's recording, IPython's or the CLI's format keep working).
    Nested uses route once."""
    previous = warnings.showwarning
    if getattr(previous, "_above_bars", False):
        yield
        return

    def show(message, category, filename, lineno, file=None, line=None):
        previous(message, category, filename, lineno, _AboveBars() if file is None else file, line)

    show._above_bars = True
    warnings.showwarning = show
    try:
        loggers = _console_loggers()   # only these: a file-only logging setup gets no console handler
        with logging_redirect_tqdm(loggers=loggers) if loggers else contextlib.nullcontext():
            yield
    finally:
        if warnings.showwarning is show:
            warnings.showwarning = previous


@contextlib.contextmanager
def bar(*, disable: bool, **options):
    """A ``tqdm.auto`` bar on stderr; while it is drawn, warnings go above it (see
    :func:`warnings_above_bars`)."""
    with tqdm(disable=disable, **options) as b:
        if disable:
            yield b
        else:
            with warnings_above_bars():
                yield b

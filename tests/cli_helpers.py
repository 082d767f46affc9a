"""Running the command line in-process from tests (tests/ is on sys.path: import by name)."""
from __future__ import annotations

from bayescale.cli import main


def run(capsys, *argv):
    """(exit status, stdout, stderr) of one command."""
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def user_error(capsys, *argv) -> str:
    """Run a command that must fail as a user error (exit 2, one line on stderr, no traceback);
    return the message."""
    try:
        rc = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse usage errors
        rc = exc.code
    out, err = capsys.readouterr()
    assert rc == 2, (argv, out, err)
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("bayescale: error: "), err
    return lines[0]

"""Running the ``shapegen`` command in-process in tests, and the shape of its one-line errors."""

from __future__ import annotations

from shapegen.cli import main


def run(capsys, *argv: str) -> tuple[int, str, str]:
    """``shapegen ARGV...`` in this process: (exit status, stdout, stderr)."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(code: int, err: str) -> None:
    """A user error: exit status 2 and exactly one ``error: ...`` line."""
    assert code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1, err

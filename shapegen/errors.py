"""User-facing errors.

Every problem a user can fix (a missing file, a wrong config key, a NaN field, no GPU) raises
:class:`ShapegenError` with one sentence saying what is wrong and what to do. The command line
prints exactly that line and exits with status 2; tracebacks are kept for programming errors.
"""

from __future__ import annotations


class ShapegenError(Exception):
    """An error caused by the user's input, with a one-line message that says what to do."""

    def __init__(self, message: str) -> None:
        # One line: the CLI prints it as is, so newlines would break the contract.
        super().__init__(" ".join(str(message).split()))


class ConfigError(ShapegenError):
    """A config file or override that does not match its schema."""


def require(condition: bool, message: str) -> None:
    """Raise :class:`ShapegenError` with ``message`` unless ``condition`` holds."""
    if not condition:
        raise ShapegenError(message)

"""Command-line tests share the tiny data makers of the method tests (``tests/methods/_*_fixtures.py``)."""

import sys
from pathlib import Path

_METHODS = str(Path(__file__).resolve().parent.parent / "methods")
if _METHODS not in sys.path:
    sys.path.insert(0, _METHODS)

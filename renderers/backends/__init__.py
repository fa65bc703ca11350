"""Backend selection: ``backend: Literal["auto", "torch", "nerfacc"]``.

* ``torch``: the pure-torch reference (CPU and CUDA); defines correctness.
* ``nerfacc``: nerfacc's CUDA kernels; needs CUDA tensors and an importable nerfacc.
* ``auto``: nerfacc for CUDA tensors when it imports, else torch.

An explicit request that cannot be met raises :class:`BackendUnavailable` with the reason.
The choice is logged once per (request, device type, result). nerfacc is imported lazily,
only here, so ``import renderers`` never touches it.
"""

from __future__ import annotations

import importlib
import logging
from types import ModuleType
from typing import Literal

import torch

from renderers.backends import torch_backend

__all__ = ["Backend", "BackendUnavailable", "get_backend", "nerfacc_import_error"]

Backend = Literal["auto", "torch", "nerfacc"]
_log = logging.getLogger("renderers")
_logged: set[tuple[str, str, str]] = set()
_nerfacc: ModuleType | None = None
_nerfacc_error: str | None = None


class BackendUnavailable(RuntimeError):
    """An explicitly requested backend cannot run these inputs."""


def nerfacc_import_error() -> str | None:
    """Why the nerfacc backend cannot be imported (None if it can)."""
    global _nerfacc, _nerfacc_error
    if _nerfacc is None and _nerfacc_error is None:
        try:
            _nerfacc = importlib.import_module("renderers.backends.nerfacc_backend")
        except Exception as exc:  # ImportError, or a broken CUDA extension
            _nerfacc_error = (
                f"nerfacc does not import ({type(exc).__name__}: {exc}); pip install nerfacc>=0.5.3"
            )
    return _nerfacc_error


def get_backend(backend: Backend, device: torch.device | str) -> ModuleType:
    """The backend module for tensors on ``device``."""
    device = torch.device(device)
    if backend not in ("auto", "torch", "nerfacc"):
        raise ValueError(f"backend must be 'auto', 'torch' or 'nerfacc', got {backend!r}")
    if backend == "torch":
        chosen = torch_backend
    elif backend == "nerfacc":
        if device.type != "cuda":
            raise BackendUnavailable(f"backend='nerfacc' needs CUDA tensors, got device {device}")
        err = nerfacc_import_error()
        if err is not None:
            raise BackendUnavailable(f"backend='nerfacc': {err}")
        chosen = _nerfacc
    else:
        chosen = torch_backend
        if device.type == "cuda" and nerfacc_import_error() is None:
            chosen = _nerfacc
    key = (backend, device.type, chosen.NAME)
    if key not in _logged:
        _logged.add(key)
        reason = ""
        if backend == "auto" and chosen is torch_backend:
            reason = " (CPU tensors)" if device.type != "cuda" else f" ({nerfacc_import_error()})"
        _log.info("renderers: backend=%s on %s -> %s%s", backend, device.type, chosen.NAME, reason)
    return chosen

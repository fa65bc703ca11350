"""Turn a user's device choice ("auto", "cpu", "cuda") into a :class:`torch.device`."""

from __future__ import annotations

import torch

from shapegen.errors import ShapegenError


def choose_device(name: str = "auto", *, option: str = "--device") -> torch.device:
    """The device a command or fit runs on.

    Args:
        name: ``"auto"`` (CUDA when a GPU is visible, else CPU), ``"cpu"``, ``"cuda"`` or
            ``"cuda:N"``.
        option: how the user spelled the setting, for the error message: a flag such as
            ``"--device"`` or a config key ending in ``=`` such as ``"device="``.

    Returns:
        The chosen device.

    Raises:
        ShapegenError: for CUDA asked for on a machine without a CUDA GPU, or an unknown name.
    """
    asked = f"{option}{'' if option.endswith('=') else ' '}"
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ShapegenError(f"unknown device '{name}'; use {asked}auto, cpu or cuda") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ShapegenError(f"{asked}cuda was asked for but no CUDA GPU is available; use {asked}cpu or auto")
    if device.type not in ("cpu", "cuda"):
        raise ShapegenError(f"unknown device '{name}'; use {asked}auto, cpu or cuda")
    return device

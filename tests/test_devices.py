"""choose_device: auto picks CUDA only when present; asking for an absent GPU is a one-line user error."""

from __future__ import annotations

import pytest
import torch

from shapegen.devices import choose_device
from shapegen.errors import ShapegenError


@pytest.mark.parametrize("present", [False, True])
def test_auto_follows_cuda_availability(monkeypatch, present):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: present)
    assert choose_device() == torch.device("cuda" if present else "cpu")
    assert choose_device("auto") == choose_device()


def test_explicit_choices(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert choose_device("cpu") == torch.device("cpu")
    assert choose_device("cuda") == torch.device("cuda")
    assert choose_device("cuda:1") == torch.device("cuda", 1)


def test_cuda_without_gpu_is_a_user_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert choose_device("cpu") == torch.device("cpu")
    with pytest.raises(ShapegenError) as err:
        choose_device("cuda")
    assert str(err.value) == "--device cuda was asked for but no CUDA GPU is available; use --device cpu or auto"
    with pytest.raises(ShapegenError, match=r"^device=cuda was asked for .* use device=cpu or auto$"):
        choose_device("cuda:0", option="device=")


@pytest.mark.parametrize("name", ["gpu", "", "meta"])
def test_unknown_names_are_user_errors(name):
    with pytest.raises(ShapegenError, match="unknown device"):
        choose_device(name)

"""A tiny render set and a tiny render prior (trained two steps and exported), shared by the tests
of the render prior, its guidance and the ``--model`` paths of the VSD commands."""

from __future__ import annotations

from pathlib import Path

from shapegen.data.render_set import RenderSetConfig, write_render_set

TINY_RENDERS = RenderSetConfig(classes=["chair", "mug"], per_class=2, views=4, image_size=16, mesh_resolution=24, workers=1,
                               split="train=0-1")
"""Four shapes, four 16x16 views each: seconds to write."""


def write_tiny_renders(folder: Path) -> list[str]:
    """Write :data:`TINY_RENDERS` into ``folder``; the ``--set`` overrides that train on it."""
    write_render_set(TINY_RENDERS, folder, progress=False)
    return [f"data.root={folder}", "train.accelerator=cpu"]


def tiny_prior_folder(root: Path, steps: int = 2, overrides: tuple[str, ...] = ()) -> Path:
    """Train the tiny preset ``steps`` steps on the tiny renders (with ``--set overrides``) and export
    it as a diffusers folder."""
    from shapegen.methods import METHODS
    from shapegen.methods.render_prior import export_pipeline
    from shapegen.methods.training import train

    data = write_tiny_renders(root / "renders")
    last = train(METHODS["render_prior"], "tiny", [*data, f"train.max_steps={steps}", *overrides], root / "run", progress=False)
    return export_pipeline(last, root / "model").path

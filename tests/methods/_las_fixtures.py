"""Tiny LAS data and a trained tiny model shared by the LAS tests (built once per session)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

TINY_OVERRIDES = [
    "sketch_encoder.image_size=32",
    "sketch_encoder.patch=8",
    "occupancy.attention_resolutions=[4]",
    "sample.occupancy_steps=6",
    "sample.sdf_steps=3",
    "data.batch_size=2",
    "data.repeat=2",
]


def make_meshes(folder: Path) -> Path:
    """Two categories, one analytic mesh each: a lopsided chair-like block and a box."""
    from shapegen.geometry.export import export_mesh
    from shapegen.geometry.extract import extract_mesh
    from shapegen.geometry.primitives import box, sphere, union

    (folder / "chair").mkdir(parents=True, exist_ok=True)
    (folder / "table").mkdir(parents=True, exist_ok=True)
    chair = union(box((0.0, -0.2, 0.0), (0.5, 0.1, 0.5)), box((0.0, 0.3, -0.4), (0.5, 0.45, 0.1)))
    export_mesh(extract_mesh(chair, 16), folder / "chair" / "c1.obj")
    export_mesh(extract_mesh(union(box((0, 0.3, 0), (0.6, 0.08, 0.6)), sphere((0, -0.3, 0), 0.25)), 16), folder / "table" / "t1.obj")
    return folder


@pytest.fixture(scope="session")
def las_data(tmp_path_factory) -> Path:
    from shapegen.data.las_prepare import LASPrepareConfig, prepare_dataset

    root = tmp_path_factory.mktemp("las")
    meshes = make_meshes(root / "meshes")
    cfg = LASPrepareConfig(resolution=16, sketch_size=32, views=[1, 2])
    prepare_dataset(meshes, root / "data", cfg, progress=False)
    return root / "data"


def tiny_config(data: Path, *extra: str):
    from shapegen.config import CONFIG_ROOT, load_config
    from shapegen.methods.las import LASConfig

    return load_config(LASConfig, CONFIG_ROOT / "las" / "tiny.yaml", [f"data.root={data}", *TINY_OVERRIDES, *extra])


@pytest.fixture(scope="session")
def las_trained(las_data, tmp_path_factory):
    """A tiny model fitted for a few dozen steps by the engine's one Trainer, and its checkpoint."""
    import pytorch_lightning as pl

    from shapegen.engine import fit
    from shapegen.methods.las import LASDiffusion

    pl.seed_everything(0, verbose=False)
    model, dm = LASDiffusion.for_training(tiny_config(las_data, "train.max_steps=40", "train.lr=3e-3", "train.accelerator=cpu",
                                                      "train.grad_clip=1.0", "train.checkpoint_every=40", "train.preview_every=-1"))
    ckpt = fit(model, model.config.train, tmp_path_factory.mktemp("las_run"), datamodule=dm, loss_log=False, progress=False)
    torch.manual_seed(0)
    return model.eval(), ckpt

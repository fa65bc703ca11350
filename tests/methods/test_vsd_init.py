"""The NeRF stage started from a shape (``init.*``, ``text-to-3d --init``) with the tiny random prior."""

from __future__ import annotations

import json
import sys
import types

import numpy as np
import pytest
import torch
import trimesh
from _cli import one_error_line, run

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = ["--preset", "tiny", "--tiny-random-prior", "--no-progress", "--set", "export.turntable_frames=2", "--set", "steps=2"]
BOX = [2.0, 1.0, 1.2]
"""A box that the density blob (a ball) does not resemble; framed as 1.0 x 0.5 x 0.6."""



def _tiny(*overrides: str):
    from shapegen.config import CONFIG_ROOT, load_config
    from shapegen.methods.vsd import VSDConfig

    return load_config(VSDConfig, CONFIG_ROOT / "vsd" / "tiny.yaml", ["export.turntable_frames=2", "steps=2", *overrides])


def _box_mesh(cfg):
    from shapegen.geometry.mesh import Mesh
    from shapegen.methods.text_to_3d import _load_init_mesh

    box = trimesh.creation.box(extents=BOX)
    return _load_init_mesh(Mesh(torch.tensor(box.vertices, dtype=torch.float32), torch.tensor(box.faces)), cfg)


def _cell_centres(g: int, r: float) -> torch.Tensor:
    ax = (torch.arange(g, dtype=torch.float32) + 0.5) / g * 2 * r - r
    return torch.stack(torch.meshgrid(ax, ax, ax, indexing="ij"), -1).reshape(-1, 3)


def _iou(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a & b).sum()) / float((a | b).sum())


def test_fitted_density_matches_the_mesh_occupancy():
    """Density above half the target at 16^3 cell centres vs the mesh's inside: IoU > 0.7.

    The box fills 128 of the 4096 cells and about as many straddle its surface, so an IoU of
    0.7 allows a mislabelled cell on only part of the surface (a fit off by a whole cell
    everywhere scores below 0.5); the untrained field (the density blob, a ball) scores about 0.25.
    """
    from shapegen.geometry.sdf import MeshSDF
    from shapegen.methods.text_to_3d import init_density_from_mesh
    from shapegen.methods.vsd import VSDSystem

    cfg = _tiny()
    system = VSDSystem(cfg)
    mesh = _box_mesh(cfg)
    points = _cell_centres(16, cfg.nerf.radius)
    inside = MeshSDF(mesh)(points) < 0
    assert int(inside.sum()) == 128  # 8 x 4 x 4 cells of side 1/8: the framing the cameras expect

    def occupied() -> torch.Tensor:
        with torch.no_grad():
            return system.fields[0].density(points) > 0.5 * cfg.init.density

    before = _iou(occupied(), inside)
    losses = init_density_from_mesh(system, mesh, steps=cfg.init.steps, density=cfg.init.density, width=cfg.init.width,
                                    lr=cfg.init.lr, points=cfg.init.points)
    after = _iou(occupied(), inside)
    assert before < 0.4 < 0.7 < after, (before, after)
    assert len(losses) == 1 and losses[0] < 0.05
    # The occupancy grid was re-evaluated: it keeps every cell the box fills and drops the far corners.
    grid = system.grids[0]
    assert bool(grid.query(points[inside]).all())
    assert not bool(grid.query(torch.tensor([[0.95, 0.95, 0.95], [-0.95, -0.95, -0.95]])).any())
    assert float(grid.binaries.float().mean()) < 0.5


def test_every_particle_is_fitted():
    from shapegen.methods.text_to_3d import init_density_from_mesh
    from shapegen.methods.vsd import VSDSystem

    cfg = _tiny("particles=2")
    system = VSDSystem(cfg)
    losses = init_density_from_mesh(system, _box_mesh(cfg), steps=60, points=2048, density=cfg.init.density)
    assert len(losses) == 2 and max(losses) < 0.1
    centre = torch.zeros(1, 3)
    corner = torch.tensor([[0.35, 0.15, 0.2]])  # 0.1 inside the box, where the blob alone gives 1.6
    with torch.no_grad():
        for f in system.fields:
            assert float(f.density(corner)) > 0.5 * cfg.init.density
            assert float(f.density(centre)) > 0.5 * cfg.init.density


def test_text_to_3d_fits_then_trains_and_resume_does_not_refit(tmp_path, monkeypatch):
    import shapegen.methods.text_to_3d as t3d

    box = tmp_path / "box.obj"
    trimesh.creation.box(extents=BOX).export(box)
    out = tmp_path / "run"
    calls = []
    fit = t3d.init_density_from_mesh
    monkeypatch.setattr(t3d, "init_density_from_mesh", lambda *a, **k: calls.append(1) or fit(*a, **k))
    result = t3d.text_to_3d(_tiny(f"init.mesh={box}"), out, progress=False)
    assert calls == [1]
    assert result.init_mesh == out / "init.glb" and result.init_mesh in result.files
    init = trimesh.load(out / "init.glb", force="mesh")
    np.testing.assert_allclose(init.bounds[1] - init.bounds[0], [1.0, 0.5, 0.6], atol=1e-5)
    assert [int(r["step"]) for r in json.loads((out / "history.json").read_text())] == [0, 1]
    # Two VSD steps later the exported surface is still the box (within two marching-cubes cells
    # of 1/16), not the blob's ball of diameter 1.
    got = trimesh.load(out / "model.glb", force="mesh")
    np.testing.assert_allclose(got.bounds[1] - got.bounds[0], [1.0, 0.5, 0.6], atol=0.125)

    # Resuming continues from the checkpoint (which holds the fit): no refit, and the mesh file
    # is not needed any more.
    box.unlink()
    calls.clear()
    t3d.text_to_3d(_tiny(f"init.mesh={box}", "steps=3"), out, progress=False)
    assert calls == []
    assert [int(r["step"]) for r in json.loads((out / "history.json").read_text())] == [0, 1, 2]


def test_a_missing_init_mesh_is_refused_before_anything_is_written(capsys, tmp_path):
    out = tmp_path / "run"
    code, _, err = run(capsys, "text-to-3d", "a chair", "-o", str(out), *TINY, "--init", str(tmp_path / "missing.obj"))
    one_error_line(code, err)
    assert "missing.obj" in err and "no such mesh file" in err
    assert not out.exists()


def test_init_needs_the_nerf_stage(capsys, tmp_path):
    trimesh.creation.box().export(tmp_path / "box.obj")
    out = tmp_path / "run"
    code, _, err = run(capsys, "text-to-3d", "a box", "-o", str(out), *TINY, "--stages", "geometry", "--init", str(tmp_path / "box.obj"))
    one_error_line(code, err)
    assert "--init starts the NeRF stage" in err and "--init-mesh" in err and not out.exists()


@pytest.fixture
def class_model_only(monkeypatch):
    """``--init msdf`` without the text-conditioned model: the shipped class model is used."""
    monkeypatch.setitem(sys.modules, "shapegen.methods.text_msdf", None)  # its import raises ImportError


@pytest.mark.usefixtures("class_model_only")
def test_init_msdf_end_to_end_with_the_class_model(capsys, tmp_path):
    out = tmp_path / "run"
    code, _, err = run(capsys, "text-to-3d", "a DSLR photo of two wooden chairs", "-o", str(out), *TINY, "--init", "msdf")
    assert code == 0, err
    init = trimesh.load(out / "init.glb", force="mesh")
    assert len(init.faces) > 0
    assert np.max(init.bounds[1] - init.bounds[0]) == pytest.approx(1.0, abs=1e-5)  # largest half-extent 0.5
    assert (out / "model.glb").is_file()
    assert [int(r["step"]) for r in json.loads((out / "history.json").read_text())] == [0, 1]


@pytest.mark.usefixtures("class_model_only")
def test_init_msdf_needs_a_class_in_the_prompt(capsys, tmp_path):
    out = tmp_path / "run"
    code, _, err = run(capsys, "text-to-3d", "a corgi", "-o", str(out), *TINY, "--init", "msdf")
    one_error_line(code, err)
    for name in ("chair", "lamp", "mug", "shelf", "table"):
        assert name in err
    assert not out.exists()


def test_class_words_and_plurals():
    from shapegen.methods.text_to_3d import _class_in_prompt

    classes = ["chair", "shelf", "lamp"]
    assert _class_in_prompt("Two CHAIRS by a lamp", classes) == "chair"  # the first named
    assert _class_in_prompt("empty shelves", classes) == "shelf"
    assert _class_in_prompt("a chairman", classes) is None  # whole words only


def test_init_msdf_prefers_the_text_model(monkeypatch, tmp_path):
    from shapegen.methods.text_to_3d import prompt_shape

    seen = {}

    def text_to_shape(prompt, out_dir, num=1, seed=0, checkpoint=None):
        seen.update(prompt=prompt, num=num, seed=seed)
        trimesh.creation.box(extents=BOX).export(f"{out_dir}/sample_00.obj")

    monkeypatch.setitem(sys.modules, "shapegen.methods.text_msdf", types.SimpleNamespace(text_to_shape=text_to_shape))
    mesh = prompt_shape("a corgi", seed=3)
    assert seen == {"prompt": "a corgi", "num": 1, "seed": 3}
    ext = mesh.vertices.amax(0) - mesh.vertices.amin(0)
    np.testing.assert_allclose(ext.numpy(), BOX, atol=1e-5)

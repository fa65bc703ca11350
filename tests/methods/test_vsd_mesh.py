"""ProlificDreamer mesh stages (geometry and texture) on the tiny random Stable Diffusion."""

from __future__ import annotations

import pytest
import torch

from renderers.cameras import orbit_pose
from renderers.rasterize import render_gbuffers
from shapegen.config import load_config, resolve_preset
from shapegen.geometry.dmtet import DMTetGrid
from shapegen.geometry.texture import bake_textures, uv_atlas
from shapegen.methods.vsd import VSDConfig
from shapegen.methods.vsd_mesh import GeometrySystem, TextureSystem, bake_field, render_normal_map

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(*overrides: str) -> VSDConfig:
    return load_config(VSDConfig, resolve_preset("tiny", "vsd"), list(overrides))


def ring_cameras(n: int, side: int, dist: float = 1.3):
    from renderers.cameras import Intrinsics

    az = torch.linspace(0, 360, n + 1)[:-1]
    c2w = orbit_pose(az, torch.full_like(az, 20.0), torch.full_like(az, dist)).float()
    return c2w, Intrinsics.from_fov(50.0, side, side)


def sphere_mesh(r: float, res: int = 16):
    grid = DMTetGrid(res)
    grid.init_from_sdf(lambda x: x.norm(dim=-1) - r, clamp=None)
    return grid.to_mesh()


def test_geometry_stage_fits_target_normals_through_dmtet_and_rasteriser():
    """SDF values and offsets receive gradients from an image loss on the normal renders:
    a sphere of radius 0.25 grows toward the target renders of a radius-0.35 sphere."""
    cfg = tiny("geometry.tet_resolution=16", "geometry.fit_bbox=false")
    system = GeometrySystem(cfg)
    system.init_from_sdf(lambda x: x.norm(dim=-1) - 0.25)
    c2w, intr = ring_cameras(3, 24)
    target_mesh = sphere_mesh(0.35)
    with torch.no_grad():
        target, target_alpha = render_normal_map(target_mesh.vertices, target_mesh.faces, c2w, intr)
    opt = torch.optim.Adam([system.dmtet.sdf, system.dmtet.deformation], lr=0.02)
    losses = []
    r0 = float(system.extract_mesh().vertices.norm(dim=-1).mean())
    for _ in range(10):
        normals, alpha, v, f = system.render(c2w, intr)
        nc, lap = system.regularizers(v, f)
        loss = (normals - target).square().mean() + (alpha - target_alpha).square().mean() + 0.01 * (nc + lap)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    r1 = float(system.extract_mesh().vertices.norm(dim=-1).mean())
    assert losses[-1] < 0.6 * losses[0], losses
    assert r0 == pytest.approx(0.25, abs=0.02) and r1 > r0 + 0.04


def test_geometry_stage_sds_steps_with_tiny_prior():
    cfg = tiny("geometry.tet_resolution=12")
    system = GeometrySystem(cfg)
    assert system.guidance.config.mode == "sds" and system.guidance.config.guidance_scale == 100.0
    system.init_from_sdf(lambda x: x.norm(dim=-1) - 0.3)
    sdf0 = system.dmtet.sdf.detach().clone()
    opt = system.configure_optimizers()
    for i in range(2):
        loss = system.training_step(None, i)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert len(system.history) == 2
    rec = system.history[-1]
    assert all(torch.isfinite(torch.tensor(v)) for v in rec.values())
    assert rec["loss_normal_consistency"] > 0 and rec["faces"] > 0
    assert not torch.equal(system.dmtet.sdf.detach(), sdf0)


def test_texture_stage_moves_toward_target_colour_and_runs_vsd():
    cfg = tiny()
    mesh = sphere_mesh(0.4, 12)
    system = TextureSystem(cfg, mesh.vertices, mesh.faces)
    c2w, intr = ring_cameras(2, 24)
    target = torch.tensor([0.9, 0.1, 0.1])

    def error() -> float:
        with torch.no_grad():
            return float((system.field(mesh.vertices).albedo - target).abs().mean())

    e0 = error()
    opt = torch.optim.Adam(system.field.parameters(), lr=0.05)
    for _ in range(12):
        rgb, alpha = system.render(c2w, intr)
        covered = alpha.detach() > 0.99
        loss = ((rgb - target[None, :, None, None]).square() * covered).sum() / covered.sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert error() < 0.5 * e0
    # A few VSD steps with the tiny prior: the LoRA model and the texture both train.
    grid0 = system.field.encoding.embeddings.detach().clone()
    opt = system.configure_optimizers()
    for i in range(2):
        loss = system.training_step(None, i)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert system.guidance.config.mode == "vsd" and len(system.history) == 2
    assert system.history[-1]["loss_lora"] > 0
    assert not torch.equal(system.field.encoding.embeddings.detach(), grid0)


def test_baked_texture_round_trip():
    """Bake a known colour field into a UV texture, render the textured mesh, and compare
    with the field evaluated at the rendered surface points."""
    mesh = sphere_mesh(0.4, 14)
    colour = lambda x: (x / 0.8 + 0.5).clamp(0, 1)
    baked = bake_textures(uv_atlas(mesh, resolution=256, padding=4), colour, 256, padding=4)
    c2w, intr = ring_cameras(2, 48)
    out = render_gbuffers(
        baked.vertices, baked.faces, c2w, intr, attributes=baked.vertices, uvs=baked.uv,
        texture=baked.material.base_color_texture, antialias_edges=False,
    )
    m = out.mask
    err = (out.texture[m] - colour(out.attributes[m])).abs()
    assert float(err.mean()) < 0.01 and float(err.max()) < 0.08
    # A wrong texture (colour channels swapped) is far off: the comparison has teeth.
    swapped = out.texture[m].flip(-1)
    assert float((swapped - colour(out.attributes[m])).abs().mean()) > 0.05


def test_bake_field_pbr_textures():
    cfg = tiny("texture.texture_field.material=pbr")
    mesh = sphere_mesh(0.4, 10)
    system = TextureSystem(cfg, mesh.vertices, mesh.faces)
    rgb, _ = system.render(*ring_cameras(1, 32))
    assert rgb.shape == (1, 3, 32, 32) and bool(torch.isfinite(rgb).all())
    textured = bake_field(system.field, mesh, 32, "auto", 2)
    mat = textured.material
    assert mat.base_color_texture.shape == (32, 32, 3)
    assert mat.metallic_roughness_texture is not None and mat.metallic_factor == 1.0
    with torch.no_grad():
        rough = system.field(mesh.vertices).roughness
    # Green holds roughness: its range matches the field's.
    g = mat.metallic_roughness_texture[..., 1]
    assert float(g.min()) >= float(rough.min()) - 0.02 and float(g.max()) <= float(rough.max()) + 0.02


def test_texture_checkpoint_restores_mesh_and_field(tmp_path):
    import pytorch_lightning as pl

    cfg = tiny("texture.steps=1")
    mesh = sphere_mesh(0.4, 10)
    system = TextureSystem(cfg, mesh.vertices, mesh.faces)
    trainer = pl.Trainer(max_steps=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, accelerator="cpu")
    trainer.fit(system)
    path = tmp_path / "t.ckpt"
    trainer.save_checkpoint(path, weights_only=False)
    state = torch.load(path, map_location="cpu", weights_only=False)
    assert state["shapegen_stage"] == "texture"
    assert not any(k.startswith("guidance.unet.") and "lora_" not in k for k in state["state_dict"])
    loaded = TextureSystem.load_from_checkpoint(str(path), map_location="cpu")
    assert torch.equal(loaded.mesh_faces, mesh.faces)
    assert torch.equal(loaded.field.encoding.embeddings, system.field.encoding.embeddings)


def test_normal_map_shows_world_normals_facing_the_camera():
    mesh = sphere_mesh(0.4, 16)
    c2w, intr = ring_cameras(2, 32)
    normals, alpha = render_normal_map(mesh.vertices, mesh.faces, c2w, intr)
    assert normals.shape == (2, 3, 32, 32) and float(alpha[:, 0, 0, 0].max()) == 0.0  # black background
    for b in range(2):
        centre = normals[b, :, 16, 16] * 2 - 1  # the sphere point nearest the camera
        to_camera = torch.nn.functional.normalize(c2w[b, :3, 3], dim=0)
        assert float(torch.dot(torch.nn.functional.normalize(centre, dim=0), to_camera)) > 0.97


def test_dmtet_from_nerf_density_matches_the_nerf_surface(tmp_path):
    """The geometry stage starts from the NeRF's surface (iso - density), not just any blob."""
    from shapegen.config import to_dict
    from shapegen.methods.vsd import VSDSystem
    from shapegen.methods.vsd_mesh import nerf_level_function

    cfg = tiny("nerf.blob_radius=0.35", "export.mesh_resolution=48")
    nerf = VSDSystem(cfg)
    path = tmp_path / "nerf.ckpt"
    torch.save({"hyper_parameters": {"config": to_dict(cfg)}, "state_dict": nerf.state_dict()}, path)
    reference = nerf.extract_mesh(0)  # marching cubes of the same level set
    system = GeometrySystem(tiny("geometry.tet_resolution=24"))
    system.init_from_sdf(nerf_level_function(path))
    mesh = system.extract_mesh()
    r_ref = float(reference.vertices.norm(dim=-1).mean())
    r = float(mesh.vertices.norm(dim=-1).mean())
    cell = float(system.dmtet.cell_size.max())
    assert r == pytest.approx(r_ref, abs=0.25 * cell)
    assert 0.15 < r_ref < 0.4  # a real surface inside the blob, not the box

"""Texture any mesh from a text prompt with VSD (ProlificDreamer's texture stage alone): :func:`texture_mesh`.

>>> from shapegen.methods.texture import texture_mesh
>>> texture_mesh("chair.obj", "a wooden chair", "chair.glb", preset="tiny")  # doctest: +SKIP

The mesh is centred and scaled so that its largest half-extent is ``texture.mesh_extent`` (the
framing the random cameras expect), a texture field is optimised with VSD through the mesh
renderer (:class:`shapegen.methods.vsd_mesh.TextureSystem`, trained by
:func:`shapegen.engine.fit` with the config's ``train`` run settings and the texture stage's
length and cadence), and the field is baked into the UV textures of a glTF PBR material on the
mesh in its original frame and size.

The run folder (default: the output without suffix + ``.run``) keeps ``config.yaml``,
``checkpoints/last.ckpt``, ``renders/texture_*.png``, ``history_texture.json``, ``loss.csv`` and
``loss.png``. Resume rule (:func:`shapegen.checkpoints.resume_from`): a run folder with a
checkpoint of the same config and the same mesh continues from it, ``fresh`` starts over, one of
another config or mesh is a one-line error. The output mesh is written atomically, last.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from shapegen.errors import ShapegenError
from shapegen.geometry.export import TEXTURE_SUFFIXES
from shapegen.methods.text_to_3d import VSD_MAY_DIFFER, vsd_config, with_run_settings

SUFFIXES = TEXTURE_SUFFIXES
"""Output formats that carry a UV-mapped texture."""

TEXTURE_MAY_DIFFER = (*VSD_MAY_DIFFER, "nerf.*", "geometry.*", "render.*", "guidance.*", "optim.*", "shading.*", "particles",
                      "sparsity_weight", "opacity_entropy_weight", "texture.texture_resolution", "texture.uv_atlas", "texture.uv_padding")
"""Settings a resumed texture run may change: those of text-to-3d, the other stages' (not read
here) and the bake's (applied after training)."""

__all__ = ["SUFFIXES", "TEXTURE_MAY_DIFFER", "mesh_digest", "texture_mesh"]


def mesh_digest(vertices, faces) -> str:
    """A short content hash of a mesh (float32 vertices, int64 faces): which mesh a checkpoint textures."""
    import torch

    h = hashlib.sha256()
    h.update(vertices.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    h.update(faces.detach().to("cpu", torch.int64).contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def _saved(ckpt: dict[str, Any]) -> dict[str, Any] | None:
    config = with_run_settings(ckpt.get("hyper_parameters", {}).get("config"))
    state = ckpt.get("state_dict", {})
    if config is None or ckpt.get("shapegen_stage") != "texture" or "mesh_vertices" not in state:
        return None
    return {"config": config, "mesh": mesh_digest(state["mesh_vertices"], state["mesh_faces"])}


def texture_mesh(
    mesh_path: str | Path,
    prompt_or_config,
    out: str | Path,
    *,
    preset: str | Path = "default",
    overrides: Sequence[str] = (),
    run_dir: str | Path | None = None,
    fresh: bool = False,
    progress: bool = True,
) -> Path:
    """Texture the mesh in ``mesh_path`` and write it with baked PBR textures to ``out``.

    Args:
        mesh_path: the input mesh (OBJ, PLY, STL, OFF, GLB/GLTF), any frame and size.
        prompt_or_config: a text prompt (the config is ``preset`` with ``overrides``) or a
            :class:`~shapegen.methods.vsd.VSDConfig` (its ``prompt`` and ``texture`` section are used).
        out: the textured mesh (``.glb`` recommended, ``.gltf`` or ``.obj``).
        preset: a name under ``configs/vsd/`` or a YAML file.
        overrides: ``key=value`` strings, e.g. ``["texture.steps=500"]``.
        run_dir: checkpoints, renders and config (default: ``out`` without suffix + ``.run``).
        fresh: start over instead of continuing from the run folder's checkpoint.
        progress: show the progress bar.

    Returns:
        ``out``.

    Raises:
        ShapegenError: a bad output name, an unreadable or empty mesh, a bad config, a checkpoint
            of another config or mesh, a GPU-sized config without a GPU, or an unknown prior.
    """
    import torch

    from shapegen.checkpoints import resume_from
    from shapegen.config import save_config, to_dict
    from shapegen.engine import is_rank_zero, quiet_lightning
    from shapegen.geometry.export import export_mesh
    from shapegen.geometry.mesh import Mesh
    from shapegen.geometry.mesh_io import load_mesh, normalize_mesh
    from shapegen.io import check_output_path, make_output_dir
    from shapegen.methods.text_to_3d import check_device, fit_stage, write_history
    from shapegen.methods.vsd_mesh import TextureSystem, bake_field

    cfg = vsd_config(prompt_or_config, preset, overrides)
    check_device(cfg, cfg.texture.resolution)
    out = Path(out)
    if out.suffix.lower() not in SUFFIXES:
        raise ShapegenError(f"-o {out}: textures need a .glb (recommended), .gltf or .obj output, got {out.suffix or 'no suffix'!r}")
    mesh = load_mesh(mesh_path)
    if mesh.num_faces == 0:
        raise ShapegenError(f"mesh '{mesh_path}' has no faces; nothing to texture")
    t = cfg.texture
    if not 0 < t.mesh_extent <= t.texture_field.radius:
        raise ShapegenError(f"texture.mesh_extent={t.mesh_extent} must be in (0, texture.texture_field.radius={t.texture_field.radius}]")
    # Check the output before the (long) optimisation; the file itself is written atomically.
    if out.is_dir():
        raise ShapegenError(f"-o {out} is a folder; give a file name such as {out}/textured.glb")
    if str(out.parent) and not out.parent.exists():
        raise ShapegenError(f"-o {out}: folder {out.parent} does not exist; create it first")
    check_output_path(out)
    run_dir = Path(run_dir) if run_dir is not None else out.with_suffix(".run")

    unit, norm = normalize_mesh(mesh, "cube", padding=t.mesh_extent)
    quiet_lightning()
    last = run_dir / "checkpoints" / "last.ckpt"
    compared = {"config": to_dict(cfg), "mesh": mesh_digest(unit.vertices.float(), unit.faces.long())}
    resume = resume_from(last, compared, fresh=fresh, may_differ=TEXTURE_MAY_DIFFER, saved_config=_saved, announce=is_rank_zero())
    system = TextureSystem(cfg, unit.vertices, unit.faces)  # loads the prior: an unknown model fails before writing
    make_output_dir(run_dir)  # removed again if the run fails before writing anything into it
    if is_rank_zero():
        save_config(cfg, run_dir / "config.yaml")
    fit_stage(system, cfg, "texture", run_dir, resume=resume is not None, checkpoint=last, loss_log=True, progress=progress)
    if not is_rank_zero():
        return out
    write_history(system.history, run_dir / "history_texture.json")
    center = torch.tensor(norm.center, dtype=torch.float32)

    def to_field(x: torch.Tensor) -> torch.Tensor:
        return (x - center.to(x.device)) * norm.scale

    textured = bake_field(system.field, Mesh(mesh.vertices, mesh.faces), t.texture_resolution, t.uv_atlas, t.uv_padding, to_field)
    return export_mesh(textured, check_output_path(out))


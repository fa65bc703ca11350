"""``shapegen texture MESH --prompt "..." -o OUT.glb``: texture any mesh with VSD (stage 3 alone).

The mesh is centred and scaled so that its largest half-extent is ``texture.mesh_extent`` (the
framing the random cameras expect), a texture field is optimised with VSD through the mesh
renderer (:class:`shapegen.methods.vsd_mesh.TextureSystem`), and the field is baked into the
UV textures of a glTF PBR material on the mesh in its original frame and size. Presets are
the text-to-3d ones (``configs/vsd/``; ``--preset tiny`` for a CPU smoke run). Only ``OUT`` is
written (atomically); nothing is written when the input is bad.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from shapegen.commands.base import Command
from shapegen.commands.text_to_3d import add_prior_args
from shapegen.errors import ShapegenError
from shapegen.geometry.export import TEXTURE_SUFFIXES as SUFFIXES


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("mesh", help="input mesh (OBJ, PLY, STL, OFF, GLB/GLTF)")
    p.add_argument("--prompt", required=True, help='text prompt, e.g. "a wooden chair"')
    p.add_argument("-o", "--output", required=True, help="output mesh with baked textures (.glb recommended, .gltf or .obj)")
    add_prior_args(p)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config value (repeatable), e.g. --set texture.steps=500")
    p.add_argument("--seed", type=int, help="random seed")
    p.set_defaults(config="default")


def _run(args: argparse.Namespace, _unused=None) -> None:
    import torch

    from shapegen.commands.text_to_3d import apply_prior_args
    from shapegen.config import load_config, resolve_preset
    from shapegen.geometry.mesh_io import load_mesh, normalize_mesh
    from shapegen.io import check_output_path
    from shapegen.methods.vsd import VSDConfig

    cfg = load_config(VSDConfig, resolve_preset(args.config, "vsd"), args.overrides)
    apply_prior_args(cfg, args)
    out = Path(args.output)
    if out.suffix.lower() not in SUFFIXES:
        raise ShapegenError(f"-o {out}: textures need a .glb (recommended), .gltf or .obj output, got {out.suffix or 'no suffix'!r}")
    mesh = load_mesh(args.mesh)
    if mesh.num_faces == 0:
        raise ShapegenError(f"mesh '{args.mesh}' has no faces; nothing to texture")
    extent = cfg.texture.mesh_extent
    if not 0 < extent <= cfg.texture.texture_field.radius:
        raise ShapegenError(
            f"texture.mesh_extent={extent} must be in (0, texture.texture_field.radius={cfg.texture.texture_field.radius}]"
        )
    # Check the output folder before the (long) optimisation; the file itself is written atomically.
    if out.exists() and out.is_dir():
        raise ShapegenError(f"-o {out} is a folder; give a file name such as {out}/textured.glb")
    if not out.parent.exists() and str(out.parent):
        raise ShapegenError(f"-o {out}: folder {out.parent} does not exist; create it first")
    check_output_path(out)

    import logging
    import warnings

    import pytorch_lightning as pl

    warnings.filterwarnings("ignore", message=r".*module\(s\) in eval mode.*")
    if not getattr(args, "verbose", False):
        for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric"):
            logging.getLogger(name).setLevel(logging.WARNING)

    from shapegen.geometry.export import export_mesh
    from shapegen.geometry.mesh import Mesh
    from shapegen.methods.vsd_mesh import TextureSystem, bake_field

    unit, norm = normalize_mesh(mesh, "cube", padding=extent)
    system = TextureSystem(cfg, unit.vertices, unit.faces)
    trainer = pl.Trainer(
        max_steps=cfg.texture.steps,
        accelerator="auto",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(system)
    system.eval()
    t = cfg.texture
    center = torch.tensor(norm.center, dtype=torch.float32)

    def to_field(x: torch.Tensor) -> torch.Tensor:
        return (x - center.to(x.device)) * norm.scale

    textured = bake_field(system.field, Mesh(mesh.vertices, mesh.faces), t.texture_resolution, t.uv_atlas, t.uv_padding, to_field)
    path = export_mesh(textured, check_output_path(out))
    print(f"wrote {path} ({textured.num_faces} faces, {t.texture_resolution}x{t.texture_resolution} textures)")

COMMANDS = [
    Command(
        "texture",
        "texture any mesh from a text prompt with VSD (ProlificDreamer's texture stage) -> GLB with baked PBR textures",
        _args,
        _run,
    ),
]

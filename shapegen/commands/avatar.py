"""Avatar commands: ``rig`` (skin any roughly humanoid standing mesh and write a rigged GLB) and
``avatar`` (text -> rigged, textured humanoid: the avatar preset of the VSD mesh stages; the command
around :func:`shapegen.methods.text_avatar.text_to_avatar`).

``shapegen avatar PROMPT -o OUT_DIR`` writes: ``config.yaml`` (the resolved
:class:`~shapegen.methods.text_avatar.AvatarConfig`); ``geometry.glb`` (the refined surface,
metres) with ``renders/geometry_*.png``, ``history_geometry.json`` and
``checkpoints/geometry/last.ckpt``; ``renders/texture_*.png``, ``history_texture.json`` and
``checkpoints/texture/last.ckpt``; ``avatar.glb`` (armature, skin, morph targets, UV atlas and
PBR textures, metres, +Y up, facing +Z); ``rest.png`` (front view at rest) and, with
``--preview``, ``poses.png`` (rest, wave, step). A stage with a checkpoint in ``OUT_DIR``
continues from it; ``--fresh`` starts over (``--resume``, the old flag, is the default now).
``--devices``, ``--strategy``, ``--precision`` and ``--accelerator`` set ``vsd.train``.
Bad input is refused before anything is written.

Heavy imports happen inside ``run`` so that ``shapegen --help`` stays fast.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from shapegen.commands.base import Command
from shapegen.commands.methods import add_run_args, run_overrides
from shapegen.errors import ShapegenError
from shapegen.methods.rig import RigConfig


def _rig_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("mesh", help="humanoid mesh standing upright (+Y up, facing +Z): OBJ, PLY, STL, OFF, GLB/GLTF")
    p.add_argument("-o", "--output", required=True, help="rigged output (.glb)")
    p.add_argument("--preview", metavar="PNG", help="also render the rigged mesh in a few poses (rest, wave, step) side by side")
    p.add_argument("--t-pose", action="store_true", help="the mesh is in a T-pose (same as --set arm_angle=0)")


def _rig(args: argparse.Namespace, cfg: RigConfig) -> None:
    import numpy as np

    from shapegen.geometry.export_rigged import export_rigged_glb
    from shapegen.geometry.mesh_io import load_mesh
    from shapegen.geometry.rigging import linear_blend_skinning
    from shapegen.methods.rig import POSES, pose_rotations, rig_humanoid

    out = Path(args.output)
    if out.suffix.lower() != ".glb":
        raise ShapegenError(f"cannot write '{out.name}': a rigged mesh is written as .glb")
    preview = Path(args.preview) if args.preview else None
    if preview is not None and preview.suffix.lower() not in (".png", ".jpg", ".jpeg"):
        raise ShapegenError(f"cannot write preview '{preview.name}': use a .png file")
    if not Path(args.mesh).is_file():
        raise ShapegenError(f"no such mesh file: {args.mesh}")
    if args.t_pose:
        cfg.arm_angle = 0.0
    from shapegen.progress import report

    report("loading")
    mesh = load_mesh(args.mesh)
    start = time.perf_counter()
    report("rigging")
    rigged = rig_humanoid(mesh, cfg)
    seconds = time.perf_counter() - start
    report("writing")
    export_rigged_glb(rigged, out)
    msg = f"wrote {out} ({mesh.num_vertices} vertices, {rigged.skeleton.num_joints} joints, rigged in {seconds:.1f} s)"
    if preview is not None:
        from renderers.preview import render_mesh, save_image

        images = []
        for pose in POSES.values():
            posed = rigged.skeleton.forward_kinematics(pose_rotations(rigged, pose))
            v = linear_blend_skinning(rigged.mesh.vertices, rigged.skin, rigged.skeleton, posed)
            images.append(render_mesh(v, rigged.mesh.faces, width=cfg.preview_size, height=cfg.preview_size, azimuth_deg=20.0, elevation_deg=10.0))
        save_image(preview, np.concatenate(images, axis=1))
        msg += f"; poses {', '.join(POSES)} in {preview}"
    report("done", 1, 1)
    print(msg)


AVATAR_PRESETS = ("tiny", "paper")


def _avatar_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("prompt", help='text prompt, e.g. "a knight in silver armour"')
    p.add_argument("-o", "--output", required=True, help="output folder")
    p.add_argument("--preset", help="tiny (CPU, random tiny prior, seconds) or paper (GPU, Stable Diffusion 2.1); default paper")
    p.add_argument("--config", metavar="FILE", help="YAML preset file (instead of --preset)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config value (repeatable), e.g. --set vsd.geometry.steps=100")
    p.add_argument(
        "--body-params",
        metavar="K=V,...",
        help="body prior fields, e.g. height=1.8,arm_angle=40 (analytic body), or kind=anny (Anny's default body; needs the avatar extra)",
    )
    p.add_argument("--model", help="Stable Diffusion hub id or local diffusers folder; 'render-prior' for the shipped offline "
                   "prior; 'tiny-random' for the offline tiny random model")
    p.add_argument("--allow-download", action="store_true", help="download the model if it is not in the local cache")
    p.add_argument("--seed", type=int, help="random seed")
    p.add_argument("--fresh", action="store_true", help="start over instead of continuing each stage from its checkpoint in OUT_DIR/checkpoints/")
    p.add_argument("--resume", action="store_true", help="accepted for old command lines; continuing from the checkpoints is the default now")
    p.add_argument("--preview", action="store_true", help="also render poses.png (rest, wave, step)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_run_args(p, prefix="vsd.train")


def _avatar_config(args: argparse.Namespace):
    from shapegen.config import load_config, resolve_preset
    from shapegen.methods.text_avatar import AvatarConfig, parse_body_params

    if args.preset and args.config:
        raise ShapegenError("give --preset or --config, not both")
    if args.config:
        path = resolve_preset(args.config, "avatar")
    else:
        name = args.preset or "paper"
        if name not in AVATAR_PRESETS:
            raise ShapegenError(f"unknown preset {name!r}; choose {' or '.join(AVATAR_PRESETS)} (or --config FILE)")
        path = resolve_preset(name, "avatar")
    cfg = load_config(AvatarConfig, path, [*args.overrides, *run_overrides(args, prefix="vsd.train")])
    if args.body_params:
        parse_body_params(args.body_params, cfg.body)
    if args.model:
        cfg.vsd.model = args.model
    if args.allow_download:
        cfg.vsd.allow_download = True
    if args.seed is not None:
        cfg.vsd.seed = args.seed
    if not args.prompt.strip():
        raise ShapegenError('the prompt is empty; describe the avatar, e.g. "a knight in silver armour"')
    cfg.vsd.prompt = args.prompt
    return cfg


def _avatar(args: argparse.Namespace, _unused=None) -> None:
    from shapegen.methods.text_avatar import text_to_avatar

    cfg = _avatar_config(args)
    if args.fresh and args.resume:
        raise ShapegenError("--fresh and --resume contradict each other; give one (resuming is the default)")
    r = text_to_avatar(cfg, args.output, fresh=args.fresh, preview=args.preview, progress=not args.no_progress)
    written = [r.avatar, r.rest, *([r.poses] if r.poses else [])]
    print(
        f"wrote {', '.join(str(p) for p in written)} ({r.vertices} vertices, {r.joints} joints, "
        f"morph targets: {', '.join(r.morph_targets) or 'none'}); " + ", ".join(f"{k} {v:.1f} s" for k, v in r.seconds.items())
    )


COMMANDS = [
    Command("avatar", "text -> rigged, textured humanoid (body prior, VSD geometry and texture stages, rig transfer) -> GLB + PNGs", _avatar_args, _avatar),
    Command("rig", "rig a roughly humanoid standing mesh (skeleton + skin weights by transfer) and write a rigged GLB", _rig_args, _rig, RigConfig, "rig"),
]

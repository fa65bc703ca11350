"""Avatar commands: ``rig`` (skin any roughly humanoid standing mesh and write a rigged GLB) and
``avatar`` (text -> rigged, textured humanoid: the avatar preset of the VSD mesh stages).

``shapegen avatar PROMPT -o OUT_DIR`` writes: ``config.yaml`` (the resolved
:class:`~shapegen.methods.text_avatar.AvatarConfig`); ``geometry.glb`` (the refined surface,
metres) with ``renders/geometry_*.png``, ``history_geometry.json`` and
``checkpoints/geometry/last.ckpt``; ``renders/texture_*.png``, ``history_texture.json`` and
``checkpoints/texture/last.ckpt``; ``avatar.glb`` (armature, skin, morph targets, UV atlas and
PBR textures, metres, +Y up, facing +Z); ``rest.png`` (front view at rest) and, with
``--preview``, ``poses.png`` (rest, wave, step). A stage with a checkpoint in ``OUT_DIR``
continues from it; ``--fresh`` starts over (``--resume``, the old flag, is the default now).
Bad input is refused before anything is written.

Heavy imports happen inside ``run`` so that ``shapegen --help`` stays fast.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from shapegen.commands.base import Command
from shapegen.commands.text_to_3d import VSD_MAY_DIFFER
from shapegen.errors import ShapegenError
from shapegen.methods.avatar import RigConfig


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
    from shapegen.methods.avatar import POSES, pose_rotations, rig_humanoid

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
    mesh = load_mesh(args.mesh)
    start = time.perf_counter()
    rigged = rig_humanoid(mesh, cfg)
    seconds = time.perf_counter() - start
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
    p.add_argument("--model", help="Stable Diffusion hub id or local diffusers folder; 'tiny-random' for the offline tiny random model")
    p.add_argument("--allow-download", action="store_true", help="download the model if it is not in the local cache")
    p.add_argument("--seed", type=int, help="random seed")
    p.add_argument("--fresh", action="store_true", help="start over instead of continuing each stage from its checkpoint in OUT_DIR/checkpoints/")
    p.add_argument("--resume", action="store_true", help="accepted for old command lines; continuing from the checkpoints is the default now")
    p.add_argument("--preview", action="store_true", help="also render poses.png (rest, wave, step)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _avatar_config(args: argparse.Namespace):
    from shapegen.config import load_config, resolve_preset
    from shapegen.methods.text_avatar import AvatarBody, AvatarConfig, parse_body_params

    if args.preset and args.config:
        raise ShapegenError("give --preset or --config, not both")
    if args.config:
        path = resolve_preset(args.config, "avatar")
    else:
        name = args.preset or "paper"
        if name not in AVATAR_PRESETS:
            raise ShapegenError(f"unknown preset {name!r}; choose {' or '.join(AVATAR_PRESETS)} (or --config FILE)")
        path = resolve_preset(name, "avatar")
    cfg = load_config(AvatarConfig, path, args.overrides)
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
    return cfg, AvatarBody(cfg), path


def _check_output(out: Path) -> None:
    import os

    if out.exists() and not out.is_dir():
        raise ShapegenError(f"-o {out} is a file; give a folder")
    probe = out
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise ShapegenError(f"cannot write into {probe}: permission denied; choose another -o folder")


AVATAR_MAY_DIFFER = (*tuple(f"vsd.{p}" for p in VSD_MAY_DIFFER), "rest_resolution")
"""Settings a resumed avatar run may change: run lengths, cadence, exports, the rest render's size."""


def _resume(cfg, ckpt: Path, fresh: bool) -> bool:
    """The shared resume rule for one avatar stage; a body, frame or prompt that differs from the
    checkpoint's is a one-line error naming --fresh."""
    from shapegen.checkpoints import resume_from
    from shapegen.config import to_dict

    return (
        resume_from(ckpt, to_dict(cfg), fresh=fresh, may_differ=AVATAR_MAY_DIFFER, saved_config=lambda c: c.get("hyper_parameters", {}).get("avatar"))
        is not None
    )


def _progress(stage: str, steps: int, enabled: bool):
    from pytorch_lightning.callbacks import Callback

    class _Bar(Callback):
        def on_train_start(self, trainer, pl_module) -> None:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=steps, initial=trainer.global_step, desc=f"avatar {stage}", unit="step", disable=not enabled, leave=False)

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            self.bar.update(1)
            if pl_module.history:
                losses = {k[5:]: f"{v:.3g}" for k, v in pl_module.history[-1].items() if k.startswith("loss_") and k != "loss_lora"}
                self.bar.set_postfix(losses, refresh=False)

        def on_train_end(self, trainer, pl_module) -> None:
            self.bar.close()

    return _Bar()


def _avatar(args: argparse.Namespace, _unused=None) -> None:
    import json
    import logging
    import time
    import warnings

    import numpy as np
    import torch

    from renderers.preview import save_image
    from shapegen.commands.text_to_3d import _render_callback, fit_stage, stage_checkpoint
    from shapegen.config import save_config
    from shapegen.geometry.export import export_mesh
    from shapegen.geometry.export_rigged import export_rigged_glb
    from shapegen.geometry.mesh import Mesh
    from shapegen.geometry.rigging import linear_blend_skinning
    from shapegen.io import atomic_path
    from shapegen.methods.avatar import POSES, pose_rotations
    from shapegen.methods.text_avatar import AvatarGeometrySystem, AvatarTextureSystem, rig_avatar
    from shapegen.methods.vsd_mesh import _orbit_camera, dmtet_mesh_from_checkpoint

    cfg, body, preset = _avatar_config(args)
    vcfg = cfg.vsd
    if vcfg.requires_gpu and not torch.cuda.is_available():
        raise ShapegenError(
            f"preset '{preset.stem}' is sized for a GPU (Stable Diffusion at {vcfg.geometry.resolution}^2) and no CUDA GPU "
            "was found; use --preset tiny on a CPU, or --set vsd.requires_gpu=false to try anyway"
        )
    out = Path(args.output)
    _check_output(out)
    geo_ckpt, tex_ckpt = stage_checkpoint(out, "geometry"), stage_checkpoint(out, "texture")
    if args.fresh and args.resume:
        raise ShapegenError("--fresh and --resume contradict each other; give one (resuming is the default)")
    # The texture stage starts from the geometry stage's final mesh: a fresh geometry stage
    # means a fresh texture stage.
    resume_geo = _resume(cfg, geo_ckpt, args.fresh)
    resume_tex = resume_geo and _resume(cfg, tex_ckpt, args.fresh)

    warnings.filterwarnings("ignore", message=r".*module\(s\) in eval mode.*")
    if not getattr(args, "verbose", False):
        for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric"):
            logging.getLogger(name).setLevel(logging.WARNING)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    clock = [time.perf_counter()]

    def lap() -> float:
        clock.append(time.perf_counter())
        return clock[-1] - clock[-2]

    # Build the first system (loads the prior: an unknown --model fails here) before writing.
    geo = AvatarGeometrySystem(cfg)
    from shapegen.io import make_output_dir

    make_output_dir(out)  # removed again if the run fails before writing anything into it
    save_config(cfg, out / "config.yaml")
    progress = not args.no_progress

    g = vcfg.geometry
    if not resume_geo:
        geo.to(device)
        geo.init_from_prior()

    def render_geo(m, step):
        save_image(out / "renders" / f"geometry_step{step:06d}.png", m.render_view(30.0, 10.0, g.resolution).numpy())

    fit_stage(
        geo,
        g.steps,
        geo_ckpt,
        g.checkpoint_every,
        [_render_callback(g.render_every, g.steps, render_geo), _progress("geometry", g.steps, progress)],
        resume_geo,
        vcfg.seed,
    )
    surface = geo.extract_mesh()
    export_mesh(Mesh(body.frame.to_body(surface.vertices), surface.faces), out / "geometry.glb")
    with atomic_path(out / "history_geometry.json") as tmp:  # a kill never leaves half a file
        tmp.write_text(json.dumps(geo.history))
    del geo
    seconds = {"geometry": lap()}

    t = vcfg.texture
    if resume_tex:
        tex = AvatarTextureSystem(cfg)
    else:
        surface = dmtet_mesh_from_checkpoint(geo_ckpt)
        tex = AvatarTextureSystem(cfg, surface.vertices, surface.faces)

    def render_tex(m, step):
        save_image(out / "renders" / f"texture_step{step:06d}.png", m.render_view(30.0, 10.0, t.resolution).numpy())

    fit_stage(
        tex,
        t.steps,
        tex_ckpt,
        t.checkpoint_every,
        [_render_callback(t.render_every, t.steps, render_tex), _progress("texture", t.steps, progress)],
        resume_tex,
        vcfg.seed,
    )
    with atomic_path(out / "history_texture.json") as tmp:  # a kill never leaves half a file
        tmp.write_text(json.dumps(tex.history))
    seconds["texture"] = lap()

    surface = Mesh(tex.mesh_vertices.cpu(), tex.mesh_faces.cpu())
    rigged, welded = rig_avatar(body, tex.textured_mesh(), surface)
    glb = export_rigged_glb(rigged, out / "avatar.glb", name="avatar")
    seconds["bake+rig+export"] = lap()

    def view(pose, azimuth: float, side: int):
        posed = welded.skeleton.forward_kinematics(pose_rotations(welded, pose))
        v = linear_blend_skinning(welded.mesh.vertices, welded.skin, welded.skeleton, posed)
        c2w, intr = _orbit_camera(vcfg, azimuth, 5.0, side, tex.device)
        with torch.no_grad():
            rgb, _ = tex.render(c2w, intr, posed=body.frame.to_world(v).to(tex.device))
        return (rgb[0].permute(1, 2, 0).clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()

    side = cfg.rest_resolution
    save_image(out / "rest.png", view(POSES["rest"], 0.0, side))
    written = [glb, out / "rest.png"]
    if args.preview:
        save_image(out / "poses.png", np.concatenate([view(p, 20.0, side) for p in POSES.values()], axis=1))
        written.append(out / "poses.png")
    seconds["renders"] = lap()
    print(
        f"wrote {', '.join(str(p) for p in written)} ({rigged.mesh.num_vertices} vertices, {rigged.skeleton.num_joints} joints, "
        f"morph targets: {', '.join(rigged.morph_targets) or 'none'}); " + ", ".join(f"{k} {v:.1f} s" for k, v in seconds.items())
    )


COMMANDS = [
    Command("avatar", "text -> rigged, textured humanoid (body prior, VSD geometry and texture stages, rig transfer) -> GLB + PNGs", _avatar_args, _avatar),
    Command("rig", "rig a roughly humanoid standing mesh (skeleton + skin weights by transfer) and write a rigged GLB", _rig_args, _rig, RigConfig, "rig"),
]

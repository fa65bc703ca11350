"""Avatar commands: ``rig`` (skin any roughly humanoid standing mesh and write a rigged GLB).

Heavy imports happen inside ``run`` so that ``shapegen --help`` stays fast.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from shapegen.commands.base import Command
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


COMMANDS = [
    Command("rig", "rig a roughly humanoid standing mesh (skeleton + skin weights by transfer) and write a rigged GLB", _rig_args, _rig, RigConfig, "rig"),
]

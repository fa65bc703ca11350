"""``shapegen texture MESH --prompt "..." -o OUT.glb``: texture any mesh with VSD (stage 3 alone).

The command around :func:`shapegen.methods.texture.texture_mesh`: the mesh is framed for the
cameras, a texture field is optimised with VSD and baked into the UV textures of a glTF PBR
material on the mesh in its original frame and size. Presets are the text-to-3d ones
(``configs/vsd/``; ``--preset tiny`` for a CPU smoke run). ``OUT`` is written atomically, last;
``--run-dir`` (default ``OUT`` without suffix + ``.run``) keeps the checkpoint, renders and
config: a run folder with a checkpoint of the same config and mesh continues from it, ``--fresh``
starts over. Nothing is written when the input is bad.
"""

from __future__ import annotations

import argparse

from shapegen.commands.base import Command
from shapegen.commands.methods import add_run_args
from shapegen.commands.text_to_3d import add_prior_args


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("mesh", help="input mesh (OBJ, PLY, STL, OFF, GLB/GLTF)")
    p.add_argument("--prompt", required=True, help='text prompt, e.g. "a wooden chair"')
    p.add_argument("-o", "--output", required=True, help="output mesh with baked textures (.glb recommended, .gltf or .obj)")
    add_prior_args(p)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config value (repeatable), e.g. --set texture.steps=500")
    p.add_argument("--seed", type=int, help="random seed")
    p.add_argument("--run-dir", help="checkpoint, renders and config (default: OUTPUT without suffix + '.run')")
    p.add_argument("--fresh", action="store_true", help="start over instead of continuing from RUN_DIR/checkpoints/last.ckpt")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_run_args(p)
    p.set_defaults(config="default")


def _run(args: argparse.Namespace, _unused=None) -> None:
    from shapegen.commands.methods import run_overrides
    from shapegen.commands.text_to_3d import apply_prior_args
    from shapegen.config import load_config, resolve_preset
    from shapegen.methods.texture import texture_mesh
    from shapegen.methods.vsd import VSDConfig

    cfg = load_config(VSDConfig, resolve_preset(args.config, "vsd"), [*args.overrides, *run_overrides(args)])
    apply_prior_args(cfg, args)
    path = texture_mesh(args.mesh, cfg, args.output, run_dir=args.run_dir, fresh=args.fresh, progress=not args.no_progress)
    t = cfg.texture
    print(f"wrote {path} ({t.texture_resolution}x{t.texture_resolution} textures); checkpoint and renders in "
          f"{args.run_dir or path.with_suffix('.run')}")


COMMANDS = [
    Command(
        "texture",
        "texture any mesh from a text prompt with VSD (ProlificDreamer's texture stage) -> GLB with baked PBR textures; resumable",
        _args,
        _run,
    ),
]

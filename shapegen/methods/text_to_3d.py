"""Text to 3D with ProlificDreamer's stages as one library call: :func:`text_to_3d`.

>>> from shapegen.methods.text_to_3d import text_to_3d
>>> result = text_to_3d("a DSLR photo of a hamburger", "runs/burger", preset="tiny",
...                     stages=("nerf", "geometry", "texture"))  # doctest: +SKIP
>>> result.meshes  # doctest: +SKIP
[PosixPath('runs/burger/model.glb'), PosixPath('runs/burger/geometry.glb'), PosixPath('runs/burger/textured.glb')]

The method (Wang et al., arXiv 2305.16213) is in :mod:`shapegen.methods.vsd` (stage 1, VSD on
NeRF particles) and :mod:`shapegen.methods.vsd_mesh` (stage 2, DMTet geometry with SDS on normal
renders; stage 3, VSD on a texture field over the frozen mesh); this module runs them in order
(:data:`STAGES`), each through :func:`shapegen.engine.fit`:

* run settings: the config's ``train`` (devices, strategy, precision, accelerator) with the
  stage's own length, checkpoint and render cadence and the config's seed (:func:`stage_run`);
* checkpoints: ``checkpoints/last.ckpt`` (NeRF), ``checkpoints/geometry/last.ckpt``,
  ``checkpoints/texture/last.ckpt`` (:func:`stage_checkpoint`);
* resume rule (:func:`shapegen.checkpoints.resume_from`): every listed stage with a checkpoint
  of the same config continues from it, ``fresh`` starts them over, a checkpoint of another
  config is a one-line error; all are checked before any work. A stage that is not listed but
  needed by the first listed one must have finished in the folder before (its checkpoint is
  read); ``init_mesh`` starts the geometry stage from any mesh's SDF instead of a NeRF.

Files written into ``out_dir``: ``config.yaml``; NeRF stage: ``model.glb`` (one
``particle_K.glb`` per particle when K > 1; the density field's surface with albedo vertex
colours), ``turntable.mp4`` (``.gif`` without ffmpeg), ``renders/stepNNNNNN_pK.png``,
``history.json`` (per-step losses), ``losses.png`` (the VSD and LoRA losses), ``loss.csv`` and
``loss.png`` (the total loss, as every ``shapegen train`` run); geometry stage: ``geometry.glb``,
``renders/geometry_*.png`` (normal renders), ``history_geometry.json``; texture stage:
``textured.glb`` (UV atlas, baked PBR textures), ``turntable_textured.mp4`` (or ``.gif``),
``renders/texture_*.png``, ``history_texture.json``.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shapegen.errors import ShapegenError
from shapegen.methods.base import RUN_MAY_DIFFER

STAGES = ("nerf", "geometry", "texture")
"""ProlificDreamer's stages, in order."""

VSD_MAY_DIFFER = ("steps", "*.steps", "checkpoint_every", "*.checkpoint_every", "render_every", "*.render_every",
                  "export.*", "*.turntable_frames", "requires_gpu", "allow_download", *RUN_MAY_DIFFER,
                  "train.seed", "train.stage")
"""Settings a resumed stage may change: run lengths, checkpoint and render cadence, exports, the
hardware it runs on (``train.seed`` is not read: the top-level ``seed`` is; ``train.stage`` only
picks the stage of ``shapegen train``)."""

__all__ = [
    "STAGES",
    "VSD_MAY_DIFFER",
    "TextTo3DResult",
    "check_device",
    "check_stages",
    "fit_stage",
    "stage_checkpoint",
    "stage_run",
    "text_to_3d",
    "train_stage",
    "vsd_config",
    "with_run_settings",
]


@dataclass
class TextTo3DResult:
    """What :func:`text_to_3d` wrote (every path is inside ``out_dir``)."""

    out_dir: Path
    """The run folder."""
    config: Path
    """``config.yaml``: the resolved config."""
    checkpoints: dict[str, Path] = field(default_factory=dict)
    """Stage name -> its final ``last.ckpt`` (full state: a later call with more steps continues it)."""
    meshes: list[Path] = field(default_factory=list)
    """``model.glb`` (or ``particle_K.glb``), ``geometry.glb``, ``textured.glb``: those of the stages run."""
    videos: list[Path] = field(default_factory=list)
    """Turntables (``.mp4``, or ``.gif`` without ffmpeg)."""
    plots: list[Path] = field(default_factory=list)
    """Loss plots."""
    histories: list[Path] = field(default_factory=list)
    """Per-step losses (``history*.json``)."""

    @property
    def renders(self) -> Path:
        """The folder of the renders written while the stages trained."""
        return self.out_dir / "renders"

    @property
    def files(self) -> list[Path]:
        """Every written file (meshes, videos, plots, histories, config, checkpoints)."""
        return [*self.meshes, *self.videos, *self.plots, *self.histories, self.config, *self.checkpoints.values()]


# ------------------------------------------------------------------------------------ stages
def check_stages(stages: Sequence[str]) -> list[str]:
    """The stages in pipeline order, after checking that they are known, distinct and consecutive.

    Raises:
        ShapegenError: an empty list, an unknown or repeated name, or a gap (``nerf,texture``).
    """
    names = list(stages)
    text = ",".join(names)
    if not names:
        raise ShapegenError(f"--stages is empty; choose from {', '.join(STAGES)} (comma-separated)")
    for n in names:
        if n not in STAGES:
            raise ShapegenError(f"unknown stage {n!r} in --stages; choose from {', '.join(STAGES)} (comma-separated, e.g. nerf,geometry,texture)")
    if len(set(names)) != len(names):
        raise ShapegenError(f"--stages lists a stage twice: {text}")
    names.sort(key=STAGES.index)
    for a, b in itertools.pairwise(names):
        if STAGES.index(b) != STAGES.index(a) + 1:
            missing = STAGES[STAGES.index(a) + 1]
            raise ShapegenError(
                f"--stages {text}: {b} needs {missing}, which is not listed; use --stages {','.join(STAGES[STAGES.index(a) : STAGES.index(b) + 1])}"
            )
    return names


def stage_checkpoint(out: str | Path, stage: str) -> Path:
    """Where ``stage`` keeps its last checkpoint under the run folder ``out``."""
    return Path(out) / "checkpoints" / ("last.ckpt" if stage == "nerf" else f"{stage}/last.ckpt")


def stage_run(cfg, stage: str):
    """The run settings of one stage: ``cfg.train`` with the stage's length, checkpoint and
    render cadence (``render_every: 0`` means no renders) and the config's seed.

    Args:
        cfg: a :class:`~shapegen.methods.vsd.VSDConfig`.
        stage: one of :data:`STAGES`.

    Raises:
        ShapegenError: a stage length below 1.
    """
    if stage == "nerf":
        steps, every, render, key = cfg.steps, cfg.export.checkpoint_every, cfg.export.render_every, "steps"
    else:
        s = getattr(cfg, stage)
        steps, every, render, key = s.steps, s.checkpoint_every, s.render_every, f"{stage}.steps"
    if steps < 1:
        raise ShapegenError(f"{key} must be at least 1, got {steps}")
    return dataclasses.replace(cfg.train, max_steps=steps, checkpoint_every=every, preview_every=render if render > 0 else -1,
                               seed=cfg.seed)


def check_device(cfg, side: int, key: str = "requires_gpu") -> None:
    """A config sized for a GPU (``requires_gpu``) without one is a one-line error.

    Args:
        cfg: a :class:`~shapegen.methods.vsd.VSDConfig`.
        side: the largest render side of the stages to run (for the message).
        key: the dotted name of ``requires_gpu`` in the user's config (for the message).
    """
    import torch

    if cfg.requires_gpu and not torch.cuda.is_available():
        raise ShapegenError(
            f"this preset is sized for a GPU (Stable Diffusion at up to {side}^2) and no CUDA GPU was found; use --preset tiny "
            f"on a CPU (add --tiny-random-prior for an offline smoke run), or --set {key}=false to try anyway"
        )


def _device(run):
    """The device a stage's system is built on before training (the one Lightning will pick)."""
    from shapegen.devices import choose_device

    return choose_device("cpu" if run.accelerator == "cpu" else "auto")


def _renders(run, folder: Path):
    """Lightning callback: ``module.write_preview(folder, step)`` every ``run.preview_every`` steps
    and at the last step (rank 0; ``preview_every <= 0``: none)."""
    import pytorch_lightning as pl

    class StageRenders(pl.Callback):
        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
            step = int(trainer.global_step)
            every = run.preview_every
            if every > 0 and trainer.is_global_zero and (step % every == 0 or step == run.max_steps):
                module.write_preview(folder, step)

    return StageRenders()


def fit_stage(model, cfg, stage: str, out: str | Path, *, resume: bool, checkpoint: str | Path | None = None,
              renders: str | Path | None = None, loss_log: bool = False, progress: bool = True,
              callbacks: Sequence = ()) -> Path:
    """Train one stage's system through :func:`shapegen.engine.fit` and leave it in eval mode.

    Args:
        model: the stage's LightningModule (with ``write_preview(folder, step)``).
        cfg: the :class:`~shapegen.methods.vsd.VSDConfig` (run settings: :func:`stage_run`).
        stage: the stage's name (its length and cadence in ``cfg``).
        out: the run folder.
        resume: continue from ``checkpoint`` (checked by the caller with the resume rule).
        checkpoint: the stage's ``last.ckpt`` (default :func:`stage_checkpoint`).
        renders: the folder of the training renders (default ``out/renders``).
        loss_log: also write the engine's ``loss.csv`` and ``loss.png`` into ``out``.
        progress: show the progress bar.
        callbacks: extra Lightning callbacks.

    Returns:
        The stage's final checkpoint.
    """
    from shapegen.engine import fit

    out = Path(out)
    run = stage_run(cfg, stage)
    last = Path(checkpoint) if checkpoint is not None else stage_checkpoint(out, stage)
    folder = Path(renders) if renders is not None else out / "renders"
    path = fit(model, run, out, resume=last if resume else None, checkpoint=last, callbacks=[_renders(run, folder), *callbacks],
               loss_log=loss_log, progress=progress)
    model.eval()
    return path


def save_video(frames, stem: Path) -> Path:
    """``stem.mp4`` (``.gif`` when ffmpeg is not installed) from ``H W 3`` uint8 frames."""
    from renderers.preview import save_animation

    try:
        import imageio_ffmpeg  # noqa: F401 (only checks that it is installed)

        video = stem.with_suffix(".mp4")
    except ImportError:
        video = stem.with_suffix(".gif")
    try:
        save_animation(video, frames, fps=24)
    except ValueError as exc:  # renderers cannot raise ShapegenError (one-way imports)
        raise ShapegenError(str(exc)) from exc
    return video


def write_history(history: list[dict[str, float]], path: Path) -> Path:
    """The per-step records of a stage as JSON (atomically: a kill never leaves half a file)."""
    from shapegen.io import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(history))
    return path


def with_run_settings(config: dict[str, Any] | None) -> dict[str, Any] | None:
    """A saved VSD config dict with the default ``train`` section filled in when it has none
    (checkpoints written before the stages shared run settings), so those still resume."""
    if isinstance(config, dict) and "train" not in config:
        from shapegen.config import to_dict
        from shapegen.methods.vsd import VSDRunConfig

        config = {**config, "train": to_dict(VSDRunConfig())}
    return config


def _saved_config(ckpt: dict[str, Any]) -> dict[str, Any] | None:
    return with_run_settings(ckpt.get("hyper_parameters", {}).get("config"))


def _finished_step(path: Path) -> tuple[int, int]:
    """``(global step, configured steps)`` saved in a stage checkpoint."""
    from shapegen.checkpoints import load_checkpoint

    ckpt = load_checkpoint(path)
    cfg = ckpt["hyper_parameters"]["config"]
    stage = ckpt.get("shapegen_stage", "nerf")
    steps = cfg["steps"] if stage == "nerf" else cfg[stage]["steps"]
    return int(ckpt.get("global_step", 0)), int(steps)


# ------------------------------------------------------------------------------------ pipeline
def vsd_config(prompt_or_config: Any, preset: str | Path = "default", overrides: Sequence[str] = ()):
    """A :class:`~shapegen.methods.vsd.VSDConfig`: the one given, or ``preset`` with ``overrides`` and the prompt ``prompt_or_config``."""
    from shapegen.config import load_config, resolve_preset
    from shapegen.methods.vsd import VSDConfig

    if isinstance(prompt_or_config, VSDConfig):
        if overrides:
            raise ShapegenError("overrides apply to a preset; with a VSDConfig, set its fields instead")
        return prompt_or_config
    if not isinstance(prompt_or_config, str) or not prompt_or_config.strip():
        raise ShapegenError('the prompt is empty; describe the object, e.g. "a DSLR photo of a hamburger"')
    cfg = load_config(VSDConfig, resolve_preset(preset, "vsd"), overrides)
    cfg.prompt = prompt_or_config
    return cfg


def _load_init_mesh(init_mesh, cfg):
    from shapegen.geometry.mesh import Mesh
    from shapegen.geometry.mesh_io import load_mesh, normalize_mesh

    mesh = init_mesh if isinstance(init_mesh, Mesh) else load_mesh(init_mesh)
    if mesh.num_faces == 0:
        raise ShapegenError(f"--init-mesh {init_mesh if not isinstance(init_mesh, Mesh) else '(mesh)'} has no faces")
    # The framing the cameras expect (as shapegen texture): largest half-extent texture.mesh_extent.
    mesh, _ = normalize_mesh(mesh, "cube", padding=cfg.texture.mesh_extent)
    return mesh


def text_to_3d(
    prompt_or_config,
    out_dir: str | Path,
    *,
    stages: Sequence[str] = ("nerf",),
    preset: str | Path = "default",
    overrides: Sequence[str] = (),
    fresh: bool = False,
    init_mesh=None,
    progress: bool = True,
    callbacks: Sequence = (),
) -> TextTo3DResult:
    """Run ProlificDreamer's ``stages`` for one prompt into ``out_dir``.

    Args:
        prompt_or_config: a text prompt (the config is ``preset`` with ``overrides``), or a
            :class:`~shapegen.methods.vsd.VSDConfig` (its ``prompt`` is used; ``preset`` is ignored).
        out_dir: the run folder (see the module docstring for what it holds).
        stages: consecutive names from :data:`STAGES`; a stage before the first one must have
            finished in ``out_dir`` (unless ``init_mesh`` starts the geometry stage).
        preset: a name under ``configs/vsd/`` (``tiny``, ``fast``, ``paper``, ``default``) or a YAML file.
        overrides: ``key=value`` strings, e.g. ``["steps=100", "train.precision=bf16-mixed"]``.
        fresh: start every listed stage over instead of continuing from its checkpoint.
        init_mesh: a mesh file or :class:`~shapegen.geometry.mesh.Mesh` whose SDF starts the
            geometry stage (scaled to a largest half-extent of ``texture.mesh_extent``).
        progress: show the progress bars.

    Raises:
        ShapegenError: a bad config, stage list or mesh, a missing or unfinished earlier stage, a
            checkpoint of another config, a GPU-sized config without a GPU, or an unknown prior.
    """
    from shapegen.checkpoints import resume_from
    from shapegen.config import save_config, to_dict
    from shapegen.engine import is_rank_zero, quiet_lightning
    from shapegen.io import make_output_dir

    cfg = vsd_config(prompt_or_config, preset, overrides)
    names = check_stages(stages)
    sides = {"nerf": max(cfg.render.resolutions), "geometry": cfg.geometry.resolution, "texture": cfg.texture.resolution}
    check_device(cfg, max(sides[s] for s in names))
    out = Path(out_dir)
    mesh = None
    if init_mesh is not None:
        if names[0] != "geometry":
            raise ShapegenError(
                f"--init-mesh starts the geometry stage, but --stages {','.join(names)} does not begin with it; use --stages geometry or geometry,texture"
            )
        mesh = _load_init_mesh(init_mesh, cfg)
    first = STAGES.index(names[0])
    if first > 0 and mesh is None:  # the stage before the first listed one must have finished in out
        before = STAGES[first - 1]
        path = stage_checkpoint(out, before)
        if not path.is_file():
            raise ShapegenError(
                f"stage {names[0]} needs the {before} stage's result, but {path} does not exist; add {before} to --stages or run it first with the same -o"
            )
        done, total = _finished_step(path)
        if done < total:
            raise ShapegenError(f"the {before} stage in {out} stopped at step {done} of {total}; finish it with --stages {before}")
    if "nerf" in names and not 0 <= cfg.geometry.particle < cfg.particles:
        raise ShapegenError(f"geometry.particle={cfg.geometry.particle} but there are {cfg.particles} particle(s)")

    quiet_lightning()
    # Every listed stage's checkpoint is checked (and a mismatch refused) before any work.
    resume = {
        s: resume_from(stage_checkpoint(out, s), to_dict(cfg), fresh=fresh, may_differ=VSD_MAY_DIFFER,
                       saved_config=_saved_config, announce=is_rank_zero())
        is not None
        for s in names
    }
    # Build the first system (this loads the prior and fails on an unknown model) before
    # anything is written, so a bad model leaves no output folder behind. Seeded first: the
    # fields' and LoRA's initial weights are drawn here, so the same seed gives the same run.
    import pytorch_lightning as pl

    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    if names[0] == "nerf":
        from shapegen.methods.vsd import VSDSystem

        model = VSDSystem(cfg)
    else:
        from shapegen.methods.vsd_mesh import GeometrySystem, TextureSystem

        model = (GeometrySystem if names[0] == "geometry" else TextureSystem)(cfg)
    make_output_dir(out)  # removed again if the run fails before writing anything into it
    result = TextTo3DResult(out, out / "config.yaml")
    if is_rank_zero():
        save_config(cfg, result.config)
    for stage in names:
        run_stage = {"nerf": _run_nerf, "geometry": _run_geometry, "texture": _run_texture}[stage]
        run_stage(cfg, out, model, resume[stage], result, progress=progress, init_mesh=mesh, callbacks=callbacks)
        model = None  # the next stage builds its own system (and prior); free this one first
    return result


def train_stage(config, out_dir: str | Path, *, fresh: bool = False, progress: bool = True, callbacks: Sequence = ()) -> Path:
    """``shapegen train --method vsd``: the stage ``config.train.stage`` (default ``nerf``) of
    :func:`text_to_3d` into ``out_dir``; returns the stage's final checkpoint."""
    stage = config.train.stage
    return text_to_3d(config, out_dir, stages=(stage,), fresh=fresh, progress=progress, callbacks=callbacks).checkpoints[stage]


def _run_nerf(cfg, out: Path, model, resume: bool, result: TextTo3DResult, *, progress: bool, init_mesh=None, callbacks: Sequence = ()) -> None:
    """Stage 1: VSD on NeRF particles; meshes, turntables, history and loss plots."""
    from shapegen.engine import is_rank_zero, write_loss_plot
    from shapegen.geometry.export import export_mesh

    result.checkpoints["nerf"] = fit_stage(model, cfg, "nerf", out, resume=resume, loss_log=True, progress=progress, callbacks=callbacks)
    if not is_rank_zero():
        return
    e = cfg.export
    for k in range(cfg.particles):
        one = cfg.particles == 1
        result.meshes.append(export_mesh(model.extract_mesh(k), out / ("model.glb" if one else f"particle_{k}.glb")))
        frames = [model.render_view(k, 360.0 * i / e.turntable_frames, 15.0, e.turntable_resolution).numpy() for i in range(e.turntable_frames)]
        result.videos.append(save_video(frames, out / ("turntable" if one else f"turntable_{k}")))
    history = model.history
    result.histories.append(write_history(history, out / "history.json"))
    steps = [r["step"] for r in history]
    series = {key: [r[key] for r in history] for key in ("loss_vsd", "loss_lora")}
    result.plots.append(write_loss_plot(steps, series, out / "losses.png", title="VSD and LoRA losses", log_scale=False))
    result.plots.append(out / "loss.png")


def _run_geometry(cfg, out: Path, model, resume: bool, result: TextTo3DResult, *, progress: bool, init_mesh=None, callbacks: Sequence = ()) -> None:
    """Stage 2: DMTet from the NeRF (or ``init_mesh``), SDS on normal renders; ``geometry.glb``."""
    from shapegen.engine import is_rank_zero
    from shapegen.geometry.export import export_mesh
    from shapegen.methods.vsd_mesh import GeometrySystem, nerf_level_function

    model = model if isinstance(model, GeometrySystem) else GeometrySystem(cfg)
    if not resume:
        device = _device(cfg.train)
        model.to(device)
        if init_mesh is not None:
            from shapegen.geometry.sdf import MeshSDF

            model.init_from_sdf(MeshSDF(init_mesh.to(device)))
        else:
            model.init_from_sdf(nerf_level_function(stage_checkpoint(out, "nerf"), cfg.geometry.particle, device))
    result.checkpoints["geometry"] = fit_stage(model, cfg, "geometry", out, resume=resume, progress=progress, callbacks=callbacks)
    if is_rank_zero():
        result.meshes.append(export_mesh(model.extract_mesh(), out / "geometry.glb"))
        result.histories.append(write_history(model.history, out / "history_geometry.json"))


def _run_texture(cfg, out: Path, model, resume: bool, result: TextTo3DResult, *, progress: bool, init_mesh=None, callbacks: Sequence = ()) -> None:
    """Stage 3: VSD texture field on the frozen geometry-stage mesh; ``textured.glb`` and a turntable."""
    from shapegen.engine import is_rank_zero
    from shapegen.geometry.export import export_mesh
    from shapegen.methods.vsd_mesh import TextureSystem, dmtet_mesh_from_checkpoint

    t = cfg.texture
    if resume:
        model = model if isinstance(model, TextureSystem) else TextureSystem(cfg)
    else:
        mesh = dmtet_mesh_from_checkpoint(stage_checkpoint(out, "geometry"))
        if isinstance(model, TextureSystem):
            model.set_mesh(mesh.vertices, mesh.faces)
        else:
            model = TextureSystem(cfg, mesh.vertices, mesh.faces)
    result.checkpoints["texture"] = fit_stage(model, cfg, "texture", out, resume=resume, progress=progress, callbacks=callbacks)
    if not is_rank_zero():
        return
    result.meshes.append(export_mesh(model.textured_mesh(), out / "textured.glb"))
    frames = [model.render_view(360.0 * i / t.turntable_frames, 15.0, t.resolution).numpy() for i in range(t.turntable_frames)]
    result.videos.append(save_video(frames, out / "turntable_textured"))
    result.histories.append(write_history(model.history, out / "history_texture.json"))

"""Training any method from its spec: the library call behind ``shapegen train``.

>>> from shapegen.methods import METHODS
>>> from shapegen.methods.training import train
>>> last = train(METHODS["msdf"], "tiny", ["data.root=data/msdf"], "runs/msdf")  # doctest: +SKIP

The steps are the same for every method: load the config (schema <- preset <- overrides), seed,
let the system build itself and its data from the config (``for_training``), apply the resume
rule, write ``config.yaml`` (rank 0) and run :func:`shapegen.engine.fit`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from shapegen.methods.base import RUN_MAY_DIFFER, MethodSpec, require


def load_method_config(spec: MethodSpec, preset: str | Path | None = None, overrides: Sequence[str] = ()) -> Any:
    """A method's config from its schema, a preset (a name under ``configs/NAME/`` or a YAML file)
    and ``key=value`` overrides (one-line errors for unknown keys and bad values)."""
    from shapegen.config import load_config, resolve_preset

    path = resolve_preset(preset, spec.presets) if preset else None
    return load_config(spec.config_class(), path, overrides)


def _saved_stage(checkpoint: Path) -> str:
    from shapegen.checkpoints import load_checkpoint

    return str(load_checkpoint(checkpoint).get("hyper_parameters", {}).get("train", {}).get("stage", ""))


def train(
    spec: MethodSpec,
    preset: str | Path | None = None,
    overrides: Sequence[str] = (),
    out_dir: str | Path = "runs",
    *,
    fresh: bool = False,
    config: Any = None,
    progress: bool = True,
    callbacks: Sequence[Any] = (),
) -> Path:
    """Train ``spec``'s method into ``out_dir`` and return its final ``last.ckpt``.

    Args:
        spec: the method (an entry of :data:`shapegen.methods.METHODS`).
        preset: a preset name (``tiny``, ``demo``, ...) or a YAML file; ignored when ``config`` is given.
        overrides: ``key=value`` strings (``--set``), e.g. ``["data.root=data/msdf", "train.devices=2"]``.
        out_dir: the run folder (``config.yaml``, ``checkpoints/last.ckpt``, ``loss.csv``,
            ``loss.png``, ``previews/``).
        fresh: start over even when ``out_dir`` holds a checkpoint of the same config.
        config: an already built config object (instead of ``preset`` and ``overrides``).
        progress: show the progress bar.
        callbacks: extra Lightning callbacks.

    Resume rule: a checkpoint of the same config in ``out_dir`` is continued; one of another config
    is a one-line error naming ``--fresh``. For a staged method, a checkpoint of another stage
    starts this stage from its weights (``train.init_from``) and keeps the other stage's.

    Raises:
        ShapegenError: bad config, missing data, or a checkpoint of another config.
    """
    import pytorch_lightning as pl

    from shapegen.checkpoints import resume_from
    from shapegen.config import save_config
    from shapegen.engine import check_run, fit, is_rank_zero
    from shapegen.io import make_output_dir

    require(spec, "train", "be trained with 'shapegen train'")
    system = spec.system_class()
    cfg = config if config is not None else load_method_config(spec, preset, overrides)
    run = spec.run_config(cfg)
    check_run(run)
    pipeline = spec.pipeline_function()
    if pipeline is not None:  # a staged pipeline: it applies the resume rule and calls fit() per stage
        return pipeline(cfg, out_dir, fresh=fresh, progress=progress, callbacks=callbacks)
    out = Path(out_dir)
    last = out / "checkpoints" / "last.ckpt"
    other_stage = bool(spec.stages) and last.is_file() and not fresh and _saved_stage(last) not in ("", run.stage)
    if other_stage:
        # Another stage wrote this checkpoint: start this stage from its weights, keep the rest.
        print(f"{last} was trained with another stage; training stage '{run.stage}' from its weights")
        run.init_from = str(last)
    pl.seed_everything(run.seed, workers=True, verbose=False)
    model, datamodule = system.for_training(cfg)
    # Compared with what this run would save (after for_training filled in what the data decides).
    resume = None if other_stage else resume_from(last, dict(model.hparams), fresh=fresh, may_differ=RUN_MAY_DIFFER + spec.may_differ,
                                                  announce=is_rank_zero())
    if is_rank_zero():
        make_output_dir(out)  # removed again if the run fails before writing anything into it
        save_config(model.config, out / "config.yaml")
    preview = _write_preview if spec.previews else None
    return fit(model, run, out, datamodule=datamodule, resume=resume, preview=preview, progress=progress, callbacks=callbacks)


def _write_preview(module, folder: Path, step: int) -> None:
    module.write_preview(folder, step)


__all__ = ["load_method_config", "train"]

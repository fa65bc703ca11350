"""Slim a training checkpoint to what sampling needs: the weights and the config.

A ``last.ckpt`` written by ``shapegen train`` also holds the optimiser state, the learning-rate
schedule, the loop counters and, for systems that keep an exponential moving average of their
network (``ema.*`` beside ``net.*`` in the state dict, as :class:`~shapegen.methods.msdf.MSDFGenerator`),
a second copy of every weight. :func:`export_model` keeps one set of weights (the EMA one when
there is one: it is what sampling uses, ``sample.use_ema``), stored as ``net`` with
``train.ema_decay = 0`` in the hyper-parameters so that the loaded system builds no second copy,
plus the buffers (data normalisation) and the config. The result loads like any checkpoint
(``load_from_checkpoint``, ``shapegen generate --checkpoint``) and is about a quarter of the size.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

from shapegen.errors import ShapegenError

KEEP = ("state_dict", "hyper_parameters", "pytorch-lightning_version", "global_step", "epoch")
"""Top-level checkpoint entries an exported model keeps (``global_step``: how long it trained)."""


@dataclass
class ExportResult:
    """What :func:`export_model` wrote."""

    path: Path
    bytes_in: int
    bytes_out: int
    ema: bool
    """The EMA weights became the model's weights."""
    global_step: int | None


def check_export_paths(checkpoint: str | Path, out: str | Path) -> tuple[Path, Path]:
    """``(checkpoint, out)`` as paths, after the checks every method's export makes before reading:
    the output is not the input and can be written.

    Raises:
        ShapegenError: one line saying which.
    """
    from shapegen.io import check_output_path

    src, dst = Path(checkpoint), Path(out)
    if dst.exists() and dst.resolve() == src.resolve():
        raise ShapegenError(f"export-model would overwrite its input '{src}'; choose another output path")
    check_output_path(dst)
    return src, dst


def export_model(checkpoint: str | Path, out: str | Path, *, use_ema: bool = True) -> ExportResult:
    """Write a weights-only copy of ``checkpoint`` to ``out`` (atomically).

    Args:
        checkpoint: a Lightning checkpoint written by ``shapegen train``.
        out: the slim ``.ckpt`` to write.
        use_ema: store the EMA weights (``ema.*``) as the network's (``net.*``) when the checkpoint
            has them and its config samples with them (``sample.use_ema``); False keeps ``net``.

    Raises:
        ShapegenError: for an unreadable checkpoint, one without ``state_dict`` and
            ``hyper_parameters``, or an output path that is the input.
    """
    from shapegen.checkpoints import load_checkpoint, save_checkpoint

    src, dst = check_export_paths(checkpoint, out)
    ckpt = load_checkpoint(src)
    if "state_dict" not in ckpt or "hyper_parameters" not in ckpt:
        raise ShapegenError(f"'{src}' has no state_dict and hyper_parameters; is it a checkpoint written by 'shapegen train'?")
    state = dict(ckpt["state_dict"])
    hparams = copy.deepcopy(ckpt["hyper_parameters"])
    ema_keys = [k for k in state if k.startswith("ema.")]
    wants_ema = use_ema and bool(hparams.get("sample", {}).get("use_ema", True))
    folded = False
    if ema_keys:
        if wants_ema:
            missing = [k for k in ema_keys if "net." + k[4:] not in state]
            if missing:
                raise ShapegenError(f"'{src}' has EMA weights without a matching network weight ({missing[0]}); cannot export it")
            for k in ema_keys:
                state["net." + k[4:]] = state[k]
            folded = True
        for k in ema_keys:
            del state[k]
        if isinstance(hparams.get("train"), dict) and "ema_decay" in hparams["train"]:
            hparams["train"]["ema_decay"] = 0.0  # the loaded system then builds no EMA copy
    slim = {k: ckpt[k] for k in KEEP if k in ckpt}
    slim["state_dict"] = {k: v.detach().clone().contiguous() for k, v in state.items()}
    slim["hyper_parameters"] = hparams
    save_checkpoint(slim, dst)
    step = ckpt.get("global_step")
    return ExportResult(dst, src.stat().st_size, dst.stat().st_size, folded, None if step is None else int(step))


__all__ = ["ExportResult", "check_export_paths", "export_model"]

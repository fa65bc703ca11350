"""Text to 3D in seconds on any machine with a text-conditioned Mosaic-SDF model: :func:`text_to_shape`.

>>> from shapegen.methods.text_msdf import text_to_shape
>>> result = text_to_shape("a round table on a single pedestal", "outputs/table", num=2)  # doctest: +SKIP
>>> result.meshes  # doctest: +SKIP
[PosixPath('outputs/table/shape_00.glb'), PosixPath('outputs/table/shape_01.glb')]

The generator is :class:`shapegen.methods.msdf.MSDFGenerator` with ``conditioning: text`` (the
shipped model: ``assets/models/msdf_text``, trained on the captioned procedural shapes by
``shapegen train --method msdf --config text_demo``); no download and no GPU are needed. The
pipeline samples ``num`` M-SDFs for the prompt (classifier-free guidance), decodes each with the
representation's own extraction (holes closed, floating debris dropped) and writes:

* ``shape.glb`` (``shape_XX.glb`` when ``num > 1``) and its ``.msdf.npz``;
* ``preview.png``: every shape in one sheet;
* ``turntable.mp4`` (``.gif`` without ffmpeg; ``turntable_XX`` when ``num > 1``), as the VSD stages write theirs.

The model knows only the words of its training captions (``MSDFConfig.vocabulary``): a prompt
must name one of its classes (or a synonym the captions use, "couch" for a sofa), and any
other word it has never seen is reported in one warning line and carries no meaning.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from shapegen.errors import ShapegenError
from shapegen.methods.outputs import MeshOptions

log = logging.getLogger(__name__)


@dataclass
class TextToShapeConfig(MeshOptions):
    """Sampling and output settings of :func:`text_to_shape` (``shapegen text-to-3d --set KEY=VALUE``)."""

    resolution: int = 64
    """Marching-cubes samples per axis when decoding a sample."""
    steps: int = 0
    """ODE solver steps (0: the model's ``sample.steps``)."""
    guidance: float = 0.0
    """Classifier-free guidance scale (0: the model's ``sample.guidance``)."""
    preview_size: int = 256
    """Side of one tile of ``preview.png`` in pixels."""
    turntable_frames: int = 24
    """Frames of each turntable (0: no turntable)."""
    turntable_size: int = 256
    """Side of the turntable frames in pixels."""
    device: str = "auto"
    """``auto`` (CUDA when a GPU is visible), ``cpu`` or ``cuda``."""


@dataclass
class PromptWords:
    """What a model makes of a prompt's words."""

    classes: list[str]
    """Known classes the prompt names (by the class word or a synonym), in the order of the model's classes."""
    unknown: list[str]
    """Words the model never saw in training, in prompt order."""
    known_classes: list[str]
    """Every class the model knows."""


@dataclass
class TextToShapeResult:
    """Files written by :func:`text_to_shape` and what the prompt meant to the model."""

    prompt: str
    out_dir: Path
    meshes: list[Path] = field(default_factory=list)
    """One GLB per sample with a surface."""
    msdf_files: list[Path] = field(default_factory=list)
    """One ``.msdf.npz`` per sample."""
    preview: Path | None = None
    turntables: list[Path] = field(default_factory=list)
    empty: list[int] = field(default_factory=list)
    """Samples that decoded to no surface (no GLB)."""
    words: PromptWords | None = None
    seconds: float = 0.0
    """Wall time of the call, loading the model included."""


def default_text_model() -> Path:
    """The shipped text-conditioned model (:attr:`MethodSpec.default_text_checkpoint` of ``msdf``)."""
    from shapegen.methods.base import default_checkpoint, get_method

    return default_checkpoint(get_method("msdf"), text=True)


def known_classes(vocabulary: Sequence[str]) -> list[str]:
    """The captioned classes (:data:`shapegen.data.captions.CLASS_SYNONYMS`) whose name is in ``vocabulary``."""
    from shapegen.data.captions import CLASS_SYNONYMS

    words = set(vocabulary)
    return [c for c in CLASS_SYNONYMS if c in words]


def read_prompt(prompt: str, vocabulary: Sequence[str]) -> PromptWords:
    """Split a prompt into the classes it names and the words a model with ``vocabulary`` does not know.

    A class is named by its word or by any of its caption synonyms ("couch", "coffee mug",
    "bar stool") whose words the model knows, as a run of consecutive words of the prompt.
    """
    from shapegen.data.captions import CLASS_SYNONYMS
    from shapegen.nn.text_encoders import split_words

    words, vocab = split_words(prompt), set(vocabulary)
    classes = known_classes(vocabulary)
    named = []
    for cls in classes:
        for noun in CLASS_SYNONYMS[cls]:
            parts = split_words(noun)
            if set(parts) <= vocab and any(words[i : i + len(parts)] == parts for i in range(len(words))):
                named.append(cls)
                break
    unknown = list(dict.fromkeys(w for w in words if w not in vocab))
    return PromptWords(classes=named, unknown=unknown, known_classes=classes)


def check_prompt(prompt: str, vocabulary: Sequence[str], warn: Callable[[str], None] | None = None) -> PromptWords:
    """:func:`read_prompt`, then one warning for unknown words and an error for a prompt without a class.

    Args:
        prompt: the text prompt.
        vocabulary: the words of the model's training captions.
        warn: called with the warning line (default: this module's logger).

    Raises:
        ShapegenError: the prompt names none of the model's classes (or the model knows none).
    """
    if not vocabulary:
        raise ShapegenError("this text model records no vocabulary; retrain it with 'shapegen train --method msdf --config text_demo'")
    words = read_prompt(prompt, vocabulary)
    classes = ", ".join(words.known_classes) or "none"
    if not words.classes:
        example = f" (e.g. 'a {words.known_classes[0]}')" if words.known_classes else ""
        raise ShapegenError(f"the prompt '{prompt}' names no class this model knows; name one of: {classes}{example}")
    if words.unknown:
        quoted = ", ".join(f"'{w}'" for w in words.unknown)
        (warn or log.warning)(f"the model does not know {quoted} (ignored); it knows the classes {classes} and their attribute words")
    return words


def load_text_model(checkpoint: str | Path | None = None, device: str = "auto"):
    """A text-conditioned :class:`~shapegen.methods.msdf.MSDFGenerator` (default: the shipped one), in eval mode.

    Raises:
        ShapegenError: a missing file, a checkpoint of another method or a model that is not text-conditioned.
    """
    from shapegen.commands.methods import load_system
    from shapegen.devices import choose_device

    ckpt = Path(checkpoint) if checkpoint else default_text_model()
    model = load_system("msdf", ckpt, choose_device(device))
    if model.config.conditioning != "text":
        raise ShapegenError(f"'{ckpt}' is a {model.config.conditioning}-conditioned M-SDF model; text-to-3d needs a text-conditioned "
                            "one (shapegen train --method msdf --config text_demo)")
    return model


def text_to_shape(
    prompt: str,
    out_dir: str | Path,
    num: int = 1,
    seed: int = 0,
    checkpoint: str | Path | None = None,
    config: TextToShapeConfig | None = None,
    *,
    model=None,
    warn: Callable[[str], None] | None = None,
) -> TextToShapeResult:
    """Generate ``num`` shapes for a prompt and write GLBs, a preview sheet and turntables.

    Args:
        prompt: e.g. ``"a tall vase with two handles"``; it must name a class the model knows.
        out_dir: output folder (created).
        num: shapes to sample.
        seed: noise seed; the same prompt and seed give the same shapes.
        checkpoint: a text-conditioned ``msdf`` checkpoint (default: the shipped model).
        config: sampling and output settings (default :class:`TextToShapeConfig`).
        model: an already loaded model (``checkpoint`` is then ignored), e.g. to sample many prompts.
        warn: called with the unknown-words warning (default: this module's logger).

    Raises:
        ShapegenError: ``num < 1``, a bad setting, a model that cannot be loaded or a prompt
            without a known class; nothing is written then.
    """
    start = time.perf_counter()
    cfg = config or TextToShapeConfig()
    if num < 1:
        raise ShapegenError(f"--num must be at least 1, got {num}")
    if cfg.resolution < 8 or not 0 <= cfg.min_component_fraction <= 1 or cfg.turntable_frames < 0:
        raise ShapegenError("resolution must be at least 8, min_component_fraction in [0, 1] and turntable_frames >= 0")
    if model is None:
        model = load_text_model(checkpoint, cfg.device)
    words = check_prompt(prompt, model.config.vocabulary, warn)

    from renderers.preview import render_turntable
    from shapegen.geometry.export import export_mesh
    from shapegen.methods.msdf import decode_to_mesh, save_msdf
    from shapegen.methods.outputs import write_preview_sheet
    from shapegen.methods.text_to_3d import save_video
    from shapegen.progress import report

    out = Path(out_dir)
    tensors = model.sample(num, prompt=prompt, seed=seed, steps=cfg.steps or None, guidance=cfg.guidance or None)
    result = TextToShapeResult(prompt=prompt, out_dir=out, words=words)
    meshes = []
    for i, t in enumerate(tensors):
        stem = out / ("shape" if num == 1 else f"shape_{i:02d}")
        result.msdf_files.append(save_msdf(t, model.config.k, stem.with_suffix(".msdf.npz")))
        mesh = decode_to_mesh(t, model.config.k, cfg.resolution, **cfg.mesh_options())
        report("meshing", i + 1, len(tensors))
        meshes.append(mesh)
        if mesh.num_faces == 0:
            result.empty.append(i)
            continue
        result.meshes.append(export_mesh(mesh, stem.with_suffix(".glb")))
        if cfg.turntable_frames:
            frames = render_turntable(mesh.vertices, mesh.faces, num_frames=cfg.turntable_frames,
                                      width=cfg.turntable_size, height=cfg.turntable_size)
            result.turntables.append(save_video(frames, out / ("turntable" if num == 1 else f"turntable_{i:02d}")))
    result.preview = write_preview_sheet(meshes, out / "preview.png", cfg.preview_size)
    result.seconds = time.perf_counter() - start
    return result


__all__ = ["PromptWords", "TextToShapeConfig", "TextToShapeResult", "check_prompt", "default_text_model", "known_classes",
           "load_text_model", "read_prompt", "text_to_shape"]

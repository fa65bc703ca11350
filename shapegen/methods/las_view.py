"""View estimation for LAS sketch-to-3D: which of the five LAS views a sketch was drawn from.

LAS-Diffusion (Zheng et al. 2023, arXiv 2305.04461) attends to the sketch through the camera of
its view (azimuth 0, 45, 90, 135 or 180 degrees at elevation 20); without a view the model falls
back to global attention, which it never trained on. This module adds a small classifier that
picks the view from the sketch and its category (not in the paper): a small CNN (3x3 convolutions,
the first of each resolution with stride 2, optionally batch-normalised, ReLU) on the binarised ink
map, its last feature map flattened (where strokes lie tells front from back) into one linear head
of 5 logits per category. :func:`estimate_view` averages it over the sketch moved by a few pixels.

Training data: synthetic sketches of procedural shapes (:mod:`shapegen.data.procedural`, the
``rich`` and ``classic`` variants of every class the LAS demo model knows) in every style of
:data:`shapegen.data.sketches.SKETCH_STYLES`, from each view with the azimuth jittered by up to
+-15 degrees and the elevation by +-5 (a person's view is rough), rendered once; then a plain
cross-entropy loop with AdamW. No real mesh or drawing is ever used: :func:`train_view_classifier`
takes only the procedural generator's settings.

The loop is a plain one on purpose: a classifier of about half a million parameters fits in memory
with its whole data set and renders and trains in about half an hour on one CPU core, so it needs none of ``shapegen train``'s
machinery (resume, previews, devices); it saves with :func:`shapegen.checkpoints.save_checkpoint`.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn

from shapegen.errors import ShapegenError

#: Where the shipped view classifier lives (its card beside it).
SHIPPED_VIEW_MODEL = Path(__file__).resolve().parents[2] / "assets" / "models" / "las_view" / "las_view.ckpt"


@dataclass
class ViewClassifierConfig:
    """Architecture of the view classifier."""

    image_size: int = 64
    """Side of the binarised ink map it reads (sketches are resized to it)."""
    channels: list[int] = field(default_factory=lambda: [16, 32, 48, 64])
    """Output channels of the stride-2 convolutions."""
    spatial: bool = True
    """Read the last feature map whole (flattened) instead of its average: where strokes lie tells
    front from back (a backrest above the seat's far edge or down to its near edge), which an
    average over positions loses."""
    categories: list[str] = field(default_factory=list)
    """One head per category (LAS knows the sketch's category); empty: one head for every sketch."""
    convs_per_stage: int = 1
    """3x3 convolutions per resolution (the first of each has stride 2; the others keep the size)."""
    batch_norm: bool = False
    """Batch normalisation after each convolution (before the ReLU)."""
    dropout: float = 0.0
    """Dropout on the features before the head (training only)."""
    members: int = 1
    """Independently initialised networks trained side by side; their log-probabilities are averaged."""


@dataclass
class LASViewConfig:
    """Settings of ``shapegen las-view``: the synthetic training set and the loop."""

    model: ViewClassifierConfig = field(default_factory=ViewClassifierConfig)
    """The classifier."""
    classes: list[str] = field(default_factory=lambda: ["chair", "table", "shelf", "lamp", "mug"])
    """Procedural classes sketched (the LAS demo model's categories)."""
    variants: list[str] = field(default_factory=lambda: ["rich", "classic"])
    """Procedural variants drawn from (shapes alternate between them)."""
    per_class: int = 24
    """Procedural shapes per class (indices ``first .. first + per_class - 1``)."""
    first: int = 300
    """First shape index (above the LAS demo set's 0..219, so none of its held-out shapes is used)."""
    more_sets: list[list[int]] = field(default_factory=list)
    """Further blocks of ``per_class`` shapes per class as ``[first, seed]`` pairs, each with its own
    shape indices and seed (of the procedural shapes and of the camera jitter); the first block is
    ``first`` and ``seed``."""
    styles: list[str] = field(default_factory=lambda: ["contour", "canny", "hand"])
    """Sketch styles rendered."""
    sketches_per_view: int = 2
    """Sketches per shape, view and style (each with its own jitter and seed)."""
    azimuth_jitter: float = 15.0
    """Largest azimuth error (degrees) of a training sketch's camera."""
    elevation_jitter: float = 5.0
    """Largest elevation error (degrees)."""
    resolution: int = 48
    """Marching-cubes resolution of the procedural meshes."""
    steps: int = 1500
    """Optimiser steps."""
    batch_size: int = 64
    """Sketches per step."""
    lr: float = 3.0e-3
    """AdamW learning rate (cosine decay to 0)."""
    val_fraction: float = 0.15
    """Shapes held out of training (whole shapes, all their sketches) to report accuracy on."""
    seed: int = 0
    """Seed of the procedural set, the jitter and the loop."""


class _ViewNet(nn.Module):
    """One member of the classifier: the convolutions and the per-category heads."""

    def __init__(self, config: ViewClassifierConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 1
        for c in config.channels:
            for k in range(max(1, config.convs_per_stage)):
                layers.append(nn.Conv2d(c_in, c, 3, stride=2 if k == 0 else 1, padding=1, bias=not config.batch_norm))
                if config.batch_norm:
                    layers.append(nn.BatchNorm2d(c))
                layers.append(nn.ReLU())
                c_in = c
        self.features = nn.Sequential(*layers)
        self.drop = nn.Dropout(config.dropout)
        side = -(-config.image_size // 2 ** len(config.channels))  # stride-2 with padding 1 rounds up
        self.heads = max(1, len(config.categories))
        self.spatial = config.spatial
        self.head = nn.Linear(c_in * (side * side if config.spatial else 1), 5 * self.heads)

    def forward(self, x: Tensor, category: Tensor) -> Tensor:
        h = self.features(x)
        h = h.flatten(1) if self.spatial else h.mean(dim=(2, 3))
        logits = self.head(self.drop(h)).view(-1, self.heads, 5)
        if self.heads == 1:
            return logits[:, 0]
        mean = logits.log_softmax(-1).mean(1)
        own = logits[torch.arange(logits.shape[0], device=logits.device), category.clamp(min=0)]
        return torch.where((category >= 0)[:, None], own, mean)


class ViewClassifier(nn.Module):
    """Ink map -> logits over the five LAS views (see the module doc); with ``members > 1`` the
    mean of the members' log-probabilities."""

    def __init__(self, config: ViewClassifierConfig | None = None) -> None:
        super().__init__()
        self.config = config or ViewClassifierConfig()
        self.nets = nn.ModuleList(_ViewNet(self.config) for _ in range(max(1, self.config.members)))

    def member_logits(self, ink: Float[Tensor, "B H W"], category: Tensor | None = None) -> Float[Tensor, "M B 5"]:
        """Each member's view logits; ``category`` (``B``, indices into ``config.categories``; -1 or
        None: unknown) picks each sketch's head, and an unknown category gets the mean of every
        head's log-probabilities."""
        size = self.config.image_size
        if self.config.spatial and ink.shape[-2:] != (size, size):
            raise ShapegenError(f"the view classifier reads {size}x{size} ink maps; binarise the sketch at that size first")
        if category is None:
            category = torch.full((ink.shape[0],), -1, dtype=torch.long, device=ink.device)
        x = ink[:, None] * 2 - 1
        return torch.stack([net(x, category) for net in self.nets])

    def forward(self, ink: Float[Tensor, "B H W"], category: Tensor | None = None) -> Float[Tensor, "B 5"]:
        """View logits (:meth:`member_logits`; several members: their mean log-probabilities)."""
        logits = self.member_logits(ink, category)
        return logits[0] if logits.shape[0] == 1 else logits.log_softmax(-1).mean(0)

    def category_index(self, category: str | None) -> int:
        """The head of ``category`` (-1: none given or one this classifier was not trained on)."""
        cats = self.config.categories
        return cats.index(category) if category in cats else -1


def load_view_classifier(path: str | Path | None = None) -> ViewClassifier:
    """The classifier saved by :func:`train_view_classifier` (default: the shipped one).

    Raises:
        ShapegenError: when the file is missing or holds something else.
    """
    from shapegen.checkpoints import load_checkpoint

    path = Path(path) if path is not None else SHIPPED_VIEW_MODEL
    if not path.is_file():
        raise ShapegenError(f"view classifier '{path}' does not exist; train one with 'shapegen las-view -o DIR' or pass a view")
    state = load_checkpoint(path)
    if not isinstance(state, dict) or "view_classifier" not in state:
        raise ShapegenError(f"'{path}' is not a LAS view classifier; give the las_view.ckpt written by 'shapegen las-view'")
    # Classifiers saved before ``spatial`` existed averaged the last feature map.
    model = ViewClassifier(ViewClassifierConfig(**{"spatial": False, **state["view_classifier"]["config"]}))
    weights = state["view_classifier"]["weights"]
    # Files from before members existed hold one network's weights at the top level.
    weights = {(k if k.startswith("nets.") else f"nets.0.{k}"): v for k, v in weights.items()}
    model.load_state_dict(weights)
    return model.eval()


@torch.no_grad()
def estimate_view(ink: Float[Tensor, "H W"], model: ViewClassifier | None = None,
                  category: str | None = None, shift: int = 2) -> tuple[int, Float[Tensor, " 5"]]:
    """The most likely LAS view index of a sketch and the probabilities of all five.

    Args:
        ink: ink map (1 = stroke) of any size; it is binarised at the classifier's size.
        model: a classifier; None: the shipped one.
        category: the sketch's category (a classifier with one head per category uses its head;
            None or a category it does not know: the mean of its heads).
        shift: average the log-probabilities over the ink map moved by ``-shift``, 0 and ``shift``
            pixels in x and y (nine passes; training moves its sketches by up to 3); 0: one pass.
    """
    from shapegen.data.sketches import binarize_sketch

    model = model or load_view_classifier()
    x = binarize_sketch(ink.float().cpu(), model.config.image_size)
    moves = [(dy, dx) for dy in (-shift, 0, shift) for dx in (-shift, 0, shift)] if shift else [(0, 0)]
    batch = torch.stack([torch.roll(x, m, dims=(0, 1)) for m in moves])
    cat = torch.full((len(moves),), model.category_index(category))
    p = model(batch, cat).log_softmax(-1).mean(0).softmax(-1)
    return int(p.argmax()), p


def render_view_set(cfg: LASViewConfig, progress: bool = True) -> tuple[Tensor, Tensor, Tensor]:
    """The synthetic training sketches: ink maps ``N S S`` (bool), view labels ``N`` and shape ids ``N``."""
    from tqdm import tqdm

    from shapegen.data.procedural import generate, to_mesh
    from shapegen.data.sketches import LAS_AZIMUTHS, LAS_ELEVATION, render_sketch
    from shapegen.geometry.mesh_io import normalize_mesh

    inks, labels, shape_ids = [], [], []
    blocks = [(cfg.first, cfg.seed), *((int(f), int(sd)) for f, sd in cfg.more_sets)]
    gens = [torch.Generator().manual_seed(seed) for _, seed in blocks]  # each block's camera jitter
    items = [(k, cls, first + i) for k, (first, _) in enumerate(blocks) for cls in cfg.classes for i in range(cfg.per_class)]
    for sid, (k, cls, index) in enumerate(tqdm(items, desc="view sketches", unit="shape", disable=not progress)):
        gen, seed = gens[k], blocks[k][1]
        variant = cfg.variants[index % len(cfg.variants)]
        mesh = normalize_mesh(to_mesh(generate(cls, index, seed, variant=variant), cfg.resolution), "cube", 0.8)[0]
        for view, az in enumerate(LAS_AZIMUTHS):
            for style in cfg.styles:
                for _ in range(cfg.sketches_per_view):
                    daz, d_el = ((torch.rand(2, generator=gen) * 2 - 1) * torch.tensor([cfg.azimuth_jitter, cfg.elevation_jitter])).tolist()
                    seed_k = int(torch.randint(0, 2**31 - 1, (), generator=gen))
                    ink = render_sketch(mesh, az + daz, style=style, size=cfg.model.image_size, elevation_deg=LAS_ELEVATION + d_el, seed=seed_k)  # type: ignore[arg-type]
                    inks.append(ink > 0.5)
                    labels.append(view)
                    shape_ids.append(sid)
    return torch.stack(inks), torch.tensor(labels), torch.tensor(shape_ids)


@dataclass
class ViewTrainReport:
    """What :func:`train_view_classifier` did."""

    checkpoint: Path
    train_sketches: int
    val_sketches: int
    val_accuracy: float
    """Share of held-out shapes' sketches whose view is picked right."""
    val_accuracy_by_style: dict[str, float]
    parameters: int
    seconds: float


def train_view_classifier(cfg: LASViewConfig, out_dir: str | Path, progress: bool = True) -> ViewTrainReport:
    """Render the synthetic set, train the classifier, write ``OUT/las_view.ckpt`` and report held-out accuracy.

    Raises:
        ShapegenError: for settings that leave nothing to train or validate on.
    """
    from shapegen.checkpoints import save_checkpoint
    from shapegen.data.sketches import SKETCH_STYLES

    if cfg.per_class < 2 or not cfg.classes or not cfg.styles or cfg.steps < 1:
        raise ShapegenError("las-view needs per_class >= 2, at least one class and style, and steps >= 1")
    if any(len(block) != 2 for block in cfg.more_sets):
        raise ShapegenError(f"more_sets takes [first, seed] pairs, e.g. [[500, 1]]; got {cfg.more_sets}")
    missing = [c for c in cfg.classes if cfg.model.categories and c not in cfg.model.categories]
    if missing:
        raise ShapegenError(f"model.categories has no head for {', '.join(missing)}; list every class there or leave it empty")
    for s in cfg.styles:
        if s not in SKETCH_STYLES:
            raise ShapegenError(f"unknown sketch style '{s}'; use {', '.join(SKETCH_STYLES)}")
    t0 = time.perf_counter()
    inks, labels, sids = render_view_set(cfg, progress)
    n_shapes = int(sids.max()) + 1
    gen = torch.Generator().manual_seed(cfg.seed)
    val_shapes = torch.randperm(n_shapes, generator=gen)[: max(1, round(cfg.val_fraction * n_shapes))]
    is_val = torch.isin(sids, val_shapes)
    torch.manual_seed(cfg.seed)
    model = ViewClassifier(cfg.model)
    # Sketches are rendered block by block and class by class, per_class shapes each: a sketch's
    # head is its class's (a one-head classifier ignores it).
    heads = torch.tensor([model.category_index(c) for c in cfg.classes])[sids // cfg.per_class % len(cfg.classes)]
    x_tr, y_tr, c_tr = inks[~is_val].float(), labels[~is_val], heads[~is_val]
    x_va, y_va, c_va = inks[is_val].float(), labels[is_val], heads[is_val]
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.steps)
    model.train()
    for _ in range(cfg.steps):
        idx = torch.randint(0, x_tr.shape[0], (cfg.batch_size,), generator=gen)
        x = x_tr[idx]
        # Small shifts: a drawing is rarely centred like a render.
        dx, dy = torch.randint(-3, 4, (2,), generator=gen).tolist()
        x = torch.roll(x, (dy, dx), dims=(1, 2))
        logits = model.member_logits(x, c_tr[idx])
        loss = F.cross_entropy(logits.flatten(0, 1), y_tr[idx].repeat(logits.shape[0]))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    model.eval()
    with torch.no_grad():
        pred = model(x_va, c_va).argmax(-1)
    # Sketches are rendered shape by shape, view by view, style by style, sketches_per_view each.
    style_of = torch.arange(inks.shape[0]) // cfg.sketches_per_view % len(cfg.styles)
    style_va = style_of[is_val]
    by_style = {s: float((pred[style_va == k] == y_va[style_va == k]).float().mean()) for k, s in enumerate(cfg.styles)}
    out = Path(out_dir) / "las_view.ckpt"
    save_checkpoint({"view_classifier": {"config": asdict(cfg.model), "weights": model.state_dict()}, "settings": _plain(asdict(cfg))}, out)
    return ViewTrainReport(out, int(x_tr.shape[0]), int(x_va.shape[0]), float((pred == y_va).float().mean()), by_style,
                           sum(p.numel() for p in model.parameters()), time.perf_counter() - t0)


def _plain(d: dict) -> dict:
    return {k: (_plain(v) if isinstance(v, dict) else list(v) if isinstance(v, (list, tuple)) else v) for k, v in d.items()}

"""Dataset and datamodule over a folder written by ``shapegen las prepare`` (:mod:`shapegen.data.las_prepare`)."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from shapegen.errors import ShapegenError

__all__ = ["LASDataConfig", "LASDataModule", "LASDataset", "check_sources", "read_index"]


@dataclass
class LASDataConfig:
    """Training data of LAS-Diffusion."""

    root: str = "data/las"
    """Folder written by ``shapegen las prepare``."""
    extra_roots: list[str] = field(default_factory=list)
    """More prepared folders trained on together with ``root`` (the same resolution and sketch size),
    e.g. a fine-tune that keeps the shapes a model learnt beside new ones; every shape of every folder
    is visited equally often."""
    batch_size: int = 16
    """Shapes per batch."""
    styles: list[str] = field(default_factory=lambda: ["contour", "canny"])
    """Sketch styles drawn from (one random sketch of the shape per item)."""
    num_workers: int = 0
    """DataLoader worker processes."""
    repeat: int = 1
    """Each epoch visits every shape this many times (small folders, tiny runs)."""
    forbid_sources: list[str] = field(default_factory=list)
    """Folders whose meshes must never be trained on (a benchmark's real meshes): a prepared shape whose
    source mesh lies under one of them is refused, and so is a data root inside one."""


def read_index(root: str | Path) -> dict:
    """The ``index.json`` of a prepared folder.

    Raises:
        ShapegenError: if the folder is not a prepared LAS data folder or holds no shapes.
    """
    path = Path(root) / "index.json"
    if not path.is_file():
        raise ShapegenError(f"'{root}' is not a prepared LAS folder (no index.json); run 'shapegen las prepare MESH_DIR -o {root}'")
    index = json.loads(path.read_text())
    if not index.get("shapes"):
        raise ShapegenError(f"'{root}' holds no prepared shapes; see 'skipped' in {path}")
    return index


def check_sources(root: str | Path, index: dict, forbidden: list[str]) -> None:
    """Refuse training data made from meshes under a ``forbidden`` folder (see ``LASDataConfig.forbid_sources``).

    Raises:
        ShapegenError: naming the first such shape (or the data root) and the folder.
    """
    import os

    walls = [Path(os.path.realpath(f)) for f in forbidden if f]
    if not walls:
        return

    def under(path: str | Path) -> Path | None:
        real = Path(os.path.realpath(path))
        return next((w for w in walls if real == w or w in real.parents), None)

    wall = under(root)
    if wall is not None:
        raise ShapegenError(f"training data '{root}' lies inside '{wall}', which data.forbid_sources keeps out of training")
    for name, rec in sorted(index.get("shapes", {}).items()):
        wall = under(rec.get("source", "")) if rec.get("source") else None
        if wall is not None:
            raise ShapegenError(f"shape '{name}' of '{root}' was prepared from '{rec['source']}', inside '{wall}', which "
                                "data.forbid_sources keeps out of training; prepare the data from other meshes")


def read_sketch_png(path: Path) -> torch.Tensor:
    """A prepared (black-on-white) sketch PNG as an ink map."""
    from PIL import Image

    with Image.open(path) as im:
        grey = np.asarray(im.convert("L"), dtype=np.float32) / 255.0
    return torch.from_numpy((grey < 0.5).astype(np.float32))


class LASDataset(Dataset):
    """Items: ``sdf`` (G^3 float, world units, clipped), ``shell`` (g^3 bool), ``label``, ``sketch``
    (S x S ink map, blank if the shape has none), ``view`` (canonical view index, -1 if none).

    ``root`` is one prepared folder or several (their shapes one after the other, each folder's in name order).
    """

    def __init__(self, root: str | Path | list, categories: list[str], styles: list[str], sketch_size: int, repeat: int = 1) -> None:
        roots = [Path(r) for r in (root if isinstance(root, (list, tuple)) else [root])]
        self.names: list[tuple[Path, str]] = []
        self.shapes: dict[tuple[Path, str], dict] = {}
        self.sketches: dict[tuple[Path, str], list[dict]] = {}
        for folder in roots:
            index = read_index(folder)
            for name in sorted(index["shapes"]):
                key = (folder, name)
                self.names.append(key)
                self.shapes[key] = index["shapes"][name]
                self.sketches[key] = []
            for r in index.get("sketches", []):
                if (folder, r["shape"]) in self.sketches and r["style"] in styles:
                    self.sketches[folder, r["shape"]].append(r)
        self.cat = {c: i for i, c in enumerate(categories)}
        self.sketch_size = sketch_size
        self.repeat = max(1, repeat)
        self._cache: dict[tuple[Path, str], tuple[torch.Tensor, torch.Tensor]] = {}
        self.seed = 0

    epoch_indices = True
    """The training sampler passes ``index + epoch * len(self)``: the sketch drawn for an item
    depends on ``(seed, epoch, index)`` only, not on which process or worker loads it."""

    def __len__(self) -> int:
        return len(self.names) * self.repeat

    def volumes(self, name: tuple[Path, str]) -> tuple[torch.Tensor, torch.Tensor]:
        if name not in self._cache:
            path = name[0] / self.shapes[name]["file"]
            try:
                with np.load(path, allow_pickle=False) as z:
                    self._cache[name] = (torch.from_numpy(z["sdf"].astype(np.float32)), torch.from_numpy(z["shell"]))
            except (OSError, ValueError, KeyError) as exc:  # ValueError: also an object array, never unpickled
                raise ShapegenError(f"cannot read {path} ({type(exc).__name__}: {str(exc).splitlines()[0]}); "
                                    "rerun 'shapegen las prepare'") from exc
        return self._cache[name]

    def __getitem__(self, i: int) -> dict:
        epoch, i = divmod(int(i), len(self))
        name = self.names[i % len(self.names)]
        sdf, shell = self.volumes(name)
        recs = self.sketches[name]
        if recs:
            r = recs[random.Random((self.seed * 1_000_003 + epoch) * 1_000_003 + i).randrange(len(recs))]
            ink = read_sketch_png(name[0] / r["file"])
            if ink.shape[-1] != self.sketch_size:
                from shapegen.data.sketches import binarize_sketch

                ink = binarize_sketch(ink, self.sketch_size)
            view = int(r["view"])
        else:
            ink, view = torch.zeros(self.sketch_size, self.sketch_size), -1
        label = self.cat.get(self.shapes[name]["category"], len(self.cat))
        return {"sdf": sdf, "shell": shell, "label": torch.tensor(label), "sketch": ink, "view": torch.tensor(view)}


class LASDataModule(pl.LightningDataModule):
    """Shuffled training batches of :class:`LASDataset`."""

    def __init__(self, cfg: LASDataConfig, sketch_size: int = 224, categories: list[str] | None = None, seed: int = 0) -> None:
        super().__init__()
        self.cfg = cfg
        self.seed = seed
        self.sketch_size = sketch_size
        self.roots = [cfg.root, *cfg.extra_roots]
        self.index = read_index(cfg.root)
        self.resolution = int(self.index["settings"]["resolution"])
        found = list(self.index.get("categories", []))
        for root in self.roots:
            index = self.index if root == cfg.root else read_index(root)
            check_sources(root, index, cfg.forbid_sources)
            if int(index["settings"]["resolution"]) != self.resolution:
                raise ShapegenError(f"'{root}' was prepared at resolution {index['settings']['resolution']}, '{cfg.root}' at "
                                    f"{self.resolution}; prepare every data folder with the same 'las prepare' config")
            found += [c for c in index.get("categories", []) if c not in found]
        self.categories = categories if categories is not None else found

    def train_dataloader(self) -> DataLoader:
        ds = LASDataset(self.roots, self.categories, self.cfg.styles, self.sketch_size, self.cfg.repeat)
        ds.seed = self.seed
        from shapegen.engine import train_loader

        # Batches are a function of the step: the same on one device or many, resumed or not.
        return train_loader(ds, min(self.cfg.batch_size, len(ds)), getattr(self, "trainer", None), self.seed, self.cfg.num_workers)

"""Datasets of Mosaic-SDF tensors (``.msdf.npz`` files) for generative training.

A folder of ``.msdf.npz`` files (keys ``tensor`` (n x (4 + k^3), rows ``[cx, cy, cz, s, V]``),
``k``, ``normalization``, ``source_hash``, ``version``; written by ``shapegen.fields.mosaic_sdf``)
becomes a dataset of ``{"tensor", "label", "caption"}`` items:

- ``labels: folders``: the class of a file is its first sub-folder under the root
  (``root/chair/a.msdf.npz`` -> ``chair``); files directly in the root get no class.
- ``labels: captions``: a CSV (``path,caption`` header) gives captions per file; files without
  one are skipped. ``path`` is relative to the root, with or without the ``.msdf.npz`` suffix,
  or the path of the mesh the file was encoded from (``.ply``, ``.obj``, ... suffix), so the
  ``captions.csv`` of ``shapegen data procedural`` applies to its encoded copy. When the root
  is a sub-folder of the captioned set (only its ``train/`` split, say), a path that ends with
  a file's relative path matches it, if only one does. Several rows for one path give that
  file several captions; each item draws one of them at random every time it is read (so
  every epoch), following torch's random state.
- ``labels: none``: unconditional.

``split`` (``--set data.split=train``) keeps only the files that ``<root>/index.csv`` (``path``,
``split`` and, optionally, ``class`` columns, as :mod:`shapegen.data.procedural_set` writes it)
lists with that split, matched by path without suffixes (``train/chair/chair_00001.ply`` ->
``train/chair/chair_00001.msdf.npz``); the class of such a file is its ``class`` column (or its
first sub-folder when the index has none). Held-out shapes beside the training ones are therefore
never read.

Everything is loaded into memory once (an M-SDF is 1.4 MB at n = 1024, k = 7).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pytorch_lightning as pl
import torch
from jaxtyping import Float
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from shapegen.errors import ShapegenError
from shapegen.geometry.mesh_io import MESH_SUFFIXES

SUFFIX = ".msdf.npz"
"""File suffix of a saved M-SDF."""


@dataclass
class MSDFDataConfig:
    """Where the training M-SDFs are and how they are batched."""

    root: str = ""
    """Folder searched recursively for ``*.msdf.npz`` files."""
    labels: Literal["folders", "captions", "none"] = "folders"
    """Class labels from sub-folder names, text from a captions CSV, or none."""
    captions: str = ""
    """CSV with columns ``path,caption`` (only for ``labels: captions``; several rows per path: one is drawn per item);
    relative paths are under ``root``."""
    split: str = ""
    """Only the files listed with this split in ``<root>/index.csv`` (e.g. ``train``); empty: every file under ``root``."""
    batch_size: int = 8
    """Shapes per training batch."""
    num_workers: int = 0
    """DataLoader worker processes (the data is in memory, so 0 is usually fastest)."""


def read_msdf_file(path: str | Path) -> tuple[np.ndarray, int]:
    """Read the ``tensor`` and ``k`` of one ``.msdf.npz`` file without importing the field code.

    Raises:
        ShapegenError: for an unreadable file, missing keys or a tensor of the wrong width.
    """
    try:
        with np.load(path, allow_pickle=False) as data:
            tensor, k = np.asarray(data["tensor"], dtype=np.float32), int(data["k"])
    except KeyError as exc:
        raise ShapegenError(f"'{path}' has no array {exc}; save M-SDFs with shapegen.fields.mosaic_sdf") from exc
    except Exception as exc:
        raise ShapegenError(f"cannot read '{path}' as an M-SDF file ({type(exc).__name__}); is it corrupt?") from exc
    if tensor.ndim != 2 or tensor.shape[1] != 4 + k**3:
        raise ShapegenError(f"'{path}' holds a tensor of shape {tensor.shape}, expected n x {4 + k**3} for k={k}")
    if not np.isfinite(tensor).all():
        raise ShapegenError(f"'{path}' contains NaN or infinite values; re-convert that shape")
    return tensor, k


class MSDFDataset(Dataset):
    """M-SDF tensors in memory with a class index and captions per item.

    Attributes:
        captions: the first caption of each item (``""`` without captions).
        caption_sets: every caption of each item; :meth:`__getitem__` draws one.
    """

    def __init__(self, tensors: Float[Tensor, "M n d"], labels: list[int], captions: list[str] | list[tuple[str, ...]], paths: list[Path]) -> None:
        self.tensors, self.labels, self.paths = tensors, labels, paths
        self.caption_sets = [(c,) if isinstance(c, str) else (tuple(c) or ("",)) for c in captions]
        self.captions = [c[0] for c in self.caption_sets]

    def __len__(self) -> int:
        return self.tensors.shape[0]

    def __getitem__(self, i: int) -> dict:
        options = self.caption_sets[i]
        caption = options[int(torch.randint(len(options), ()))] if len(options) > 1 else options[0]
        return {"tensor": self.tensors[i], "label": self.labels[i], "caption": caption}


def _caption_key(path: str) -> str:
    """A captions CSV path without its ``.msdf.npz`` or mesh suffix, with ``/`` separators."""
    key = path.strip().replace("\\", "/").removeprefix("./")
    if key.endswith(SUFFIX):
        return key.removesuffix(SUFFIX)
    low = key.lower()
    for suffix in MESH_SUFFIXES:
        if low.endswith(suffix):
            return key[: -len(suffix)]
    return key


def read_captions(csv_path: Path) -> dict[str, list[str]]:
    """The captions CSV as ``{path key: [captions in file order]}`` (see the module doc).

    Raises:
        ShapegenError: for a CSV without the ``path`` and ``caption`` columns.
    """
    captions: dict[str, list[str]] = {}
    with open(csv_path, newline="") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or not {"path", "caption"} <= set(reader.fieldnames):
            raise ShapegenError(f"captions CSV '{csv_path}' needs a header with columns path,caption, got {reader.fieldnames}")
        for row in reader:
            if row["path"] and row["caption"] is not None:
                captions.setdefault(_caption_key(row["path"]), []).append(row["caption"])
    return captions


def _match_captions(rel: list[str], captions: dict[str, list[str]], csv_path: Path) -> list[list[str] | None]:
    """Captions of each relative file key: an exact path, else the one CSV path ending with it."""
    out: list[list[str] | None] = [captions.get(r) for r in rel]
    if all(c is not None for c in out):
        return out
    by_tail: dict[str, list[str]] = {}
    for key in captions:
        parts = key.split("/")
        for k in range(1, len(parts)):
            by_tail.setdefault("/".join(parts[k:]), []).append(key)
    for i, r in enumerate(rel):
        if out[i] is None and r in by_tail:
            keys = by_tail[r]
            if len(keys) > 1:
                raise ShapegenError(f"'{r}' matches several paths in '{csv_path}' ({keys[0]}, {keys[1]}); use paths relative to data.root")
            out[i] = captions[keys[0]]
    return out


def read_split(root: Path, split: str) -> dict[str, str]:
    """Path key (no suffix) -> class (``""`` when the index has no class column) of the rows of
    ``root/index.csv`` in ``split``.

    Raises:
        ShapegenError: for a missing index, one without ``path`` and ``split`` columns, or a split
            that no row has.
    """
    index = root / "index.csv"
    if not index.is_file():
        raise ShapegenError(f"data.split={split} needs '{index}' (columns path,split, as 'shapegen data procedural' writes); "
                            "or drop data.split to train on every file under data.root")
    with open(index, newline="") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or not {"path", "split"} <= set(reader.fieldnames):
            raise ShapegenError(f"'{index}' needs a header with columns path,split, got {reader.fieldnames}")
        rows = list(reader)
    keys = {_caption_key(r["path"]): (r.get("class") or "") for r in rows if r["split"] == split}
    if not keys:
        found = sorted({r["split"] for r in rows})
        raise ShapegenError(f"no shape of split '{split}' in '{index}'; its splits are: {', '.join(found) or 'none'}")
    return keys


def load_msdf_folder(config: MSDFDataConfig) -> tuple[MSDFDataset, list[str], int]:
    """Load every M-SDF under ``config.root``.

    Returns:
        The dataset, the sorted class names (empty unless ``labels: folders``) and ``k``.

    Raises:
        ShapegenError: for a missing root, no files, mixed ``n``/``k``, or a bad captions CSV.
    """
    root = Path(config.root)
    if not config.root or not root.is_dir():
        raise ShapegenError(f"data root '{config.root}' is not a folder; pass --set data.root=FOLDER holding *{SUFFIX} files")
    files = sorted(root.rglob(f"*{SUFFIX}"))
    if not files:
        raise ShapegenError(f"no *{SUFFIX} files under '{root}'; convert meshes to M-SDF first")
    split_classes: dict[str, str] | None = None
    if config.split:
        split_classes = read_split(root, config.split)
        files = [f for f in files if f.relative_to(root).as_posix().removesuffix(SUFFIX) in split_classes]
        if not files:
            raise ShapegenError(f"none of the *{SUFFIX} files under '{root}' is in split '{config.split}' of its index.csv; "
                                "write them with 'shapegen data procedural --set procedural.msdf=true'")
    per_file: list[list[str] | None] = [None] * len(files)
    if config.labels == "captions":
        csv_path = Path(config.captions)
        if not csv_path.is_absolute() and not csv_path.is_file():
            csv_path = root / csv_path
        if not config.captions or not csv_path.is_file():
            raise ShapegenError(f"captions CSV '{config.captions}' not found; pass --set data.captions=FILE with columns path,caption")
        keys = [f.relative_to(root).as_posix().removesuffix(SUFFIX) for f in files]
        per_file = _match_captions(keys, read_captions(csv_path), csv_path)
        files, per_file = [f for f, c in zip(files, per_file) if c], [c for c in per_file if c]
        if not files:
            raise ShapegenError(f"none of the paths in '{csv_path}' match a *{SUFFIX} file under '{root}'")
    rel = [f.relative_to(root) for f in files]
    # The class of each file: the index's class column with a split, else its first sub-folder ("" at the root).
    groups = [r.parts[0] if len(r.parts) > 1 else "" for r in rel]
    if split_classes is not None:
        groups = [split_classes[r.as_posix().removesuffix(SUFFIX)] or g for r, g in zip(rel, groups)]
    names = sorted({g for g in groups if g}) if config.labels == "folders" else []
    tensors, ks = [], set()
    for f in files:
        t, k = read_msdf_file(f)
        tensors.append(t)
        ks.add(k)
    shapes = {t.shape for t in tensors}
    if len(shapes) > 1 or len(ks) > 1:
        raise ShapegenError(f"the M-SDFs under '{root}' differ in size ({sorted(shapes)}); convert them all with the same n and k")
    index = {name: i for i, name in enumerate(names)}
    # Files directly under the root carry the null class (index len(names)) when classes exist.
    labels = [index.get(g, len(names)) for g in groups]
    caps = [tuple(c) if c else ("",) for c in per_file]
    data = MSDFDataset(torch.from_numpy(np.stack(tensors)), labels, caps, files)
    return data, names, ks.pop()


def msdf_statistics(tensors: Float[Tensor, "M n d"]) -> tuple[Float[Tensor, " d"], Float[Tensor, " d"]]:
    """Per-channel mean and standard deviation for normalisation.

    Centres get one mean/std per axis, the scale its own, and the ``k^3`` values share one
    mean/std (they are samples of the same quantity at different nodes). Standard deviations
    are floored at 1e-3 so a constant channel (e.g. one shared scale) stays finite.
    """
    flat = tensors.reshape(-1, tensors.shape[-1]).double()
    mean, std = flat.mean(0), flat.std(0, unbiased=False)
    values = flat[:, 4:]
    mean[4:], std[4:] = values.mean(), values.std(unbiased=False)
    return mean.float(), std.clamp_min(1e-3).float()


def value_pca(tensors: Float[Tensor, "M n d"], components: int) -> tuple[Float[Tensor, " v"], Float[Tensor, "v m"]]:
    """Mean grid and the top ``components`` principal directions of the ``k^3`` grid values.

    The values of one local grid near a surface are strongly correlated (close to an affine
    function of the node position), so a few directions hold nearly all of their variance.

    Returns:
        ``(value_mean, basis)`` with orthonormal basis columns sorted by decreasing variance.
    """
    values = tensors[..., 4:].reshape(-1, tensors.shape[-1] - 4).double()
    if not 0 < components <= values.shape[1]:
        raise ShapegenError(f"value_components must be in 1..{values.shape[1]} (the k^3 grid values), got {components}")
    mean = values.mean(0)
    centred = values - mean
    # Eigenvectors of the (v x v) covariance: cheap for v = k^3 <= 343 and any number of grids.
    evals, evecs = torch.linalg.eigh(centred.T @ centred / values.shape[0])
    order = evals.argsort(descending=True)[:components]
    return mean.float(), evecs[:, order].float().contiguous()


def latent_statistics(latent: Float[Tensor, "M n e"]) -> tuple[Float[Tensor, " e"], Float[Tensor, " e"]]:
    """Per-channel mean and std of projected rows ``[p, s, c]``: every channel its own (whitening).

    Standard deviations are floored at 1e-3 as in :func:`msdf_statistics`.
    """
    flat = latent.reshape(-1, latent.shape[-1]).double()
    return flat.mean(0).float(), flat.std(0, unbiased=False).clamp_min(1e-3).float()


class MSDFDataModule(pl.LightningDataModule):
    """Lightning datamodule over a folder of M-SDFs (all shapes are training shapes)."""

    def __init__(self, config: MSDFDataConfig, seed: int = 0) -> None:
        super().__init__()
        self.config = config
        self.seed = seed
        self.dataset: MSDFDataset | None = None
        self.classes: list[str] = []
        self.k = 0

    def setup(self, stage: str | None = None) -> None:
        if self.dataset is None:
            self.dataset, self.classes, self.k = load_msdf_folder(self.config)

    @property
    def n(self) -> int:
        """Rows per M-SDF."""
        self.setup()
        return int(self.dataset.tensors.shape[1])

    def train_dataloader(self) -> DataLoader:
        self.setup()
        bs = min(self.config.batch_size, len(self.dataset))
        from shapegen.engine import train_loader

        # Batches are a function of the step: the same on one device or many, resumed or not.
        return train_loader(self.dataset, bs, getattr(self, "trainer", None), self.seed, self.config.num_workers)


__all__ = [
    "SUFFIX",
    "MSDFDataConfig",
    "MSDFDataModule",
    "MSDFDataset",
    "latent_statistics",
    "load_msdf_folder",
    "msdf_statistics",
    "read_captions",
    "read_msdf_file",
    "read_split",
    "value_pca",
]

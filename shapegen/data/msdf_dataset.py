"""Datasets of Mosaic-SDF tensors (``.msdf.npz`` files) for generative training.

A folder of ``.msdf.npz`` files (keys ``tensor`` (n x (4 + k^3), rows ``[cx, cy, cz, s, V]``),
``k``, ``normalization``, ``source_hash``, ``version``; written by ``shapegen.fields.mosaic_sdf``)
becomes a dataset of ``{"tensor", "label", "caption"}`` items:

- ``labels: folders``: the class of a file is its first sub-folder under the root
  (``root/chair/a.msdf.npz`` -> ``chair``); files directly in the root get no class.
- ``labels: captions``: a CSV (``path,caption`` header; ``path`` relative to the root, with or
  without the ``.msdf.npz`` suffix) gives one caption per file; files without one are skipped.
- ``labels: none``: unconditional.

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
    """CSV with columns ``path,caption`` (only for ``labels: captions``); relative paths are under ``root``."""
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
    """M-SDF tensors in memory with a class index and a caption per item."""

    def __init__(self, tensors: Float[Tensor, "M n d"], labels: list[int], captions: list[str], paths: list[Path]) -> None:
        self.tensors, self.labels, self.captions, self.paths = tensors, labels, captions, paths

    def __len__(self) -> int:
        return self.tensors.shape[0]

    def __getitem__(self, i: int) -> dict:
        return {"tensor": self.tensors[i], "label": self.labels[i], "caption": self.captions[i]}


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
    captions: dict[str, str] = {}
    if config.labels == "captions":
        csv_path = Path(config.captions)
        if not csv_path.is_absolute() and not csv_path.is_file():
            csv_path = root / csv_path
        if not config.captions or not csv_path.is_file():
            raise ShapegenError(f"captions CSV '{config.captions}' not found; pass --set data.captions=FILE with columns path,caption")
        with open(csv_path, newline="") as fh:
            reader = csv.DictReader(fh)
            if not reader.fieldnames or not {"path", "caption"} <= set(reader.fieldnames):
                raise ShapegenError(f"captions CSV '{csv_path}' needs a header with columns path,caption, got {reader.fieldnames}")
            for row in reader:
                captions[row["path"].removesuffix(SUFFIX)] = row["caption"]
        files = [f for f in files if str(f.relative_to(root)).removesuffix(SUFFIX) in captions]
        if not files:
            raise ShapegenError(f"none of the paths in '{csv_path}' match a *{SUFFIX} file under '{root}'")
    rel = [f.relative_to(root) for f in files]
    names = sorted({r.parts[0] for r in rel if len(r.parts) > 1}) if config.labels == "folders" else []
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
    labels = [index.get(r.parts[0], len(names)) if len(r.parts) > 1 else len(names) for r in rel]
    caps = [captions.get(str(r).removesuffix(SUFFIX), "") for r in rel]
    data = MSDFDataset(torch.from_numpy(np.stack(tensors)), labels, caps, files)
    return data, names, ks.pop()


def msdf_statistics(tensors: Float[Tensor, "M n d"]) -> tuple[Float[Tensor, "d"], Float[Tensor, "d"]]:
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


def value_pca(tensors: Float[Tensor, "M n d"], components: int) -> tuple[Float[Tensor, "v"], Float[Tensor, "v m"]]:
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


def latent_statistics(latent: Float[Tensor, "M n e"]) -> tuple[Float[Tensor, "e"], Float[Tensor, "e"]]:
    """Per-channel mean and std of projected rows ``[p, s, c]``: every channel its own (whitening).

    Standard deviations are floored at 1e-3 as in :func:`msdf_statistics`.
    """
    flat = latent.reshape(-1, latent.shape[-1]).double()
    return flat.mean(0).float(), flat.std(0, unbiased=False).clamp_min(1e-3).float()


class MSDFDataModule(pl.LightningDataModule):
    """Lightning datamodule over a folder of M-SDFs (all shapes are training shapes)."""

    def __init__(self, config: MSDFDataConfig) -> None:
        super().__init__()
        self.config = config
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
        return DataLoader(self.dataset, batch_size=bs, shuffle=True, drop_last=True, num_workers=self.config.num_workers,
                          persistent_workers=self.config.num_workers > 0)


__all__ = ["MSDFDataConfig", "MSDFDataModule", "MSDFDataset", "SUFFIX", "latent_statistics", "load_msdf_folder", "msdf_statistics", "read_msdf_file", "value_pca"]

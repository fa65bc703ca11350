"""Tiny synthetic M-SDF folders (n = 16, k = 3) with analytic values: spheres and slabs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from shapegen.methods.msdf import save_msdf

N, K = 16, 3


def _grid(k: int) -> torch.Tensor:
    g = torch.linspace(-1, 1, k)
    return torch.stack(torch.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)


def sphere_msdf(radius: float, gen: torch.Generator) -> torch.Tensor:
    """Grids centred on a sphere surface, values = exact sphere SDF at the nodes."""
    d = torch.randn(N, 3, generator=gen)
    centers = radius * d / d.norm(dim=-1, keepdim=True)
    s = 0.35
    nodes = centers[:, None] + s * _grid(K)[None]
    return torch.cat([centers, torch.full((N, 1), s), (nodes.norm(dim=-1) - radius)], dim=1)


def slab_msdf(half: float, gen: torch.Generator) -> torch.Tensor:
    """Grids on the top face of a slab |y| < half, values = y - half."""
    xz = torch.rand(N, 2, generator=gen) * 1.2 - 0.6
    centers = torch.stack([xz[:, 0], torch.full((N,), half), xz[:, 1]], dim=-1)
    s = 0.3
    nodes = centers[:, None] + s * _grid(K)[None]
    return torch.cat([centers, torch.full((N, 1), s), nodes[..., 1] - half], dim=1)


def write_class_folder(root: Path, per_class: int = 4, seed: int = 0) -> Path:
    """``root/sphere/*.msdf.npz`` and ``root/slab/*.msdf.npz``."""
    gen = torch.Generator().manual_seed(seed)
    for i in range(per_class):
        save_msdf(sphere_msdf(0.5 + 0.05 * i, gen), K, root / "sphere" / f"s{i}.msdf.npz")
        save_msdf(slab_msdf(0.1 + 0.02 * i, gen), K, root / "slab" / f"b{i}.msdf.npz")
    return root


def write_caption_folder(root: Path, per_class: int = 2, seed: int = 0) -> Path:
    write_class_folder(root, per_class, seed)
    lines = ["path,caption"]
    lines += [f"sphere/s{i},a round ball" for i in range(per_class)]
    lines += [f"slab/b{i}.msdf.npz,a flat thin slab" for i in range(per_class)]
    (root / "captions.csv").write_text("\n".join(lines) + "\n")
    return root


__all__ = ["K", "N", "np", "slab_msdf", "sphere_msdf", "write_caption_folder", "write_class_folder"]

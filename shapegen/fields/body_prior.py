"""Body prior: an analytic capsule/ellipsoid humanoid with named joints, as an SDF and a template.

The analytic humanoid needs nothing beyond torch. It stands in shapegen's frame (+Y up,
facing +Z, metres, feet on ``y = 0``, about 1.7 m tall) in an A-pose whose arms hang
``arm_angle`` degrees below the horizontal (0 gives a T-pose). The character's left is +X.

Every primitive (a capsule along a bone, or an ellipsoid for pelvis, chest and head) belongs to
one joint, and every joint to one body part (``torso``, ``head``, ``arm_l``, ...). That labelling
gives a part segmentation of any point (the joint of the closest primitive) and procedural skin
weights (:func:`shapegen.geometry.rigging.procedural_skin_weights`).

The Anny body model (NAVER Labs, PyPI ``anny``; Apache-2.0 code, CC0 assets) is an optional
extra, imported lazily by :func:`import_anny` with its cache in a configurable folder.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from jaxtyping import Float
from torch import Tensor

from shapegen.errors import ShapegenError

__all__ = ["BodyPriorConfig", "HumanoidPrior", "Primitive", "import_anny"]


@dataclass
class BodyPriorConfig:
    """Settings of the body prior."""

    kind: Literal["analytic", "anny"] = "analytic"
    """``analytic``: capsules and ellipsoids, no dependency; ``anny``: the Anny body model (optional extra)."""
    height: float = 1.7
    """Standing height in metres (the analytic body is designed at 1.72 m and scaled)."""
    arm_angle: float = 35.0
    """Arms' angle below the horizontal in degrees (0: T-pose, about 35-45: A-pose)."""
    blend: float = 0.02
    """Smooth-union blend radius between primitives, in metres (at the design height)."""
    anny_cache_dir: str | None = None
    """Folder for Anny's first-build cache (about 1.1 GB); default: Anny's own (``ANNY_CACHE_DIR``)."""


@dataclass(frozen=True)
class Primitive:
    """One solid of the analytic body, owned by a joint.

    Attributes:
        joint: index of the owning joint.
        kind: ``"capsule"`` (segment ``a``-``b``, radius ``radius[0]``) or ``"ellipsoid"``
            (centre ``a``, semi-axes ``radius``).
        a: capsule start or ellipsoid centre (metres).
        b: capsule end (unused for ellipsoids).
        radius: capsule radius in ``radius[0]``, or the ellipsoid's three semi-axes.
    """

    joint: int
    kind: Literal["capsule", "ellipsoid"]
    a: tuple[float, float, float]
    b: tuple[float, float, float]
    radius: tuple[float, float, float]


# name, parent, part. Order is topological (parents first).
_JOINTS: list[tuple[str, str | None, str]] = [
    ("pelvis", None, "torso"),
    ("spine", "pelvis", "torso"),
    ("chest", "spine", "torso"),
    ("neck", "chest", "head"),
    ("head", "neck", "head"),
]
for _s in ("l", "r"):
    _JOINTS += [
        (f"clavicle_{_s}", "chest", f"arm_{_s}"),
        (f"upper_arm_{_s}", f"clavicle_{_s}", f"arm_{_s}"),
        (f"forearm_{_s}", f"upper_arm_{_s}", f"arm_{_s}"),
        (f"hand_{_s}", f"forearm_{_s}", f"arm_{_s}"),
        (f"thigh_{_s}", "pelvis", f"leg_{_s}"),
        (f"shin_{_s}", f"thigh_{_s}", f"leg_{_s}"),
        (f"foot_{_s}", f"shin_{_s}", f"leg_{_s}"),
    ]

_DESIGN_HEIGHT = 1.72


class HumanoidPrior:
    """The analytic humanoid: joints, parts, primitives and a smooth-union SDF.

    Attributes:
        joint_names: joint names, parents before children.
        parents: parent index per joint (-1 for the root ``pelvis``).
        parts: body-part name per joint.
        joint_positions: ``J 3`` rest positions of the joints (heads of the bones), metres.
        primitives: the solids, each owned by a joint.
    """

    def __init__(self, config: BodyPriorConfig | None = None) -> None:
        cfg = config or BodyPriorConfig()
        if cfg.kind != "analytic":
            raise ShapegenError(f"HumanoidPrior is the analytic body; got kind={cfg.kind!r} (use import_anny for Anny)")
        if not (0.3 <= cfg.height <= 3.0):
            raise ShapegenError(f"body height must be in [0.3, 3] metres, got {cfg.height}")
        self.config = cfg
        self.joint_names = [n for n, _, _ in _JOINTS]
        index = {n: i for i, n in enumerate(self.joint_names)}
        self.parents = [-1 if p is None else index[p] for _, p, _ in _JOINTS]
        self.parts = [part for _, _, part in _JOINTS]
        pos: dict[str, tuple[float, float, float]] = {
            "pelvis": (0.0, 0.98, 0.0),
            "spine": (0.0, 1.12, 0.0),
            "chest": (0.0, 1.30, 0.0),
            "neck": (0.0, 1.48, 0.0),
            "head": (0.0, 1.57, 0.01),
        }
        prims: list[tuple[str, str, tuple, tuple, tuple]] = [
            ("pelvis", "ellipsoid", (0.0, 0.97, 0.0), (0, 0, 0), (0.165, 0.12, 0.11)),
            ("spine", "ellipsoid", (0.0, 1.13, 0.0), (0, 0, 0), (0.145, 0.12, 0.10)),
            ("chest", "ellipsoid", (0.0, 1.32, 0.0), (0, 0, 0), (0.175, 0.16, 0.115)),
            ("neck", "capsule", (0.0, 1.45, 0.0), (0.0, 1.56, 0.01), (0.05, 0, 0)),
            ("head", "ellipsoid", (0.0, 1.615, 0.015), (0, 0, 0), (0.085, 0.105, 0.1)),
        ]
        angle = math.radians(cfg.arm_angle)
        for s, sx in (("l", 1.0), ("r", -1.0)):
            d = (sx * math.cos(angle), -math.sin(angle), 0.0)
            shoulder = (sx * 0.17, 1.42, 0.0)
            elbow = tuple(shoulder[k] + 0.28 * d[k] for k in range(3))
            wrist = tuple(shoulder[k] + 0.53 * d[k] for k in range(3))
            tip = tuple(shoulder[k] + 0.70 * d[k] for k in range(3))
            hip, knee, ankle = (sx * 0.09, 0.92, 0.0), (sx * 0.09, 0.50, 0.0), (sx * 0.09, 0.09, 0.0)
            toe = (sx * 0.09, 0.035, 0.15)
            pos.update({
                f"clavicle_{s}": (sx * 0.03, 1.42, 0.0),
                f"upper_arm_{s}": shoulder,
                f"forearm_{s}": elbow,
                f"hand_{s}": wrist,
                f"thigh_{s}": hip,
                f"shin_{s}": knee,
                f"foot_{s}": ankle,
            })
            prims += [
                (f"clavicle_{s}", "capsule", (sx * 0.04, 1.42, 0.0), shoulder, (0.055, 0, 0)),
                (f"upper_arm_{s}", "capsule", shoulder, elbow, (0.048, 0, 0)),
                (f"forearm_{s}", "capsule", elbow, wrist, (0.038, 0, 0)),
                (f"hand_{s}", "capsule", wrist, tip, (0.032, 0, 0)),
                (f"thigh_{s}", "capsule", hip, knee, (0.075, 0, 0)),
                (f"shin_{s}", "capsule", knee, ankle, (0.052, 0, 0)),
                (f"foot_{s}", "capsule", (sx * 0.09, 0.05, -0.03), toe, (0.042, 0, 0)),
            ]
        k = cfg.height / _DESIGN_HEIGHT
        sc = lambda v: tuple(float(x) * k for x in v)
        self.scale = k
        self.joint_positions: Float[Tensor, "J 3"] = torch.tensor([sc(pos[n]) for n in self.joint_names])
        self.primitives = [Primitive(index[j], kind, sc(a), sc(b), sc(r)) for j, kind, a, b, r in prims]
        self.blend = cfg.blend * k

    # ------------------------------------------------------------------------------------
    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    def primitive_distances(self, points: Float[Tensor, "N 3"]) -> Float[Tensor, "N P"]:
        """Signed distance to each primitive (exact for capsules, a bound for ellipsoids)."""
        cols = []
        for pr in self.primitives:
            a = torch.tensor(pr.a, dtype=points.dtype, device=points.device)
            if pr.kind == "capsule":
                b = torch.tensor(pr.b, dtype=points.dtype, device=points.device)
                pa, ba = points - a, b - a
                h = ((pa @ ba) / (ba @ ba)).clamp(0, 1)
                cols.append((pa - h[:, None] * ba).norm(dim=-1) - pr.radius[0])
            else:
                r = torch.tensor(pr.radius, dtype=points.dtype, device=points.device)
                q = points - a
                k0 = (q / r).norm(dim=-1)
                k1 = (q / (r * r)).norm(dim=-1)
                # Quilez's ellipsoid bound: k0 (k0 - 1) / k1, exact on the surface.
                cols.append(k0 * (k0 - 1) / k1.clamp_min(1e-12))
        return torch.stack(cols, dim=1)

    def sdf(self, points: Float[Tensor, "N 3"]) -> Float[Tensor, " N"]:
        """Signed distance (approximate: smooth union of the primitives), negative inside, metres."""
        d = self.primitive_distances(points)
        # Exponential smooth minimum: symmetric in its arguments, so the body stays exactly
        # left-right symmetric (the pairwise polynomial one depends on the order of union).
        k = self.blend / 4
        return -k * torch.logsumexp(-d / k, dim=1)

    __call__ = sdf

    def density(self, points: Float[Tensor, "N 3"], beta: float = 0.01, alpha: float | None = None) -> Float[Tensor, " N"]:
        """Volume density of the body for initialising a NeRF (VolSDF, arXiv 2106.12052, Eq. 2-3).

        ``sigma = alpha * Psi_beta(-sdf)`` with ``Psi_beta`` the Laplace CDF of scale ``beta``
        (metres): ``alpha / 2`` on the surface, about ``alpha`` well inside, decaying outside.

        Args:
            points: ``N 3`` points in metres.
            beta: surface sharpness in metres.
            alpha: density deep inside; default ``1 / beta`` as in VolSDF.
        """
        a = 1.0 / beta if alpha is None else alpha
        s = -self.sdf(points) / beta
        # Laplace CDF: 0.5 exp(s) for s <= 0, 1 - 0.5 exp(-s) for s > 0.
        psi = torch.where(s <= 0, 0.5 * torch.exp(s.clamp_max(0)), 1 - 0.5 * torch.exp(-s.clamp_min(0)))
        return a * psi

    def segment(self, points: Float[Tensor, "N 3"]) -> torch.Tensor:
        """Owning joint of the closest primitive for each point (``N`` int64)."""
        owner = torch.tensor([p.joint for p in self.primitives], device=points.device)
        return owner[self.primitive_distances(points).argmin(dim=1)]

    def bounds(self, margin: float = 0.05) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
        """A box around the body with ``margin`` metres to spare (for grids)."""
        k = self.scale
        half = 0.75 * k + margin
        return ((-half, -margin, -0.25 * k - margin), (half, _DESIGN_HEIGHT * k + margin, 0.25 * k + margin))

    def template_mesh(self, resolution: int = 96):
        """Marching-cubes surface of the SDF on a ``resolution``-cell grid along the height.

        Returns:
            A :class:`~shapegen.geometry.mesh.Mesh` in metres (+Y up, facing +Z).
        """
        from shapegen.geometry.extract import evaluate_grid, marching_cubes

        lo, hi = self.bounds()
        # A cubic grid covering the box keeps cells isotropic.
        side = max(h - low for low, h in zip(lo, hi, strict=True))
        centre = [(low + h) / 2 for low, h in zip(lo, hi, strict=True)]
        box = (tuple(c - side / 2 for c in centre), tuple(c + side / 2 for c in centre))
        values = evaluate_grid(self.sdf, resolution, box)
        return marching_cubes(values, box)


def import_anny(cache_dir: str | os.PathLike | None = None):
    """Import the optional ``anny`` package with its cache in ``cache_dir``; returns the module.

    Anny reads ``ANNY_CACHE_DIR`` when it is first imported, so the variable is set before the
    import. Its SMPL/SMPL-X interoperability paths download non-commercial data: never call them.

    Raises:
        ShapegenError: if anny is not installed.
    """
    if cache_dir is not None:
        path = Path(cache_dir).expanduser()
        path.mkdir(parents=True, exist_ok=True)
        os.environ["ANNY_CACHE_DIR"] = str(path)
    try:
        import anny
    except ImportError as exc:
        raise ShapegenError(f"the Anny body prior needs the optional package anny ({exc}); pip install anny, or use kind=analytic") from exc
    if cache_dir is not None:
        # Anny reads the variable only on its first import; later calls set the path directly.
        from anny.paths import set_anny_cache_path

        set_anny_cache_path(path)
    return anny


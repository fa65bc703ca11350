"""jaxtyping aliases and the dimension glossary used in every tensor signature.

Dimension names:
    B: batch; R: rays; S: samples per ray; N: points; V: vertices; F: faces; T: tetrahedra;
    G: grid side; H, W: image height and width; C: channels; K: grid values per local grid.

Example:
    ``def f(points: Float[Tensor, "N 3"]) -> Float[Tensor, "N"]: ...``
"""

from __future__ import annotations

from jaxtyping import Bool, Float, Int, Shaped
from torch import Tensor

Points = Float[Tensor, "N 3"]
Vertices = Float[Tensor, "V 3"]
Faces = Int[Tensor, "F 3"]

__all__ = ["Bool", "Faces", "Float", "Int", "Points", "Shaped", "Tensor", "Vertices"]

"""Geometry core: mesh I/O, signed distance, sampling, metrics, mesh extraction and export."""

from shapegen.geometry.mesh import Mesh, Normalization, PBRMaterial

__all__ = ["Mesh", "Normalization", "PBRMaterial"]

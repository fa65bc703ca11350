"""nerfacc backend (CUDA only): the same functions as the torch reference, using nerfacc's
packed CUDA kernels. Imported lazily by :func:`renderers.backends.get_backend`; importing
this module imports nerfacc.
"""

from __future__ import annotations

import nerfacc

NAME = "nerfacc"


def _packed_info(ray_indices, n_rays):
    return None if ray_indices is None else nerfacc.pack_info(ray_indices, n_rays)


def transmittance_from_alpha(alphas, ray_indices=None, n_rays=None):
    return nerfacc.render_transmittance_from_alpha(alphas, ray_indices=ray_indices, n_rays=n_rays)


def weights_from_alpha(alphas, ray_indices=None, n_rays=None):
    return nerfacc.render_weight_from_alpha(alphas, ray_indices=ray_indices, n_rays=n_rays)


def weights_from_density(t_starts, t_ends, sigmas, ray_indices=None, n_rays=None):
    return nerfacc.render_weight_from_density(
        t_starts, t_ends, sigmas, ray_indices=ray_indices, n_rays=n_rays
    )


def accumulate(weights, values, ray_indices=None, n_rays=None):
    out = nerfacc.accumulate_along_rays(weights, values, ray_indices=ray_indices, n_rays=n_rays)
    return out


def traverse_grid(origins, directions, binaries, aabbs, near, far, step_size):
    """Packed (ray_indices, t_starts, t_ends) of the steps inside occupied cells."""
    intervals, samples, _ = nerfacc.traverse_grids(
        origins.contiguous(),
        directions.contiguous(),
        binaries.contiguous(),
        aabbs.contiguous(),
        near_planes=near.contiguous(),
        far_planes=far.contiguous(),
        step_size=step_size,
        cone_angle=0.0,
    )
    t_starts = intervals.vals[intervals.is_left]
    t_ends = intervals.vals[intervals.is_right]
    return samples.ray_indices.long(), t_starts, t_ends


def visibility_from_alpha(alphas, ray_indices, n_rays, early_stop_eps, alpha_thre):
    packed_info = nerfacc.pack_info(ray_indices, n_rays)
    return nerfacc.render_visibility_from_alpha(
        alphas, packed_info=packed_info, early_stop_eps=early_stop_eps, alpha_thre=alpha_thre
    )


__all__ = [
    n for n in dir() if not n.startswith("_") and n not in ("nerfacc", "torch", "annotations")
]

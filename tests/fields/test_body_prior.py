"""The analytic body prior: SDF sign, bounds, left-right symmetry, joints and segmentation."""

from __future__ import annotations

import pytest
import torch

from shapegen.errors import ShapegenError
from shapegen.fields.body_prior import BodyPriorConfig, HumanoidPrior, import_anny


def test_sdf_sign_bounds_and_symmetry():
    prior = HumanoidPrior()
    inside = prior.joint_positions  # every joint lies inside the body
    assert (prior.sdf(inside) < 0).all()
    far = torch.tensor([[0.0, 2.2, 0.0], [1.2, 1.0, 0.0], [0.0, 1.0, 0.6], [0.0, -0.3, 0.0]])
    assert (prior.sdf(far) > 0).all()
    pts = torch.rand(2000, 3) * torch.tensor([1.6, 1.9, 0.6]) - torch.tensor([0.8, 0.1, 0.3])
    mirrored = pts * torch.tensor([-1.0, 1.0, 1.0])
    torch.testing.assert_close(prior.sdf(pts), prior.sdf(mirrored), atol=1e-5, rtol=0)
    # Height: the crown is ~1.72 m above the soles (sdf crosses zero along the vertical axis).
    y = torch.linspace(1.6, 1.8, 201)
    d = prior.sdf(torch.stack([torch.zeros_like(y), y, torch.full_like(y, 0.015)], 1))
    top = float(y[(d < 0).nonzero().max()])
    assert 1.69 < top < 1.74


def test_joints_parts_scale_and_left_is_plus_x():
    prior = HumanoidPrior(BodyPriorConfig(height=1.8))
    assert prior.parents[0] == -1 and all(p < i for i, p in enumerate(prior.parents))
    hand_l = prior.joint_positions[prior.joint_names.index("hand_l")]
    assert hand_l[0] > 0.4  # the character's left is +X when it faces +Z
    j = prior.segment(prior.joint_positions[[prior.joint_names.index("forearm_l")]] + torch.tensor([[0.05, -0.03, 0.0]]))
    assert prior.parts[int(j)] == "arm_l"
    with pytest.raises(ShapegenError, match="height"):
        HumanoidPrior(BodyPriorConfig(height=10.0))


def test_anny_missing_is_one_line_error(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "anny", None)  # import anny -> ImportError
    with pytest.raises(ShapegenError, match="pip install anny"):
        import_anny(tmp_path / "cache")
    assert (tmp_path / "cache").is_dir()


def test_density_is_half_alpha_on_the_surface_and_decays_outside():
    prior = HumanoidPrior()
    chest = prior.joint_positions[[prior.joint_names.index("chest")]]
    assert float(prior.density(chest, beta=0.01)) > 99.0  # deep inside: about 1 / beta
    # Walk out along +Z from the chest: density falls through alpha / 2 where the SDF is zero.
    z = torch.linspace(0.0, 0.4, 401)
    pts = chest + torch.stack([torch.zeros_like(z), torch.zeros_like(z), z], 1)
    sigma, d = prior.density(pts, beta=0.01), prior.sdf(pts)
    assert (sigma[1:] <= sigma[:-1] + 1e-4).all()
    at_surface = sigma[d.abs().argmin()]
    assert abs(float(at_surface) - 50.0) < 5.0 and float(sigma[-1]) < 1e-3

"""The rich chair, table and mug generators: every family meshes to one closed piece, replays from
its parameters, is captioned, and the classic variant is untouched."""

from __future__ import annotations

import pytest
import torch

from shapegen.data.captions import attributes, captions
from shapegen.data.procedural import from_params, generate, to_mesh
from shapegen.data.procedural_furniture import CHAIR_FAMILIES, MUG_FAMILIES, TABLE_FAMILIES, tapered_rod, turned
from shapegen.errors import ShapegenError
from shapegen.geometry.mesh_io import inspect_mesh

pytestmark = pytest.mark.usefixtures("one_thread")

FAMILIES = {"chair": CHAIR_FAMILIES, "table": TABLE_FAMILIES, "mug": MUG_FAMILIES}


def first_of_family(cls: str, family: str, start: int = 0) -> int:
    for i in range(start, start + 400):
        if generate(cls, i, 0, variant="rich").params["family"] == family:
            return i
    raise AssertionError(f"no {family} {cls} among 400 shapes")


@pytest.mark.parametrize("cls,family", [(c, f) for c, fams in FAMILIES.items() for f in fams if f != "classic"])
def test_each_family_meshes_to_one_closed_piece_in_the_cube(cls, family):
    shape = generate(cls, first_of_family(cls, family), 0, variant="rich")
    mesh = to_mesh(shape, 64)
    report = inspect_mesh(mesh)
    assert report.watertight and report.num_components == 1, (cls, family, report.lines())
    assert report.volume > 0
    assert float(mesh.vertices.abs().max()) < 1.0


@pytest.mark.parametrize("cls", list(FAMILIES))
def test_rich_shapes_replay_from_their_parameters_and_have_captions(cls):
    seen = set()
    pts = torch.rand(512, 3, generator=torch.Generator().manual_seed(0)) * 2 - 1
    for i in range(60):
        shape = generate(cls, i, 0, variant="rich")
        seen.add(shape.params["family"])
        again = from_params(cls, shape.params)
        assert again.params == shape.params
        assert torch.equal(again.sdf(pts), shape.sdf(pts))
        attrs = attributes(cls, shape.params)  # the classic vocabulary: no KeyError, no unknown word
        assert attrs and captions(cls, shape.params, 2, shape.seed)
    assert seen == set(FAMILIES[cls])


def test_classic_variant_and_other_classes_are_unchanged():
    for cls in ("chair", "table", "mug", "shelf"):
        for i in range(5):
            assert generate(cls, i, 0).params == generate(cls, i, 0, variant="classic").params
            assert "family" not in generate(cls, i, 0).params
    assert generate("shelf", 3, 0, variant="rich").params == generate("shelf", 3, 0).params
    # The rich variant draws other shapes from the same seeds.
    assert generate("chair", 0, 0, variant="rich").params != generate("chair", 0, 0).params
    with pytest.raises(ShapegenError, match="variant"):
        generate("chair", 0, 0, variant="fancy")


def test_family_features():
    # An office chair stands on its gas-lift column: the axis under the seat is inside the solid.
    office = generate("chair", first_of_family("chair", "office"), 0, variant="rich")
    lo, hi = office.bbox
    assert float(office.sdf(torch.tensor([[0.0, lo[1] + 0.3 * (hi[1] - lo[1]), 0.0]]))[0]) < 0
    assert attributes("chair", office.params)["support"] == "pedestal"
    # A tumbler has no handle: its box is square in plan and centred on the axis.
    tumbler = generate("mug", first_of_family("mug", "tumbler"), 0, variant="rich")
    (x0, _, z0), (x1, _, z1) = tumbler.bbox
    assert x1 - x0 == pytest.approx(z1 - z0, abs=1e-6) and abs(tumbler.center[0]) < 1e-9
    assert attributes("mug", tumbler.params)["handle"] == "none"
    # A stool is said as backless; a trestle table as on trestles.
    stool = generate("chair", first_of_family("chair", "stool"), 0, variant="rich")
    assert attributes("chair", stool.params)["back"] == "none"
    trestle = generate("table", first_of_family("table", "trestle"), 0, variant="rich")
    assert attributes("table", trestle.params)["support"] == "trestle"


def test_tapered_rod_and_turned_leg_are_distance_bounds():
    g = torch.Generator().manual_seed(1)
    for part in (tapered_rod((0, 0, 0), (0.1, 0.5, 0.0), 0.05, 0.02), turned(0.2, -0.1, 0.0, 0.6, 0.03, 3, (0.2, 0.5, 0.8))):
        a = torch.rand(2000, 3, generator=g) * 0.8 - 0.2
        b = a + (torch.rand(2000, 3, generator=g) - 0.5) * 0.05
        lip = (part.sdf(a) - part.sdf(b)).abs() / (a - b).norm(dim=-1)
        assert float(lip.max()) <= 1.0 + 1e-4
        # The box contains the solid: points inside are inside the box.
        inside = a[part.sdf(a) < 0]
        assert inside.shape[0] > 0
        assert bool((inside >= torch.tensor(part.lo) - 1e-6).all() and (inside <= torch.tensor(part.hi) + 1e-6).all())
    # The rod's radius runs from 0.05 at one end to 0.02 at the other.
    rod = tapered_rod((0, 0, 0), (0, 1, 0), 0.05, 0.02)
    assert float(rod.sdf(torch.tensor([[0.049, 0.0, 0.0]]))[0]) < 0 < float(rod.sdf(torch.tensor([[0.03, 1.0, 0.0]]))[0])


def test_procedural_set_writes_the_rich_variant_and_refuses_to_mix(tmp_path):
    import csv
    import json

    from shapegen.data.procedural_set import ProceduralConfig, write_procedural_set

    cfg = ProceduralConfig(classes=["mug"], per_class=2, resolution=32, split="train=1.0", workers=1, variant="rich")
    write_procedural_set(cfg, tmp_path, progress=False)
    with open(tmp_path / "index.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [json.loads(r["params"]) for r in rows] == [generate("mug", i, 0, variant="rich").params for i in range(2)]
    with pytest.raises(ShapegenError, match="variant"):
        write_procedural_set(ProceduralConfig(classes=["mug"], per_class=2, resolution=32, split="train=1.0", workers=1), tmp_path,
                             progress=False)

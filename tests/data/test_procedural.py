"""Procedural shape set: watertight meshes in [-1, 1]^3, determinism, variation, SDF signs, CLI."""

from __future__ import annotations

import json

import pytest
import torch

from shapegen.data.procedural import (
    CLASSES,
    FAST_BAND,
    from_params,
    generate,
    grid_values,
    shape_seed,
    to_mesh,
)
from shapegen.errors import ShapegenError
from shapegen.geometry.mesh_io import inspect_mesh
from shapegen.geometry.sdf import winding_number

RES = 64  # the default resolution, at which every part is >= 2.2 cells thick


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("cls", CLASSES)
def test_each_class_is_one_watertight_piece_in_the_unit_cube(cls):
    for index in range(2):
        shape = generate(cls, index, seed=0)
        mesh = to_mesh(shape, RES)
        report = inspect_mesh(mesh)
        assert mesh.num_faces > 500
        assert report.watertight and report.num_components == 1, (cls, index, report.lines())
        assert report.volume > 0  # outward winding
        v = mesh.vertices
        assert float(v.abs().max()) < 1.0
        # Normalised by its box: the longest side spans [-0.9, 0.9] up to a cell.
        extent = (v.amax(0) - v.amin(0)).max()
        assert abs(float(extent) - 1.8) < 2 * 2 / (RES - 1)
        lo, hi = torch.tensor(shape.bbox[0]), torch.tensor(shape.bbox[1])
        assert bool((v.amin(0) >= lo - 0.01).all() and (v.amax(0) <= hi + 0.01).all())


def test_frame_is_y_up_front_z_and_handles_on_plus_x():
    # A tall shelf's height is its longest side, along Y.
    for index in range(20):
        shape = generate("shelf", index, seed=0)
        if shape.params["height"] > 1.5 * shape.params["width"]:
            lo, hi = shape.bbox
            assert hi[1] - lo[1] == pytest.approx(1.8, abs=1e-6)
            break
    else:
        pytest.fail("no tall shelf among 20")
    # A mug's body is centred on the Y axis in metres, so a handle on +X moves the box centre to +X.
    mug = generate("mug", 0, seed=0)
    assert mug.center[0] > 0.01 and abs(mug.center[2]) < 1e-9
    # A chair's back is at -Z: with a back, the top of the chair is behind its centre.
    chair = next(s for s in (generate("chair", i, 0) for i in range(20)) if s.params["back"])
    top = torch.tensor([[0.0, chair.bbox[1][1] - 0.05, z] for z in (-0.6, 0.6)])
    d = chair.sdf(top)
    assert float(d[0]) < float(d[1])


# sha256 of the JSON of the parameters of shapes 0..39 (seed 0) of each demo class: the shipped
# demo models and their held-out evaluations were made from exactly these shapes.
DEMO_PARAMS_SHA256 = {
    "chair": "ab4ba646992fe88c2b98a1b9f7dbc91a9f19e08b2209db13a7fed72c47d601bf",
    "table": "074b938699ff37d352014871a23aa6d1dfd3c6608025d1f1dd31f50a2acf58c5",
    "shelf": "5d830a855d16b4d11fb9bd4607ca745f72c99d71e5951f4291706506dd9e2f63",
    "lamp": "7e72359c16daa9d7fc682111bed1c63c3ec046c6f82439788602e7c69093fece",
    "mug": "d978ae49fe4db0ea69fea99bb0be5ada8cfe1f200acc2ad6036f2a04af7bdafd",
}


def test_demo_classes_draw_the_same_parameters_as_before():
    import hashlib

    from shapegen.data.procedural import DEMO_CLASSES

    assert DEMO_CLASSES == ("chair", "table", "shelf", "lamp", "mug") and CLASSES[:5] == DEMO_CLASSES
    for cls, digest in DEMO_PARAMS_SHA256.items():
        blob = json.dumps([generate(cls, i, seed=0).params for i in range(40)], sort_keys=True)
        assert hashlib.sha256(blob.encode()).hexdigest() == digest, cls
    assert generate("mug", 1, seed=0).params == {
        "body": "tapered", "bottom": 0.0136, "foot": True, "foot_height": 0.0087, "handle": "ring", "handle_offset": 0.0916,
        "handle_reach": 0.0191, "handle_span": 0.6841, "handle_thickness": 0.0068, "height": 0.1241, "radius": 0.0394,
        "rim_lip": False, "taper": 0.7663, "wall": 0.0071,
    }


NEW_CLASSES = ("sofa", "bed", "bench", "vase", "bowl", "desk")


@pytest.mark.parametrize("cls", NEW_CLASSES)
def test_new_classes_are_watertight_single_pieces_over_several_seeds(cls):
    for index in range(2, 7):
        mesh = to_mesh(generate(cls, index, seed=0), RES)
        report = inspect_mesh(mesh)
        assert report.watertight and report.num_components == 1 and report.volume > 0, (cls, index, report.lines())


def test_new_classes_follow_the_frame_conventions():
    # Sofas and beds: the back / headboard is at -Z, so the top of the shape is behind its centre.
    for cls, flag in (("sofa", None), ("bed", "headboard")):
        shape = next(s for s in (generate(cls, i, 0) for i in range(20)) if flag is None or s.params[flag] != "none")
        lo, hi = shape.bbox
        top = torch.tensor([[0.0, hi[1] - 0.03, lo[2] + 0.1], [0.0, hi[1] - 0.03, hi[2] - 0.1]])
        d = shape.sdf(top)
        assert float(d[0]) < float(d[1]), cls
    # A desk's drawers on the left are on -X (seen from the front, +Z): the pedestal fills the
    # space under the top there, and not on the other side.
    for drawers, sx in (("left", -1), ("right", 1)):
        shape = next(s for s in (generate("desk", i, 0) for i in range(40)) if s.params["drawers"] == drawers)
        lo, hi = shape.bbox
        d = shape.sdf(torch.tensor([[sx * (hi[0] - 0.15), 0.0, 0.0], [-sx * (hi[0] - 0.15), 0.0, 0.0]]))
        assert float(d[0]) < 0 < float(d[1]), drawers
    # Vases and bowls stand on the floor and are open at the top: hollow on the axis below the rim,
    # solid at the bottom's centre.
    for cls in ("vase", "bowl"):
        for i in range(5):
            shape = generate(cls, i, 0)
            if cls == "bowl" and shape.params["foot"] != "none":
                continue
            lo, hi = shape.bbox
            d = shape.sdf(torch.tensor([[0.0, hi[1] - 0.05, 0.0], [0.0, lo[1] + 0.01, 0.0], [0.0, hi[1] + 0.05, 0.0]]))
            assert float(d[0]) > 0 and float(d[1]) < 0 and float(d[2]) > 0, (cls, i)


def test_revolve_is_the_exact_sdf_of_the_swept_polygon():
    from shapegen.data.procedural_parts import cone, cylinder, revolve

    pts = torch.rand(5000, 3, generator=torch.Generator().manual_seed(2)) * 4 - 2
    # A rectangle and a trapezoid touching the axis sweep a cylinder and a frustum; the edge on
    # the axis is inside the solid, not its surface. Vertex order (orientation) does not matter.
    assert torch.allclose(revolve([(0, -1), (1, -1), (1, 1), (0, 1)]).sdf(pts), cylinder((0, 0, 0), 1, 1).sdf(pts), atol=1e-5)
    frustum = cone((0, 0.2, 0), 0.8, 0.3, 0.5).sdf(pts)
    assert torch.allclose(revolve([(0, -0.3), (0.8, -0.3), (0.3, 0.7), (0, 0.7)]).sdf(pts), frustum, atol=1e-5)
    assert torch.allclose(revolve([(0, 0.7), (0.3, 0.7), (0.8, -0.3), (0, -0.3)]).sdf(pts), frustum, atol=1e-5)
    # A ring (polygon away from the axis): a square-section torus, hollow in the middle.
    ring = revolve([(0.5, -0.1), (0.7, -0.1), (0.7, 0.1), (0.5, 0.1)])
    d = ring.sdf(torch.tensor([[0.0, 0.0, 0.0], [0.6, 0.0, 0.0], [0.0, 0.0, -0.6], [0.3, 0.0, 0.0]]))
    assert torch.allclose(d, torch.tensor([0.5, -0.1, -0.1, 0.2]), atol=1e-6)
    with pytest.raises(ValueError, match="r >= 0"):
        revolve([(0, 0), (-1, 0), (0, 1)])


def test_same_seed_same_shapes_different_seed_different():
    a = to_mesh(generate("chair", 3, seed=7), 32)
    b = to_mesh(generate("chair", 3, seed=7), 32)
    assert torch.equal(a.vertices, b.vertices) and torch.equal(a.faces, b.faces)
    assert generate("chair", 3, seed=7).params == generate("chair", 3, seed=7).params
    assert generate("chair", 3, seed=7).params != generate("chair", 3, seed=8).params
    c = to_mesh(generate("chair", 3, seed=8), 32)
    assert a.vertices.shape != c.vertices.shape or not torch.equal(a.vertices, c.vertices)
    # Per-shape seeds: a shape does not depend on which others were generated before it.
    assert shape_seed(7, "chair", 3) == generate("chair", 3, seed=7).seed
    assert len({shape_seed(0, c, i) for c in CLASSES for i in range(50)}) == 50 * len(CLASSES)


def test_parameters_vary_structurally():
    params = {cls: [generate(cls, i, seed=0).params for i in range(60)] for cls in CLASSES}

    def values(cls, key):
        return {p.get(key) for p in params[cls]} - {None}

    assert values("chair", "support") == {"legs", "pedestal", "sled"}
    assert values("chair", "back") == {True, False}
    assert len(values("chair", "back_style")) == 4
    assert values("chair", "legs") == {3, 4}
    assert len(values("chair", "spokes")) >= 2
    assert values("table", "top_shape") == {"rect", "square", "round"}
    assert values("table", "support") == {"legs", "pedestal", "trestle"}
    assert len(values("shelf", "shelves")) >= 4
    assert values("shelf", "style") == {"cabinet", "frame"}
    assert values("lamp", "kind") == {"table", "floor", "desk"}
    assert len(values("lamp", "shade")) == 3
    assert values("mug", "handle") == {"ring", "D", "square", "ear"}
    assert values("mug", "body") == {"cylinder", "tapered", "rounded"}
    assert len(values("table", "width")) > 10
    assert values("sofa", "seats") == {2, 3} and values("sofa", "arms") == {"none", "square", "rolled"}
    assert values("sofa", "chaise") == {True, False} and values("sofa", "support") == {"legs", "plinth"}
    assert values("bed", "size") == {"single", "double", "king"} and len(values("bed", "headboard")) == 4
    assert values("bed", "pillows") == {0, 1, 2} and values("bed", "base") == {"legs", "platform"}
    assert values("bench", "seat") == {"solid", "slatted", "padded"} and values("bench", "support") == {"legs", "panels", "frame"}
    assert values("bench", "backrest") == {True, False}
    assert values("vase", "profile") == {"cylinder", "round", "tapered", "flared"} and values("vase", "neck") == {True, False}
    assert values("vase", "handles") == {True, False}
    assert values("bowl", "foot") == {"none", "ring", "pedestal"} and values("bowl", "profile") == {"round", "conical", "straight"}
    assert values("desk", "drawers") == {"none", "left", "right", "both"} and values("desk", "support") == {"legs", "panels"}
    assert values("desk", "drawer_count") == {2, 3, 4} and values("desk", "modesty_panel") == {True, False}


@pytest.mark.parametrize("cls", CLASSES)
def test_analytic_sdf_sign_agrees_with_the_mesh(cls):
    shape = generate(cls, 1, seed=0)
    mesh = to_mesh(shape, RES)
    cell = 2 / (RES - 1)
    # Vertices lie on the zero level set up to marching-cubes interpolation error.
    assert float(shape.sdf(mesh.vertices).abs().max()) < cell
    # Half a cell behind / in front of each face (parts are >= 2.2 cells thick): negative
    # inside, positive outside, except at a few faces cutting sharp corners.
    centroids, normals = mesh.vertices[mesh.faces].mean(1), mesh.face_normals()
    inside, outside = shape.sdf(centroids - normals * cell / 2), shape.sdf(centroids + normals * cell / 2)
    assert float((inside < 0).float().mean()) > 0.98 and float((outside > 0).float().mean()) > 0.98
    # Points well away from the surface: the same side as the mesh's winding number says.
    coarse = to_mesh(shape, 24)  # few faces keep the brute-force winding numbers cheap
    pts = torch.rand(400, 3, generator=torch.Generator().manual_seed(0)) * 2 - 1
    d = shape.sdf(pts)
    keep = d.abs() > 2 / 23
    assert bool(((winding_number(pts[keep], coarse) > 0.5) == (d[keep] < 0)).all())


@pytest.mark.parametrize("cls", CLASSES)
def test_fast_sdf_is_the_clamped_sdf_and_the_grid_matches_it(cls):
    shape = generate(cls, 2, seed=0)
    pts = torch.rand(4000, 3, generator=torch.Generator().manual_seed(1)) * 2 - 1
    exact, fast = shape.sdf(pts), shape.fast_sdf(pts)
    near = exact.abs() < FAST_BAND / 2  # farther than band - smooth radius, a skipped part may blend
    assert int(near.sum()) > 100
    assert torch.allclose(fast[near], exact[near], atol=1e-5)
    assert bool((torch.sign(fast) == torch.sign(exact)).all())
    assert float(fast.abs().max()) <= FAST_BAND + 1e-6
    values = grid_values(shape, 17)
    axis = torch.linspace(-1, 1, 17)
    grid = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)
    assert torch.allclose(values.reshape(-1), shape.fast_sdf(grid), atol=1e-5)


def test_from_params_round_trips_through_json():
    for cls in CLASSES:
        shape = generate(cls, 4, seed=3)
        again = from_params(cls, json.loads(json.dumps(shape.params)))
        pts = torch.rand(500, 3) * 2 - 1
        assert torch.equal(shape.sdf(pts), again.sdf(pts))
    with pytest.raises(ShapegenError, match="do not describe"):
        from_params("chair", {"seat_width": 0.5})


def test_grid_and_sparse_meshing_agree():
    shape = generate("lamp", 0, seed=0)
    a, b = to_mesh(shape, 40, method="grid"), to_mesh(shape, 40, method="sparse")
    assert a.area() == pytest.approx(b.area(), rel=1e-4)


def test_bad_inputs_raise_one_line_errors():
    with pytest.raises(ShapegenError, match=r"unknown procedural class 'spaceship'.*chair.*desk"):
        generate("spaceship", 0)
    with pytest.raises(ShapegenError, match="index"):
        generate("chair", -1)
    with pytest.raises(ShapegenError, match="method"):
        to_mesh(generate("mug", 0), 16, method="dense")  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------ the CLI
def _cli(capsys, *argv: str) -> tuple[int, str, str]:
    from shapegen.cli import main

    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_writes_meshes_index_and_preview_then_resumes(capsys, tmp_path):
    import csv

    from shapegen.geometry.mesh_io import load_mesh

    out = tmp_path / "set"
    argv = ["data", "procedural", "-o", str(out), "--classes", "mug,lamp", "--per-class", "3", "--resolution", "24",
            "--workers", "1", "--split", "train=0.5,test=0.5", "--set", "procedural.preview_tile=32"]
    code, stdout, err = _cli(capsys, *argv, "--preview", str(tmp_path / "sheet.png"))
    assert code == 0, err
    assert "wrote 6 meshes (0 already there)" in stdout
    with open(out / "index.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["class"], int(r["index"])) for r in rows] == [(c, i) for c in ("mug", "lamp") for i in range(3)]
    assert {r["split"] for r in rows} == {"train", "test"}
    for r in rows:
        path = out / r["path"]
        assert path.parts[-3:] == (r["split"], r["class"], f"{r['class']}_{int(r['index']):05d}.ply")
        assert json.loads(r["params"]) == generate(r["class"], int(r["index"]), seed=0).params
        assert int(r["seed"]) == shape_seed(0, r["class"], int(r["index"]))
    mesh = load_mesh(out / rows[0]["path"])
    assert inspect_mesh(mesh).watertight and float(mesh.vertices.abs().max()) < 1
    # Files keep the normalised +Y-up frame: the same box as the mesh made in memory.
    ref = to_mesh(generate("mug", 0, seed=0), 24)
    assert torch.allclose(mesh.bounds(), ref.bounds(), atol=1e-6)
    from PIL import Image

    with Image.open(tmp_path / "sheet.png") as sheet:  # two rows of 32 px tiles, captions under them
        assert sheet.width == 3 * 32 and sheet.height > 2 * 32
    assert not list(out.rglob(".*"))  # no temporary files left behind
    # Captions and attributes beside the index: four captions per shape, the class name last.
    with open(out / "captions.csv", newline="") as fh:
        caps = list(csv.DictReader(fh))
    assert [c["path"] for c in caps] == [r["path"] for r in rows for _ in range(4)]
    assert [c["caption"] for c in caps[3::4]] == [r["class"] for r in rows]
    with open(out / "attributes.csv", newline="") as fh:
        attrs = list(csv.DictReader(fh))
    assert [a["path"] for a in attrs] == [r["path"] for r in rows] and attrs[0]["handle"] and not attrs[0]["shade"]
    tables = {name: (out / name).read_bytes() for name in ("index.csv", "captions.csv", "attributes.csv")}
    (out / "captions.csv").unlink()

    # Resume: existing meshes are kept, a missing one is rebuilt identically.
    victim = out / rows[1]["path"]
    before = victim.read_bytes()
    victim.unlink()
    code, stdout, err = _cli(capsys, *argv)
    assert code == 0, err
    assert "wrote 1 meshes (5 already there)" in stdout
    assert victim.read_bytes() == before
    assert tables == {name: (out / name).read_bytes() for name in tables}  # rewritten identically
    # Settings that would mix two sets in one folder are refused.
    code, _, err = _cli(capsys, *argv, "--seed", "1")
    assert code == 2 and "seed" in err and err.count("\n") == 1


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--classes", "chair,spaceship"], "unknown procedural class 'spaceship'"),
        (["--split", "train=0.8,val=0.3"], "sum to 1.1"),
        (["--split", "train=abc"], "bad split"),
        (["--per-class", "0"], "per_class"),
        (["--preview", "sheet.jpg"], "PNG"),
    ],
)
def test_cli_bad_input_is_one_line_and_writes_nothing(capsys, tmp_path, flags, message):
    out = tmp_path / "set"
    code, _, err = _cli(capsys, "data", "procedural", "-o", str(out), "--per-class", "1", *flags)
    assert code == 2
    assert err.startswith("error:") and err.count("\n") == 1 and message in err
    assert not out.exists() or not any(out.rglob("*.ply"))


def test_split_of_is_stable_and_close_to_the_fractions():
    from shapegen.data.procedural_set import parse_splits, split_of

    splits = parse_splits("train=0.8,val=0.1,test=0.1")
    names = [split_of(splits, 0, "chair", i) for i in range(1000)]
    assert abs(names.count("train") - 800) <= 5 and abs(names.count("val") - 100) <= 5
    assert names[:50] == [split_of(splits, 0, "chair", i) for i in range(50)]  # prefix-stable


def test_light_config_constants_match_the_generators():
    from shapegen.data import procedural, procedural_set

    assert procedural_set.CLASSES == procedural.CLASSES
    assert procedural_set.DEFAULT_RESOLUTION == procedural.DEFAULT_RESOLUTION
    assert procedural_set.DEFAULT_EXTENT == procedural.DEFAULT_EXTENT


@pytest.mark.slow
def test_cli_worker_processes_write_the_same_meshes(capsys, tmp_path):
    # The forkserver pool path (start-up costs seconds, hence slow) against the in-process path.
    common = ["--classes", "table", "--per-class", "3", "--resolution", "16", "--split", "all=1"]
    assert _cli(capsys, "data", "procedural", "-o", str(tmp_path / "a"), "--workers", "2", *common)[0] == 0
    assert _cli(capsys, "data", "procedural", "-o", str(tmp_path / "b"), "--workers", "1", *common)[0] == 0
    for i in range(3):
        name = f"all/table/table_{i:05d}.ply"
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert (tmp_path / "a" / "index.csv").read_text() == (tmp_path / "b" / "index.csv").read_text()

"""``shapegen quickstart``: the shipped Mosaic-SDF demo model generates one mesh per class, offline."""

from __future__ import annotations

from pathlib import Path

import pytest

from shapegen.cli import main
from shapegen.commands.quickstart import DEMO_MODEL

needs_model = pytest.mark.skipif(not DEMO_MODEL.is_file(), reason=f"demo model {DEMO_MODEL} is not in this checkout")


@needs_model
def test_quickstart_writes_one_closed_one_piece_mesh_per_class_and_prompt(tmp_path: Path, capsys) -> None:
    from shapegen.geometry.mesh_io import inspect_mesh, load_mesh
    from shapegen.methods.msdf import MSDFGenerator
    from shapegen.methods.quickstart import PROMPTS

    classes = MSDFGenerator.load_from_checkpoint(str(DEMO_MODEL), map_location="cpu").config.classes
    assert sorted(classes) == ["chair", "lamp", "mug", "shelf", "table"]
    out = tmp_path / "qs"
    assert main(["quickstart", "-o", str(out), "--set", "resolution=48", "--set", "sketches=false"]) == 0  # sketches: tests/methods/test_quickstart_sketches.py
    printed = capsys.readouterr().out
    assert (out / "preview.png").stat().st_size > 1000
    texts = sorted(p.name for p in out.glob("text_*.glb"))
    assert len(texts) == len(PROMPTS) and "text_round_table_on_single_pedestal.glb" in texts, printed
    assert sorted(p.stem for p in out.glob("*.glb") if not p.name.startswith("text_")) == sorted(classes), printed
    for path in [out / f"{cls}.glb" for cls in classes] + [out / t for t in texts]:
        mesh = load_mesh(path)
        assert mesh.num_faces > 100, path.name
        lo, hi = mesh.bounds()
        assert float((hi - lo).max()) > 0.3, f"{path.name}: a speck, not an object"
        # Closed where the generated cubes leave gaps, debris dropped, detached parts joined.
        report = inspect_mesh(mesh)
        assert report.watertight, f"{path.name}: {report.num_boundary_edges} boundary, {report.num_nonmanifold_edges} non-manifold edges"
        assert report.num_components == 1, f"{path.name}: {report.num_components} pieces"


@needs_model
def test_quickstart_keeps_the_pieces_apart_when_asked(tmp_path: Path) -> None:
    from shapegen.geometry.mesh_io import inspect_mesh, load_mesh

    out = tmp_path / "qs"
    assert main(["quickstart", "-o", str(out), "--set", "resolution=48", "--set", "sketches=false", "--set", "prompts=[]",
                 "--set", "one_piece=false"]) == 0
    assert not list(out.glob("text_*.glb"))
    # The shipped model's seed-0 chair and lamp come out in two pieces; the default joins them.
    assert inspect_mesh(load_mesh(out / "lamp.glb")).num_components == 2


def test_quickstart_missing_model_is_one_line_error(tmp_path: Path, capsys) -> None:
    assert main(["quickstart", "-o", str(tmp_path), "--model", str(tmp_path / "nope.ckpt")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: demo model") and "missing" in err and "\n" not in err


def test_quickstart_corrupt_model_is_one_line_error(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"not a checkpoint")
    assert main(["quickstart", "-o", str(tmp_path / "out"), "--model", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: cannot load") and "\n" not in err
    assert not (tmp_path / "out" / "preview.png").exists()

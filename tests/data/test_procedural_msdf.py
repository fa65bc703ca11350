"""``data procedural --set procedural.msdf=true``: analytic M-SDFs beside the meshes, read by split."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import torch

from shapegen.cli import main
from shapegen.data.msdf_dataset import MSDFDataConfig, load_msdf_folder
from shapegen.data.procedural import generate, to_mesh
from shapegen.data.procedural_set import ProceduralConfig, msdf_path, procedural_msdf, write_procedural_set
from shapegen.fields.mosaic_sdf import MosaicSDF, grid_offsets
from shapegen.geometry.sampling import sample_surface

TINY = [a for kv in ("procedural.msdf=true", "procedural.msdf_n=24", "procedural.msdf_k=3", "procedural.msdf_samples=600",
                     "procedural.workers=1", "procedural.split=train=0.5,test=0.5") for a in ("--set", kv)]


def _cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("dilate", [0.0, 0.05])
def test_grid_values_are_the_analytic_sdf_and_the_decoded_surface_lies_on_the_shape(dilate):
    shape = generate("table", 3, 0)
    mesh = to_mesh(shape, 48)
    m = procedural_msdf(shape, mesh, 96, 5, dilate=dilate, samples=4000)
    t = m.tensor
    # Values at the nodes: exactly the analytic SDF of the grown shape.
    nodes = t[:, None, :3] + t[:, 3, None, None] * grid_offsets(5)[None]
    expected = shape.sdf(nodes.reshape(-1, 3)).reshape(96, -1).float() - dilate
    torch.testing.assert_close(t[:, 4:], expected, rtol=0, atol=1e-6)
    assert torch.all(t[:, 3] == t[0, 3])  # one shared scale
    # The decoded surface is the grown shape's: trilinear interpolation of a 1-Lipschitz function
    # from nodes spaced h apart is off by at most its distance to a node, sqrt(3) h / 2.
    h = 2 * float(t[0, 3]) / (5 - 1)
    decoded = m.to_mesh(64)
    pts = sample_surface(decoded, 2000, generator=torch.Generator().manual_seed(0)).points.float()
    err = (shape.sdf(pts).float() - dilate).abs()
    assert float(err.max()) < math.sqrt(3) / 2 * h
    assert float(err.mean()) < h / 8  # most of the surface is much closer (flat faces are interpolated exactly)
    # ... and it covers the whole shape: every true surface point is near the decoded surface.
    truth = sample_surface(mesh, 1000, generator=torch.Generator().manual_seed(1)).points.float()
    assert float(MosaicSDF(t, 5)(truth).abs().max()) < dilate + math.sqrt(3) / 2 * h


def test_cli_writes_msdf_beside_each_mesh_resumes_and_refuses_other_settings(capsys, tmp_path):
    out = tmp_path / "set"
    code, text, err = _cli(capsys, "data", "procedural", "-o", str(out), "--classes", "mug,chair", "--per-class", "3",
                           "--resolution", "24", *TINY)
    assert code == 0, err
    assert "wrote 6 shapes (meshes and M-SDFs)" in text
    rows = list(csv.DictReader(open(out / "index.csv")))
    for r in rows:
        mesh = out / r["path"]
        m = MosaicSDF.load(msdf_path(mesh))
        assert mesh.is_file() and m.n == 24 and m.k == 3
        assert m.source_hash.endswith(f"{r['class']}_{int(r['index']):05d}")
    # A missing M-SDF is written again on resume; the meshes stay.
    victim = msdf_path(out / rows[0]["path"])
    before = victim.read_bytes()
    victim.unlink()
    mtime = (out / rows[1]["path"]).stat().st_mtime_ns
    code, text, _ = _cli(capsys, "data", "procedural", "-o", str(out), "--classes", "mug,chair", "--per-class", "3",
                         "--resolution", "24", *TINY)
    assert code == 0 and "wrote 1 shapes (meshes and M-SDFs) (5 already there)" in text
    assert victim.read_bytes() == before  # deterministic
    assert (out / rows[1]["path"]).stat().st_mtime_ns == mtime
    # Other M-SDF settings cannot be mixed into the folder.
    code, _, err = _cli(capsys, "data", "procedural", "-o", str(out), "--classes", "mug,chair", "--per-class", "3",
                        "--resolution", "24", *TINY, "--set", "procedural.msdf_k=4")
    assert code == 2 and "msdf_k=3" in err and err.count("\n") == 1


def test_msdf_loader_reads_only_the_requested_split(tmp_path):
    cfg = ProceduralConfig(classes=["mug", "chair"], per_class=6, resolution=24, workers=1, split="train=0.5,test=0.5",
                           msdf=True, msdf_n=16, msdf_k=3, msdf_samples=400)
    write_procedural_set(cfg, tmp_path, progress=False)
    rows = list(csv.DictReader(open(tmp_path / "index.csv")))
    train = {r["path"].removesuffix(".ply") for r in rows if r["split"] == "train"}
    assert 0 < len(train) < len(rows)
    data, classes, k = load_msdf_folder(MSDFDataConfig(root=str(tmp_path), split="train"))
    got = {p.relative_to(tmp_path).as_posix().removesuffix(".msdf.npz") for p in data.paths}
    assert got == train and classes == ["chair", "mug"] and k == 3
    # The class is the index's class column, not the split folder.
    assert [classes[i] for i in data.labels] == [p.parent.name for p in data.paths]
    everything, _, _ = load_msdf_folder(MSDFDataConfig(root=str(tmp_path), labels="none"))
    assert len(everything) == len(rows)


def test_split_errors_are_one_line(tmp_path):
    from shapegen.errors import ShapegenError
    from shapegen.fields.mosaic_sdf import MosaicSDF as M

    (tmp_path / "a").mkdir()
    M(torch.cat([torch.zeros(2, 3), torch.ones(2, 1), torch.randn(2, 8)], 1), 2).save(tmp_path / "a" / "x.msdf.npz")
    with pytest.raises(ShapegenError, match=r"needs .*index\.csv"):
        load_msdf_folder(MSDFDataConfig(root=str(tmp_path), split="train"))
    (tmp_path / "index.csv").write_text("path,class,split\na/x.ply,a,test\n")
    with pytest.raises(ShapegenError, match=r"no shape of split 'train'.*test"):
        load_msdf_folder(MSDFDataConfig(root=str(tmp_path), split="train"))
    (tmp_path / "index.csv").write_text("path,class,split\nb/y.ply,b,train\n")
    with pytest.raises(ShapegenError, match="none of the"):
        load_msdf_folder(MSDFDataConfig(root=str(tmp_path), split="train"))
    assert np.isfinite(M.load(tmp_path / "a" / "x.msdf.npz").tensor.numpy()).all()

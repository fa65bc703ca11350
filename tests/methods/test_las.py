# ruff: noqa: F811  (pytest fixtures imported from _las_fixtures are redefined as arguments)
"""LAS-Diffusion on the tiny preset: losses, sampling, checkpoints, sparsity, sketch -> mesh, and its commands
(las prepare, train/generate --method las, sketch-to-3d)."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from _las_fixtures import TINY_OVERRIDES, las_data, las_trained, make_meshes, tiny_config  # noqa: F401
from PIL import Image

from shapegen.cli import main
from shapegen.data.las_dataset import LASDataModule
from shapegen.errors import ShapegenError
from shapegen.methods import METHODS
from shapegen.methods.las import LASDiffusion

pytestmark = pytest.mark.usefixtures("one_thread")


def _batch(model: LASDiffusion, data) -> dict:
    dm = LASDataModule(model.config.data, model.config.sketch_encoder.image_size, model.config.categories)
    torch.manual_seed(0)
    return next(iter(dm.train_dataloader()))


def _fixed_losses(model: LASDiffusion, batch: dict) -> tuple[float, float]:
    """Losses averaged over fixed random draws (t, noise, masks), so before/after are comparable."""
    occ, sdf = [], []
    with torch.no_grad():
        for seed in range(6):
            torch.manual_seed(100 + seed)
            occ.append(float(model.occupancy_loss(batch)))
            torch.manual_seed(100 + seed)
            sdf.append(float(model.sdf_loss(batch)))
    return sum(occ) / len(occ), sum(sdf) / len(sdf)


def test_registered():
    assert METHODS["las"].system == "shapegen.methods.las:LASDiffusion"
    assert "msdf" in METHODS


def test_both_losses_decrease(las_data, las_trained):
    trained, _ = las_trained
    torch.manual_seed(0)
    fresh = LASDiffusion(copy.deepcopy(trained.config))  # same architecture, untrained weights
    batch = _batch(trained, las_data)
    before = _fixed_losses(fresh.eval(), batch)
    after = _fixed_losses(trained.eval(), batch)
    assert after[0] < 0.7 * before[0], (before, after)
    assert after[1] < 0.7 * before[1], (before, after)


def test_sampling_is_deterministic_for_a_seed(las_trained):
    model, _ = las_trained
    a = model.sample(2, category="chair", seed=3)
    b = model.sample(2, category="chair", seed=3)
    c = model.sample(2, category="chair", seed=4)
    assert torch.equal(a.occupancy, b.occupancy) and torch.equal(a.sdf, b.sdf)
    assert not torch.equal(a.sdf, c.sdf)


def test_checkpoint_round_trip(las_trained):
    model, ckpt = las_trained
    loaded = LASDiffusion.load_from_checkpoint(ckpt, map_location="cpu").eval()
    assert loaded.config == model.config
    for (k, v), (k2, v2) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and torch.equal(v, v2)
    a = model.sample(1, category="table", seed=1)
    b = loaded.sample(1, category="table", seed=1)
    assert torch.equal(a.sdf, b.sdf)


def test_stage2_touches_only_occupied_voxels(las_trained, monkeypatch):
    model, _ = las_trained
    g = model.occ_side
    shell = torch.zeros(2, g, g, g, dtype=torch.bool)
    shell[0, 2:5, 3:5, 2:6] = True
    shell[1, 1, 1, 1] = True
    seen = []
    forward = model.sdf_net.forward

    def spy(x, coords, side, t, levels=None):
        seen.append(coords.clone())
        return forward(x, coords, side, t, levels)

    monkeypatch.setattr(model.sdf_net, "forward", spy)
    sdf, evaluated = model.sample_sdf(shell, steps=2, generator=torch.Generator().manual_seed(0))
    assert evaluated == 8 * int(shell.sum())
    for coords in seen:
        assert coords.shape[0] == evaluated
        parents = torch.cat([coords[:, :1], coords[:, 1:] // 2], 1)
        assert shell[parents[:, 0], parents[:, 1], parents[:, 2], parents[:, 3]].all()
    active = torch.zeros_like(sdf, dtype=torch.bool)
    c = seen[0]
    active[c[:, 0], c[:, 1], c[:, 2], c[:, 3]] = True
    assert set(sdf[~active].unique().tolist()) <= {-1.0, 1.0}  # untouched: +1 outside, -1 enclosed
    # Enclosed voxels: a hollow shell encloses its centre, which becomes inside (-1).
    hollow = torch.zeros(1, g, g, g, dtype=torch.bool)
    hollow[0, 1:7, 1:7, 1:7] = True
    hollow[0, 3:5, 3:5, 3:5] = False
    sdf_h, _ = model.sample_sdf(hollow, steps=1, generator=torch.Generator().manual_seed(0))
    assert (sdf_h[0, 6:10, 6:10, 6:10] == -1).all() and sdf_h[0, 0, 0, 0] == 1


def test_unknown_category_is_one_line(las_trained):
    model, _ = las_trained
    with pytest.raises(ShapegenError, match="unknown category 'lamp'"):
        model.sample(1, category="lamp")


def test_sketch_to_mesh_end_to_end(las_trained, las_data, tmp_path):
    from shapegen.data.sketches import load_sketch
    from shapegen.geometry.export import export_mesh

    model, _ = las_trained
    sketch = load_sketch(las_data / "sketches" / "chair__c1_contour_1.png", 32)
    out = model.sample(1, category="chair", sketch=sketch, azimuth=45.0, seed=0)
    mesh = out.meshes[0]
    assert out.occupancy[0].any()
    assert mesh.num_faces > 0
    assert mesh.vertices.abs().max() <= 1.0
    path = export_mesh(mesh, tmp_path / "chair.glb")
    assert path.stat().st_size > 100
    # sketch_to_3d (the library behind the command) samples with the model's own settings (guidance,
    # radius, steps), the ones its metrics were measured with, unless told otherwise.
    from shapegen.methods.las import sketch_to_3d

    path = las_data / "sketches" / "chair__c1_contour_1.png"
    same = sketch_to_3d(path, category="chair", view=45.0, model=model).mesh
    assert torch.equal(same.vertices, mesh.vertices) and torch.equal(same.faces, mesh.faces)
    # Options reach the sampler: guidance given, else the model's own (whether guidance 3 changes this
    # tiny model's thresholded occupancy depends on how its few training steps went, so the call is
    # checked, not the mesh).
    seen = []
    sample = model.sample

    def spy(*args, **kwargs):
        seen.append(kwargs.get("guidance"))
        return sample(*args, **kwargs)

    model.sample = spy
    try:
        sketch_to_3d(path, category="chair", view=45.0, model=model, guidance=3.0)
        sketch_to_3d(path, category="chair", view=45.0, model=model)
    finally:
        del model.sample
    assert seen == [3.0, None]  # None: the sampler uses the model's own sample.guidance


# ---------------------------------------------------------------------------- command line
def test_las_prepare_resumes_and_reports_skips(tmp_path, capsys):
    meshes = make_meshes(tmp_path / "meshes")
    (meshes / "chair" / "broken.obj").write_text("")
    argv = ["las", "prepare", str(meshes), "-o", str(tmp_path / "data"), "--set", "resolution=16",
            "--set", "sketch_size=32", "--set", "views=[2]", "--set", "styles=[contour]"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "prepared 2, reused 0, skipped 1" in out and "broken.obj" in out and "empty" in out
    index = json.loads((tmp_path / "data" / "index.json").read_text())
    assert index["categories"] == ["chair", "table"]
    assert {r["view"] for r in index["sketches"]} == {2} and index["sketches"][0]["azimuth"] == 90.0
    assert main(argv) == 0
    assert "prepared 0, reused 2, skipped 1" in capsys.readouterr().out
    # Two worker processes write the same data; a bad worker count is a one-line error.
    argv2 = [*argv, "--workers", "2"]
    argv2[argv2.index("-o") + 1] = str(tmp_path / "data2")
    assert main(argv2) == 0 and "prepared 2, reused 0, skipped 1" in capsys.readouterr().out
    assert json.loads((tmp_path / "data2" / "index.json").read_text())["sketches"] == index["sketches"]
    argv2[argv2.index("-o") + 1] = str(tmp_path / "data3")
    assert main([*argv2[:-1], "0"]) != 0
    assert "workers must be >= 1" in capsys.readouterr().err.strip().splitlines()[-1]


def test_train_and_generate_through_method_commands(las_data, las_trained, tmp_path, capsys):
    sets = [x for o in [f"data.root={las_data}", *TINY_OVERRIDES, "train.max_steps=2", "train.checkpoint_every=2"] for x in ("--set", o)]
    assert main(["train", "--method", "las", "--config", "tiny", "-o", str(tmp_path / "run"), *sets]) == 0
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()
    _, ckpt = las_trained
    assert main(["generate", "--method", "las", "--checkpoint", str(ckpt), "--category", "chair", "--num", "1",
                 "-o", str(tmp_path / "gen")]) == 0
    assert (tmp_path / "gen" / "preview.png").is_file()


def test_sketch_to_3d(las_data, las_trained, tmp_path, capsys):
    _, ckpt = las_trained
    out = tmp_path / "chair.glb"
    sketch = las_data / "sketches" / "chair__c1_contour_1.png"
    assert main(["sketch-to-3d", str(sketch), "--checkpoint", str(ckpt), "--view", "45", "--category", "chair", "-o", str(out)]) == 0
    assert out.is_file() and out.stat().st_size > 100
    png = Image.open(out.with_suffix(".png"))
    assert png.size == (4 * 256, 256)  # sketch + same view + two other views


def test_sketch_to_3d_errors_are_one_line(las_trained, tmp_path, capsys):
    _, ckpt = las_trained
    bad = tmp_path / "sketch.png"
    bad.write_text("hello")
    assert main(["sketch-to-3d", str(bad), "--checkpoint", str(ckpt), "--view", "45", "--category", "chair", "-o", str(tmp_path / "o.glb")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "not a readable image" in err and "\n" not in err
    Image.new("L", (64, 64), 255).save(bad)
    assert main(["sketch-to-3d", str(bad), "--checkpoint", str(ckpt), "--category", "chair", "-o", str(tmp_path / "o.glb")]) == 2
    assert "empty" in capsys.readouterr().err
    assert main(["sketch-to-3d", str(bad), "--checkpoint", str(ckpt), "--category", "lamp", "-o", str(tmp_path / "o.glb")]) == 2
    assert "unknown category 'lamp'" in capsys.readouterr().err


def test_ema_is_saved_and_used_for_sampling(las_trained):
    model, ckpt = las_trained
    saved = torch.load(ckpt, map_location="cpu", weights_only=False)
    ema = saved["las_ema"]
    params = dict(model.named_parameters())
    assert set(ema) == set(params)  # both stages were trained
    assert int(saved["state_dict"]["stage_steps"][0]) == 40 and int(saved["state_dict"]["stage_steps"][1]) == 40
    # After 40 steps the EMA trails the raw weights (warm-up decay (1+n)/(10+n) < 1).
    assert any(not torch.allclose(ema[k], params[k].detach()) for k in ema)
    loaded = LASDiffusion.load_from_checkpoint(ckpt, map_location="cpu").eval()
    assert all(torch.equal(loaded._ema[k], ema[k]) for k in ema)
    with_ema = loaded.sample(1, category="chair", seed=2)
    loaded.config.sample.use_ema = False
    raw = loaded.sample(1, category="chair", seed=2)
    assert not torch.equal(with_ema.sdf, raw.sdf)
    loaded.config.sample.use_ema = True
    with loaded.ema_weights():  # the swap is undone afterwards
        assert torch.equal(dict(loaded.named_parameters())["sdf_net.head.weight"], ema["sdf_net.head.weight"])
    assert torch.equal(dict(loaded.named_parameters())["sdf_net.head.weight"], params["sdf_net.head.weight"])


def test_train_one_stage_at_a_time_into_one_checkpoint(las_data, las_trained, tmp_path, capsys):
    sets = [x for o in [f"data.root={las_data}", *TINY_OVERRIDES, "train.max_steps=2", "train.checkpoint_every=2"] for x in ("--set", o)]
    run = tmp_path / "run"
    last = run / "checkpoints" / "last.ckpt"
    assert main(["train", "--method", "las", "--config", "tiny", "--stage", "occupancy", "-o", str(run), *sets]) == 0
    first = torch.load(last, map_location="cpu", weights_only=False)
    assert first["state_dict"]["stage_steps"].tolist() == [2, 0]
    assert set(first["las_ema"]) and all(not k.startswith("sdf_net.") for k in first["las_ema"])
    # Stage 2 untrained: sampling gives one clear line.
    sketch = las_data / "sketches" / "chair__c1_contour_1.png"
    s2d = ["sketch-to-3d", str(sketch), "--checkpoint", str(last), "--view", "45", "--category", "chair", "-o", str(tmp_path / "o.glb")]
    capsys.readouterr()
    assert main(s2d) == 2
    err = capsys.readouterr().err
    assert "stage 2 (SDF) of this model was never trained" in err and "--stage sdf" in err
    assert not (tmp_path / "o.glb").exists()
    # Stage 2 into the same folder: loads stage 1 from the checkpoint (not a resume) and keeps it.
    assert main(["train", "--method", "las", "--config", "tiny", "--stage", "sdf", "-o", str(run), *sets]) == 0
    assert "trained with another stage" in capsys.readouterr().out
    second = torch.load(last, map_location="cpu", weights_only=False)
    assert second["state_dict"]["stage_steps"].tolist() == [2, 2]
    for k, v in first["state_dict"].items():
        if k.startswith(("occupancy_net.", "sketch_encoder.")):
            assert torch.equal(second["state_dict"][k], v), k
            assert k not in first["las_ema"] or torch.equal(second["las_ema"][k], first["las_ema"][k]), k
    assert any(not torch.equal(second["state_dict"][k], v) for k, v in first["state_dict"].items() if k.startswith("sdf_net."))
    assert main(s2d) == 0 and (tmp_path / "o.glb").is_file()
    # Stage 2 alone from scratch: stage 1 missing is one clear line too.
    assert main(["train", "--method", "las", "--config", "tiny", "--stage", "sdf", "-o", str(tmp_path / "run2"), *sets]) == 0
    capsys.readouterr()
    assert main(["generate", "--method", "las", "--checkpoint", str(tmp_path / "run2" / "checkpoints" / "last.ckpt"),
                 "--class", "chair", "--num", "1", "-o", str(tmp_path / "gen")]) == 2
    assert "stage 1 (occupancy) of this model was never trained" in capsys.readouterr().err
    assert main(["train", "--method", "las", "--config", "tiny", "--stage", "bogus", "-o", str(tmp_path / "run3"), *sets]) == 2
    assert "train.stage" in capsys.readouterr().err


def test_attention_masks_use_the_sketch_view(las_data, las_trained):
    """The masks built from a batch's view index admit exactly the patches the shape's sketch is drawn
    on: every inked patch is the nearest patch of some occupied voxel, and the true view fits the ink
    better than a wrong one (the training path: view index -> azimuth -> projection -> mask)."""
    import numpy as np

    from shapegen.data.las_dataset import read_index, read_sketch_png

    model, _ = las_trained
    index = read_index(las_data)
    size, p = model.config.sketch_encoder.image_size, model.sketch_encoder.patches
    for rec in [r for r in index["sketches"] if r["shape"] == "chair__c1"]:
        with np.load(las_data / index["shapes"]["chair__c1"]["file"]) as z:
            shell = torch.from_numpy(z["shell"])
        ink = read_sketch_png(las_data / rec["file"])
        inked = torch.nn.functional.max_pool2d(ink[None, None], size // p)[0, 0].flatten() > 0
        scores = {}
        for view in range(5):
            masks = model._masks(model.view_azimuth(torch.tensor([view])), 0.0)
            (res, mask), = masks.items()
            occ = torch.nn.functional.adaptive_max_pool3d(shell[None, None].float(), res)[0, 0].flatten().bool()
            admitted = mask[0][occ].any(0)
            scores[view] = float((admitted & inked).sum() / (admitted | inked).sum())
            if view == rec["view"]:
                assert bool(admitted[inked].all()), rec
        assert scores[rec["view"]] == max(scores.values()) and scores[rec["view"]] > min(scores.values()), (rec, scores)


@pytest.mark.slow
def test_the_sketch_decides_the_shape(las_data):
    """Stage 1 conditioned on the sketch alone (no category): after a short run, each shape's sketches
    (both styles, both views) give back that shape's shell, not the other one's."""
    import random

    import numpy as np

    from shapegen.data.las_dataset import read_index, read_sketch_png

    random.seed(0)  # the dataset draws each item's sketch with random
    torch.manual_seed(0)
    # lr 1e-3: with the preset's 2e-3 this two-shape run learned the sketch for some seeds only.
    model, dm = LASDiffusion.for_training(tiny_config(las_data, "use_category=false", "train.stage=occupancy", "train.lr=1e-3"))
    opt = model.configure_optimizers()
    step = 0
    while step < 200:
        for batch in dm.train_dataloader():
            loss = model.occupancy_loss(batch)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            model.update_ema()
            model.stage_steps[0] += 1
            step += 1
            if step == 200:  # the loader draws batches for as long as it is asked (they follow the step)
                break
    model.eval()
    index = read_index(las_data)
    shells = {}
    for name, rec in index["shapes"].items():
        with np.load(las_data / rec["file"]) as z:
            shells[name] = torch.from_numpy(z["shell"])

    def iou(a, b):
        return float((a & b).sum() / (a | b).sum())

    own, other = {n: [] for n in shells}, {n: [] for n in shells}
    with model.ema_weights():
        for rec in index["sketches"]:
            ink = read_sketch_png(las_data / rec["file"])
            occ = model.sample_occupancy(4, None, ink[None].expand(4, -1, -1), torch.tensor([rec["azimuth"]]),
                                         generator=torch.Generator().manual_seed(0))
            own[rec["shape"]] += [iou(o, shells[rec["shape"]]) for o in occ]
            other[rec["shape"]] += [iou(o, s) for o in occ for n, s in shells.items() if n != rec["shape"]]
    # Chair and table shells overlap with IoU ~0.27; a model that ignored the sketch would give the
    # same shapes for both, so for one of them own <= other.
    for name in shells:
        assert np.mean(own[name]) > np.mean(other[name]) + 0.2, (name, np.mean(own[name]), np.mean(other[name]))

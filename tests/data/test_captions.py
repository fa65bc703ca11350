"""Captions of the procedural set: attributes from parameters, templates, vocabulary, CSVs for M-SDF training."""

from __future__ import annotations

import re

import numpy as np
import pytest

from shapegen.data.captions import (
    ATTRIBUTES,
    CLASS_SYNONYMS,
    NUMBERS,
    PHRASES,
    attributes,
    captions,
    describe,
    vocabulary,
)
from shapegen.data.procedural import CLASSES, generate
from shapegen.errors import ShapegenError

SHAPES = {cls: [generate(cls, i, seed=0) for i in range(40)] for cls in CLASSES}


def _has(text: str, phrase: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(phrase)}(?![\w-])", text) is not None


def test_every_class_has_a_typed_attribute_table_and_values_stay_in_it():
    assert set(ATTRIBUTES) == set(CLASSES) == set(CLASS_SYNONYMS)
    for cls in CLASSES:
        assert len(ATTRIBUTES[cls]) >= 3
        seen = {a: set() for a in ATTRIBUTES[cls]}
        for shape in SHAPES[cls]:
            attrs = attributes(cls, shape.params)
            assert list(attrs) == list(ATTRIBUTES[cls])
            for a, v in attrs.items():
                assert v == "" or v in ATTRIBUTES[cls][a], (cls, a, v)
                seen[a].add(v)
        # At least three attributes take two or more values over 40 shapes (they are informative).
        assert sum(len(v - {""}) >= 2 for v in seen.values()) >= 3, (cls, seen)


def test_attributes_are_the_drawn_parameters():
    for shape in SHAPES["chair"]:
        p, a = shape.params, attributes("chair", shape.params)
        assert (a["back"] == "none") == (not p["back"]) and a["seat"] == p["seat_shape"]
        assert a["arms"] == ("" if not p["back"] else "yes" if p["arms"] else "no")
        assert a["support"] == (f"{NUMBERS[p.get('legs', 4)]} legs" if p["support"] == "legs" else p["support"])
        assert (a["wheels"] == "yes") == bool(p.get("casters"))
    for shape in SHAPES["table"]:
        p, a = shape.params, attributes("table", shape.params)
        assert a["top"] == {"rect": "rectangular", "square": "square", "round": "round"}[p["top_shape"]]
        assert a["height"] == ("low" if p["height"] < 0.55 else "tall" if p["height"] >= 0.68 else "medium")
    for shape in SHAPES["shelf"]:
        assert attributes("shelf", shape.params)["shelves"] == NUMBERS[shape.params["shelves"] + 1]
    for shape in SHAPES["sofa"]:
        p, a = shape.params, attributes("sofa", shape.params)
        assert a["seats"] == NUMBERS[p["seats"]] and a["arms"] == p["arms"] and a["support"] == p["support"]
        assert a["cushions"] == ("yes" if p["back_cushions"] else "no") and a["chaise"] == ("yes" if p["chaise"] else "no")
    for shape in SHAPES["bed"]:
        p, a = shape.params, attributes("bed", shape.params)
        assert a["size"] == p["size"] and a["pillows"] == NUMBERS[p["pillows"]] and a["footboard"] == ("yes" if p["footboard"] else "no")
    for shape in SHAPES["bench"]:
        p, a = shape.params, attributes("bench", shape.params)
        assert a["back"] == ("yes" if p["backrest"] else "no") and a["seat"] == p["seat"] and a["support"] == p["support"]
    for shape in SHAPES["vase"]:
        p, a = shape.params, attributes("vase", shape.params)
        assert a["neck"] == ("narrow" if p.get("neck") else "wide") and a["handles"] == ("two" if p["handles"] else "none")
    for shape in SHAPES["bowl"]:
        p, a = shape.params, attributes("bowl", shape.params)
        assert a["foot"] == p["foot"] and a["profile"] == p["profile"] and a["rim"] == ("yes" if p["rim"] else "no")
    for shape in SHAPES["desk"]:
        p, a = shape.params, attributes("desk", shape.params)
        n = p.get("drawer_count", 0) * (2 if p["drawers"] == "both" else 1)
        assert a["drawers"] == p["drawers"] and a["count"] == (NUMBERS[n] if n else "") and a["panel"] == ("yes" if p["modesty_panel"] else "no")
    with pytest.raises(ShapegenError, match="do not describe a sofa"):
        attributes("sofa", SHAPES["chair"][0].params)
    with pytest.raises(ShapegenError, match="no captions for class 'spaceship'"):
        attributes("spaceship", {})


def test_captions_are_deterministic_name_the_class_and_end_with_the_class_name():
    shape = SHAPES["sofa"][3]
    a = captions("sofa", shape.params, n=5, seed=shape.seed)
    assert a == captions("sofa", shape.params, n=5, seed=shape.seed)
    assert len(a) == 5 and len(set(a)) == 5 and a[-1] == "sofa"
    assert a != captions("sofa", shape.params, n=5, seed=shape.seed + 1)
    assert captions("bowl", SHAPES["bowl"][0].params, n=1, seed=0)[0] != "bowl"  # a single caption is a description
    for cls in CLASSES:
        for shape in SHAPES[cls][:15]:
            for text in captions(cls, shape.params, n=4, seed=shape.seed):
                assert any(_has(text, noun) for noun in CLASS_SYNONYMS[cls]), (cls, text)
    with pytest.raises(ShapegenError, match="at least 1"):
        captions("bowl", SHAPES["bowl"][0].params, n=0)


def test_captions_use_only_the_vocabulary_and_never_contradict_the_shape():
    for cls in CLASSES:
        vocab = vocabulary([cls])
        words = {"a", "an", "and"} | {w for n in vocab["classes"][cls] for w in n.split()}
        words |= {w for vals in vocab["attributes"][cls].values() for phrases in vals.values() for p in phrases for w in p.split()}
        for shape in SHAPES[cls][:25]:
            attrs = attributes(cls, shape.params)
            true = [p for a, v in attrs.items() if v for p in PHRASES[cls][a][v].words] + list(CLASS_SYNONYMS[cls])
            for text in captions(cls, shape.params, n=6, seed=shape.seed):
                assert set(re.split(r"[ ,]+", text)) <= words, (cls, text)
                # A phrase of another value of an attribute (a "square top" on a round table) is
                # never said, unless it is part of something true ("square legs").
                for a, v in attrs.items():
                    for other, ph in PHRASES[cls][a].items():
                        for phrase in ph.words if other != v else ():
                            if _has(text, phrase) and not any(phrase in t for t in true):
                                pytest.fail(f"{cls} {shape.index}: '{text}' says '{phrase}' but {a} is '{v}'")


def test_describe_says_every_attribute_that_has_words():
    for cls in CLASSES:
        for shape in SHAPES[cls][:10]:
            text = describe(cls, shape.params)
            assert text.startswith(cls)
            for a, v in attributes(cls, shape.params).items():
                if v and PHRASES[cls][a][v].tag:
                    assert _has(text, PHRASES[cls][a][v].tag[0]), (cls, a, v, text)


def test_captions_cover_every_class_in_a_few_shapes():
    # Over the first shapes of each class, every template is used and sentences carry attributes.
    for cls in CLASSES:
        texts = [t for s in SHAPES[cls][:10] for t in captions(cls, s.params, n=4, seed=s.seed)]
        assert any("," in t for t in texts) and any(t.startswith(("a ", "an ")) for t in texts)
        assert sum(t == cls for t in texts) == 10


def test_vocabulary_is_json_and_lists_synonyms():
    import json

    vocab = json.loads(json.dumps(vocabulary()))
    assert list(vocab["classes"]) == list(CLASSES)
    assert "couch" in vocab["classes"]["sofa"] and "stool" in vocab["classes"]["chair"]
    assert "with a slatted back" in vocab["attributes"]["chair"]["back"]["slatted"]
    assert vocab["attributes"]["table"]["support"]["pedestal"][0] == "pedestal"
    with pytest.raises(ShapegenError, match="spaceship"):
        vocabulary(["spaceship"])


# ------------------------------------------------------------------ the CSVs and M-SDF training
def _fake_msdf(path, k=2, n=3, value=0.0):
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, tensor=np.full((n, 4 + k**3), value, np.float32), k=np.int64(k))


def test_procedural_captions_csv_feeds_the_msdf_dataset(tmp_path):
    import torch

    from shapegen.data.msdf_dataset import MSDFDataConfig, load_msdf_folder
    from shapegen.data.procedural_set import ProceduralConfig, write_procedural_set

    out = tmp_path / "set"
    cfg = ProceduralConfig(classes=["bench", "vase"], per_class=3, resolution=16, workers=1, split="train=0.5,test=0.5", captions_per_shape=3)
    summary = write_procedural_set(cfg, out, progress=False)
    assert summary.captions.is_file() and summary.attributes.is_file()
    meshes = sorted(p.relative_to(out) for p in out.rglob("*.ply"))
    assert len(meshes) == 6
    # Stand-ins for `shapegen msdf encode out -o enc`, which mirrors the mesh paths.
    enc = tmp_path / "enc"
    for i, rel in enumerate(meshes):
        _fake_msdf(enc / rel.with_name(rel.stem + ".msdf.npz"), value=float(i))
    data, classes, k = load_msdf_folder(MSDFDataConfig(root=str(enc), labels="captions", captions=str(summary.captions)))
    assert len(data) == 6 and k == 2 and classes == []
    for item_caps, path in zip(data.caption_sets, data.paths):
        cls, index = path.parent.name, int(path.name.split("_")[1].split(".")[0])
        shape = generate(cls, index, seed=0)
        assert list(item_caps) == captions(cls, shape.params, 3, shape.seed)
    # One caption drawn per read: all of them show up, following torch's seed.
    torch.manual_seed(0)
    drawn = [data[0]["caption"] for _ in range(60)]
    assert set(drawn) == set(data.caption_sets[0])
    torch.manual_seed(0)
    assert [data[0]["caption"] for _ in range(60)] == drawn
    # A root holding only the training split still finds its captions (the CSV paths end with them).
    train, _, _ = load_msdf_folder(MSDFDataConfig(root=str(enc / "train"), labels="captions", captions=str(summary.captions)))
    assert 0 < len(train) < 6 and all(len(c) == 3 for c in train.caption_sets)


def test_msdf_captions_csv_errors_and_single_captions(tmp_path):
    from shapegen.data.msdf_dataset import MSDFDataConfig, load_msdf_folder

    _fake_msdf(tmp_path / "a" / "x.msdf.npz")
    _fake_msdf(tmp_path / "b" / "x.msdf.npz")
    (tmp_path / "caps.csv").write_text("path,caption\na/x.obj,first\na/x.obj,second\nb/x,only one\n")
    data, _, _ = load_msdf_folder(MSDFDataConfig(root=str(tmp_path), labels="captions", captions="caps.csv"))
    assert data.caption_sets == [("first", "second"), ("only one",)] and data.captions == ["first", "only one"]
    assert data[1]["caption"] == "only one"
    # Under root a/ the file key "x" ends two CSV paths: refused rather than guessed.
    with pytest.raises(ShapegenError, match="matches several paths"):
        load_msdf_folder(MSDFDataConfig(root=str(tmp_path / "a"), labels="captions", captions=str(tmp_path / "caps.csv")))
    (tmp_path / "bad.csv").write_text("file,text\na/x,hello\n")
    with pytest.raises(ShapegenError, match="path,caption"):
        load_msdf_folder(MSDFDataConfig(root=str(tmp_path), labels="captions", captions="bad.csv"))

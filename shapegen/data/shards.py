"""Split a data-preparation run into N shards (cluster array jobs) and merge their indexes.

``shapegen data procedural``, ``shapegen las prepare`` and ``shapegen msdf encode`` take
``--shard K/N`` (1-based ``K``). The items of a run (procedural shapes in class-then-index
order, mesh files in sorted path order) are cut into N *contiguous blocks* of nearly equal size
(:meth:`Shard.block`): shard K makes block K. Contiguous blocks make the merge a
concatenation in shard order, which is the row order of one unsharded run (several caption
rows per shape included). ``msdf encode`` cuts whole batches of ``batch_shapes`` meshes
(``unit``), because the meshes of one batch share an optimiser: each mesh is then fitted with
the same companions as in an unsharded run, and its file is the same byte for byte.

A shard writes its per-item outputs where an unsharded run writes them, its index files under
shard-specific names (``index.csv`` -> ``index.shard-2-of-3.csv``, :meth:`Shard.path`), and,
once it has finished, a manifest ``shard-2-of-3.json`` (:func:`finish_shard`): which command,
which block of how many items, the settings that shape the outputs, and which index files to
merge how. N jobs can therefore write into one shared folder at once. :func:`merge_shards`
(``shapegen data merge-shards DIR``) checks that all N manifests are there and agree, writes
the merged index files exactly as one unsharded run writes them, and removes the shard files.
A killed shard has no manifest (it is removed when the shard starts, written when it ends), so
an unfinished shard is never merged; run it again (it resumes) and merge.

This module imports neither torch nor numpy: ``shapegen data merge-shards`` stays fast.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from shapegen.errors import ShapegenError

#: Merge kinds a manifest may name for an index file: ``csv`` (one header, rows concatenated in
#: shard order) and ``las-index`` (the ``index.json`` of ``las prepare``).
MERGE_KINDS = ("csv", "las-index")

_MANIFEST = re.compile(r"shard-(\d+)-of-(\d+)\.json")
_SHARD_FILE = re.compile(r".+\.shard-(\d+)-of-(\d+)(\.[^.]+)?")


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (1-based, as written on the command line: ``--shard 2/3``)."""

    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    @property
    def tag(self) -> str:
        """``shard-K-of-N``: the infix of this shard's file names."""
        return f"shard-{self.index}-of-{self.count}"

    def block(self, total: int, unit: int = 1) -> range:
        """Indices of the items this shard makes, out of ``total`` items in their sorted order.

        The ``ceil(total / unit)`` units of ``unit`` consecutive items are cut into ``count``
        contiguous blocks whose sizes differ by at most one unit; the blocks of shards
        1..count, in order, cover ``range(total)`` once. A shard gets no items when there are
        fewer units than shards.
        """
        units = -(-total // unit)
        start = (self.index - 1) * units // self.count
        stop = self.index * units // self.count
        return range(min(start * unit, total), min(stop * unit, total))

    def path(self, path: str | os.PathLike) -> Path:
        """This shard's name of an index file: ``DIR/index.csv`` -> ``DIR/index.shard-K-of-N.csv``."""
        path = Path(path)
        return path.with_name(f"{path.stem}.{self.tag}{path.suffix}")

    def manifest(self, folder: str | os.PathLike) -> Path:
        """The manifest this shard writes into ``folder`` once it has finished."""
        return Path(folder) / f"{self.tag}.json"


def parse_shard(text: str) -> Shard:
    """Parse ``"K/N"`` (``1 <= K <= N``) as given to ``--shard``.

    Raises:
        ShapegenError: for anything else (``0/3``, ``4/3``, ``x``, ``2``).
    """
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
    if m is None or not 1 <= int(m[1]) <= int(m[2]):
        raise ShapegenError(f"bad --shard '{text}'; write K/N with 1 <= K <= N (shard K of N), e.g. --shard 2/8")
    return Shard(int(m[1]), int(m[2]))


def start_shard(folder: str | os.PathLike, shard: Shard) -> None:
    """Remove ``shard``'s manifest left by an earlier run: until this run finishes, the shard is unfinished."""
    try:
        shard.manifest(folder).unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise ShapegenError(f"cannot remove {shard.manifest(folder)}: {exc.strerror}; check the folder's permissions") from exc


def finish_shard(folder: str | os.PathLike, shard: Shard, *, command: str, total: int, items: range,
                 settings: Mapping, files: Mapping[str, str]) -> Path:
    """Write ``shard``'s manifest into ``folder``: the shard has finished.

    Args:
        folder: the output folder shared by the shards.
        shard: this shard.
        command: the command that made it (``"data procedural"``); every shard must agree.
        total: number of items of the whole run; every shard must agree.
        items: the block of item indices this shard made.
        settings: the settings the outputs depend on (JSON types); every shard must agree.
        files: index file name of an unsharded run -> merge kind (:data:`MERGE_KINDS`); this
            shard wrote each under :meth:`Shard.path`.
    """
    from shapegen.io import atomic_path

    for kind in files.values():
        if kind not in MERGE_KINDS:
            raise ValueError(f"unknown merge kind {kind!r}; use one of {MERGE_KINDS}")
    record = {"command": command, "shard": shard.index, "of": shard.count, "total": total,
              "items": [items.start, items.stop], "settings": dict(settings), "files": dict(files)}
    path = shard.manifest(folder)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(record, indent=1) + "\n")
    return path


@dataclass
class MergeReport:
    """What :func:`merge_shards` did.

    Attributes:
        command: the command whose shards were merged.
        count: number of shards.
        total: items of the whole run.
        written: merged index files (none for ``msdf encode``, which writes no index).
        removed: shard files and manifests removed after the merge.
    """

    command: str
    count: int
    total: int
    written: list[Path]
    removed: list[Path]


def _shard_files(folder: Path) -> tuple[dict[int, set[int]], list[Path]]:
    """``{N: {K, ...}}`` of every manifest and shard index file in ``folder``, and the manifests."""
    seen: dict[int, set[int]] = {}
    manifests = []
    for p in sorted(folder.iterdir()):
        if p.name.startswith("."):  # temporary files of atomic writes
            continue
        m = _MANIFEST.fullmatch(p.name) or _SHARD_FILE.fullmatch(p.name)
        if m and p.is_file():
            seen.setdefault(int(m[2]), set()).add(int(m[1]))
            if _MANIFEST.fullmatch(p.name):
                manifests.append(p)
    return seen, manifests


def _merge_csv(folder: Path, name: str, parts: list[Path]) -> str:
    """One header, then every shard's rows in shard order (text kept byte for byte)."""
    header, body = None, []
    for p in parts:
        text = p.read_text()
        first, _, rest = text.partition("\n")
        if header is None:
            header = first
        elif first != header:
            raise ShapegenError(f"{p.name} has another header than {parts[0].name}; the shards of {name} in {folder} "
                                "were made with different settings: run them again with the same ones")
        body.append(rest)
    return header + "\n" + "".join(body)


def _merge_las_index(folder: Path, name: str, parts: list[Path]) -> str:
    """The ``index.json`` of ``las prepare``: shapes, sketches and skipped meshes in shard order,
    categories sorted, as :func:`shapegen.data.las_prepare.prepare_dataset` writes it."""
    settings, shapes, sketches, skipped = None, {}, [], {}
    for p in parts:
        index = json.loads(p.read_text())
        if settings is None:
            settings = index["settings"]
        elif index["settings"] != settings:
            raise ShapegenError(f"{p.name} records other settings than {parts[0].name}; run every shard with the same settings")
        for key, value in index["shapes"].items():
            if key in shapes:
                raise ShapegenError(f"shape '{key}' is in two shard indexes of {name} in {folder}; run the shards again with one --shard N")
            shapes[key] = value
        sketches += index["sketches"]
        skipped.update(index["skipped"])
    merged = {"settings": settings, "categories": sorted({s["category"] for s in shapes.values()}),
              "shapes": shapes, "sketches": sketches, "skipped": skipped}
    return json.dumps(merged, indent=1)


_MERGERS = {"csv": _merge_csv, "las-index": _merge_las_index}


def merge_shards(folder: str | os.PathLike) -> MergeReport:
    """Merge the finished shards in ``folder`` into the index files of one unsharded run.

    Checks, before writing anything, that the folder holds the manifests of shards 1..N of one
    N, that they agree (command, item count, settings, index files) and cover every item once,
    and that each shard's index files exist. Then writes each merged index atomically and
    removes the shard index files and manifests.

    Raises:
        ShapegenError: no shards, shards of two different N, a missing or unfinished shard
            (named), or shards that disagree.
    """
    from shapegen.io import atomic_path

    folder = Path(folder)
    if not folder.is_dir():
        raise ShapegenError(f"'{folder}' is not a folder; give the output folder the shards wrote into")
    seen, manifests = _shard_files(folder)
    if not seen:
        raise ShapegenError(f"no shard files (shard-K-of-N.json, *.shard-K-of-N.*) in '{folder}'; run the command with --shard K/N first")
    if len(seen) > 1:
        counts = " and ".join(f"of {n}" for n in sorted(seen))
        raise ShapegenError(f"'{folder}' holds shards of different splits ({counts}); delete the shard files of the old split")
    (count,) = seen
    records: list[dict] = []
    for k in range(1, count + 1):
        shard = Shard(k, count)
        path = shard.manifest(folder)
        if path not in manifests:
            raise ShapegenError(f"shard {k} of {count} is missing or unfinished (no {path.name} in '{folder}'); "
                                f"run it with --shard {k}/{count} (it resumes), then merge again")
        try:
            record = json.loads(path.read_text())
            keys = (record["command"], record["total"], record["items"], record["settings"], record["files"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ShapegenError(f"{path} is not a shard manifest ({type(exc).__name__}); "
                                f"run shard {k}/{count} again to rewrite it") from exc
        first = records[0] if records else record
        for key in ("command", "total", "settings", "files"):
            if record[key] != first[key]:
                raise ShapegenError(f"shard {k} of {count} was made with another {key} than shard 1 ({path.name}); "
                                    "run every shard with the same command and settings")
        start = records[-1]["items"][1] if records else 0
        if keys[2][0] != start or (k == count and keys[2][1] != record["total"]):
            raise ShapegenError(f"shard {k} of {count} made items {keys[2][0]}..{keys[2][1]}, which do not follow the "
                                "other shards; run every shard with the same settings")
        records.append(record)
    files = records[0]["files"]
    merged = {}
    for name, kind in files.items():
        parts = [Shard(k, count).path(folder / name) for k in range(1, count + 1)]
        for k, p in enumerate(parts, 1):
            if not p.is_file():
                raise ShapegenError(f"shard {k} of {count} lacks {p.name} in '{folder}'; run it with --shard {k}/{count} again, then merge")
        merged[name] = (_MERGERS[kind](folder, name, parts), parts)
    written, removed = [], []
    for name, (text, _) in merged.items():
        with atomic_path(folder / name) as tmp:
            tmp.write_text(text)
        written.append(folder / name)
    # Only after every merged file is in place: a failed merge leaves the shards to merge again.
    for _, parts in merged.values():
        removed += parts
    removed += [Shard(k, count).manifest(folder) for k in range(1, count + 1)]
    for p in removed:
        p.unlink(missing_ok=True)
    return MergeReport(records[0]["command"], count, records[0]["total"], written, removed)


__all__ = ["MERGE_KINDS", "MergeReport", "Shard", "finish_shard", "merge_shards", "parse_shard", "start_shard"]

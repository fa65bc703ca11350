"""Picture of the synthetic sketch styles: one procedural shape per row, one style per column.

Writes ``docs/las_sketch_styles.png`` (the README shows it): rows are a rich chair, table and
mug (``procedural.variant=rich``), columns the shape itself then the ``contour``, ``canny`` and
``hand`` sketches of LAS view 1 (azimuth 45 degrees), and two more ``hand`` sketches with other
seeds, all at 128 px.

    python scripts/las_sketch_styles.py [--out docs/las_sketch_styles.png]
"""

from __future__ import annotations

import argparse

import numpy as np

from shapegen.testing.bench import REPO


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(REPO / "docs" / "las_sketch_styles.png"), help="PNG to write")
    ap.add_argument("--size", type=int, default=128, help="sketch side in pixels")
    args = ap.parse_args()

    import torch

    from renderers.preview import save_image
    from shapegen.data.procedural import generate, preview_sheet, to_mesh
    from shapegen.data.sketches import LAS_AZIMUTHS, SKETCH_STYLES, render_sketch
    from shapegen.testing.las_real import las_frame

    torch.set_num_threads(1)
    rows = []
    for cls, index in (("chair", 3), ("table", 3), ("mug", 4)):
        shape = generate(cls, index, 0, variant="rich")
        while shape.params["family"] == "classic":  # show a family the classic generators do not draw
            index += 1
            shape = generate(cls, index, 0, variant="rich")
        mesh = las_frame(to_mesh(shape, 64))
        row = [(f"{cls} {shape.params['family']}", mesh)]
        looks = [(style, 0) for style in SKETCH_STYLES] + [("hand", 1), ("hand", 2)]
        for style, seed in looks:
            ink = render_sketch(mesh, LAS_AZIMUTHS[1], style=style, size=args.size, seed=seed)
            grey = (255 - ink.clamp(0, 1).numpy() * 255).astype(np.uint8)
            row.append((f"{style}" + (f" seed {seed}" if style == "hand" else ""), np.repeat(grey[..., None], 3, -1)))
        rows.append(row)
    path = save_image(args.out, preview_sheet(rows, args.size, azimuth_deg=LAS_AZIMUTHS[1]))
    print(path)


if __name__ == "__main__":
    main()

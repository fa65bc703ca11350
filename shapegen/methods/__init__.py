"""Methods: one file per method, registered explicitly in :data:`METHODS`.

Each entry maps the name used on the command line (``--method NAME``) to the module path
of its LightningModule system. Nothing registers itself by import side effect.
"""

from __future__ import annotations

METHODS: dict[str, str] = {
    "msdf": "shapegen.methods.msdf:MSDFGenerator",
    "vsd": "shapegen.methods.vsd:VSDSystem",
    "occsdf": "shapegen.methods.occsdf:OccSDFSystem",
    "las": "shapegen.methods.las:LASDiffusion",
}
"""Method name -> ``module:Class`` of its LightningModule (filled as methods land)."""

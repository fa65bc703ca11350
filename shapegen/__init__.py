"""shapegen: generate and reconstruct 3D shapes and hand them to Blender.

Importing this package is cheap and needs only the core dependencies; the methods import
their heavy optional dependencies (diffusers, peft, ocnn, nerfacc) lazily.
"""

from shapegen.errors import ShapegenError

__version__ = "0.1.0"
__all__ = ["ShapegenError", "__version__"]

"""shapegen.diffusion (filled in by the method issues)."""

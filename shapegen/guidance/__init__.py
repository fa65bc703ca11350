"""shapegen.guidance (filled in by the method issues)."""

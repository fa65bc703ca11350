"""shapegen.data (filled in by the method issues)."""

"""shapegen.fields (filled in by the method issues)."""

"""shapegen.nn (filled in by the method issues)."""

"""Helpers shared by the test suite and the scripts (no test framework imported here)."""

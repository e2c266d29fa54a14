"""Fixtures shared by tests and benchmarks (not used by training, evaluation or the demo)."""

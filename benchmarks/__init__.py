"""Benchmarks of the engine and the web app: `python -m benchmarks year|inbox|web` (docs/benchmarks.md)."""

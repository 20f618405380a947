"""Benchmarks of each stage, measured as ratios taken in one run: `python -m benchmarks STAGE`."""

"""Faces report: a faces dataset's counts, pose, sharpness, duplicates and outliers (driver -> features -> stats -> write)."""

"""Faces report: a faces dataset's counts, pose, sharpness, duplicates and outliers.

driver.py -> features.py (per face) -> stats.py (per dataset) -> write.py (report files).
"""

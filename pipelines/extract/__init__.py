"""Extract: aligned faces from videos into Parquet.

A segment stage (pipelines/segments.py): plan.py -> actor.py -> commit.py, run by driver.py;
reference.py keeps only the faces of one person.
"""

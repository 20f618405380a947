"""Render: swapped, marked videos, many at once.

A segment stage (pipelines/segments.py): plan.py -> actor.py (segment.py renders the frames)
-> commit.py, run by driver.py.
"""

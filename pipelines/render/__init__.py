"""Render: swapped, marked videos, many at once (a segment stage: plan -> actor -> commit -> driver)."""

"""Evaluate: identity, pose, jitter and seam of rendered videos (driver; in_render for render --evaluate)."""

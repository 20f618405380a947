"""Evaluate: identity, pose, jitter and seam of rendered videos.

driver.py runs `rayswap evaluate`; in_render.py does the same inside `render --evaluate`.
"""

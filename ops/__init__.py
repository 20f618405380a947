"""rayswap building blocks: pure functions and modules on numpy, torch, cv2, av and pyarrow.

Nothing in this package imports ray; the Ray wiring lives in `pipelines/`.
"""

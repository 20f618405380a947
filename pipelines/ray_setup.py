"""Starting or joining Ray, and sizing actor pools from the cluster's resources."""

from __future__ import annotations

import logging
import os

import ray


def connect_ray(address: str | None = None) -> None:
    """Join the cluster at `address` (or RAY_ADDRESS), or start a local Ray.

    Reuses an already-initialised Ray (tests, notebooks, a job's driver).
    """
    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    ray.init(
        address=address,
        include_dashboard=False if address is None else None,
        # Stages report per-item errors themselves; worker logs stay in Ray's log folder
        # (/tmp/ray/session_latest/logs) instead of flooding the progress display.
        log_to_driver=False,
        logging_level=logging.WARNING,
        configure_logging=True,
    )
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # the CLI prints its own progress line
    logging.getLogger("ray.data").setLevel(logging.WARNING)


def cluster_cpus() -> float:
    return float(ray.cluster_resources().get("CPU", 1.0))


def plan_workers(requested: int | None, cpus_per_worker: float, reserve_cpus: float = 1.0) -> int:
    """Actor pool size: `requested`, or as many as fit while leaving `reserve_cpus` free.

    Actors hold their CPUs for the whole run; leaving headroom keeps the plan and write
    tasks schedulable (an actor pool on every CPU hangs Ray Data).
    """
    if requested is not None:
        return requested
    return max(1, int((cluster_cpus() - reserve_cpus) // cpus_per_worker))


def actor_pool(requested: int | None, workers: int) -> ray.data.ActorPoolStrategy:
    """A fixed pool when --workers is given (all actors start at once); otherwise one
    that grows from 1 to `workers` with the queue, so an autoscaling cluster adds nodes."""
    if requested is not None:
        return ray.data.ActorPoolStrategy(size=requested)
    return ray.data.ActorPoolStrategy(min_size=1, max_size=workers)

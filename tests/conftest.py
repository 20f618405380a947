"""Shared fixtures: one local Ray per test session, the shared media set, generated clips."""

from __future__ import annotations

import os

os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.1")  # before Ray starts
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
if os.environ.get("RAYSWAP_SHARED_DATA"):
    SHARED_DATA = Path(os.environ["RAYSWAP_SHARED_DATA"])


def shared_video(name: str) -> Path:
    """A clip of ../shared/data/video, or skip the test with the reason."""
    path = SHARED_DATA / "video" / name
    if not path.exists():
        pytest.skip(f"shared media not found: {path}")
    return path


def shared_image(name: str) -> Path:
    path = SHARED_DATA / "image" / name
    if not path.exists():
        pytest.skip(f"shared media not found: {path}")
    return path


@pytest.fixture(scope="session")
def ray_local():
    """One shared local Ray (4 logical CPUs on a 2-core box), shut down at the end."""
    import ray

    if not ray.is_initialized():
        ray.init(
            address="local",  # never attach to a `ray start` head that happens to run here
            num_cpus=4,
            object_store_memory=256 * 1024**2,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
        )
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.execution_no_progress_timeout_s = 120  # a deadlock fails the test instead of hanging CI
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    """scikit-image's public-domain portrait, (512, 512, 3) uint8 RGB."""
    from skimage import data

    return data.astronaut()


@pytest.fixture(scope="session")
def sample_clips(tmp_path_factory) -> dict[str, Path]:
    """Two short generated clips of the animated portrait (identities a and b)."""
    from ops.samples import make_sample_clips

    folder = tmp_path_factory.mktemp("samples")
    return make_sample_clips(str(folder), frames=12, size=160)


@pytest.fixture
def no_ray(monkeypatch):
    """Fail a test whose command gets as far as joining Ray (a bad invocation must not).

    Every stage joins Ray through `ray_setup.connect_ray` (train imports it by name).
    """

    def refuse(*_args, **_kwargs):
        raise AssertionError("Ray was started for a bad invocation")

    from pipelines.runtime import ray_setup
    from pipelines.train import driver as train_stage

    monkeypatch.setattr(ray_setup, "connect_ray", refuse)
    monkeypatch.setattr(train_stage, "connect_ray", refuse)

"""What a train worker draws its faces from: held on its device when they fit, else streamed.

    open_feed(shard, side, cfg, rows, device, generator) -> FaceFeed
    feed.next() -> faces (B, R, R, 3) uint8 and landmarks (B, 10) float32, on the device

A worker's shard of the decoded faces (`pipelines.train.data.load_faces`) is read once
into a `FaceBank` on the device when it fits under the cache limit (`--device-cache-gb`,
by default a quarter of the GPU's memory, or on CPU a quarter of the node's memory up to
4 GiB); batches are then drawn there with no host work. A shard beyond the limit is
streamed: a reader thread iterates the shard epoch after epoch into a small queue, so a
new pass over the data starts while the last batches of the previous one are trained on.

Both read through the same thread and queue, with a watchdog: no batch for
`--data-timeout-s` seconds fails the worker with a message saying what stalled.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from typing import Any

import numpy as np
import torch

from ops.face_bank import FaceBank, faces_nbytes
from pipelines.config import TrainConfig

CPU_CACHE_CAP = 4 * 2**30
READ_BATCH = 1024  # rows per block read while filling the cache
QUEUE_DEPTH = 8  # streamed batches read ahead


def cache_limit_bytes(cfg: TrainConfig, device: torch.device) -> int:
    """The most bytes of faces a worker holds on its device (both identities together)."""
    if cfg.device_cache_gb is not None:
        return int(cfg.device_cache_gb * 2**30)
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory // 4
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return min(CPU_CACHE_CAP, memory // 4)


class _ShardReader:
    """A daemon thread iterating a dataset shard into a bounded queue (epochs: None = endless)."""

    def __init__(self, shard: Any, batch_size: int, epochs: int | None, shuffle: int) -> None:
        self.queue: queue.Queue = queue.Queue(maxsize=QUEUE_DEPTH)
        self.stop = threading.Event()
        args = (shard, batch_size, epochs, shuffle)
        self.thread = threading.Thread(target=self._run, args=args, daemon=True)
        self.thread.start()

    def _run(self, shard: Any, batch_size: int, epochs: int | None, shuffle: int) -> None:
        try:
            epoch = 0
            while epochs is None or epoch < epochs:
                for rows in shard.iter_batches(
                    batch_size=batch_size,
                    batch_format="numpy",
                    drop_last=epochs is None,  # streamed batches are all full
                    local_shuffle_buffer_size=shuffle or None,
                ):
                    if not self._put((rows["face"], rows["landmarks"])):
                        return
                epoch += 1
            self._put(None)  # end of the requested epochs
        except Exception as exc:  # handed to the training thread, which raises it
            self._put(exc)

    def _put(self, item: Any) -> bool:
        while not self.stop.is_set():
            try:
                self.queue.put(item, timeout=0.5)
                return True
            except queue.Full:
                continue
        return False

    def get(self, timeout_s: float, what: str) -> Any:
        try:
            item = self.queue.get(timeout=timeout_s)
        except queue.Empty:
            raise TimeoutError(
                f"no faces of {what} arrived for {timeout_s:.0f} s (--data-timeout-s): the Ray "
                f"Data pipeline is stalled; if the train workers take every CPU of the node, "
                f"lower --workers or --cpus-per-worker"
            ) from None
        if isinstance(item, Exception):
            raise item
        return item

    def close(self) -> None:
        self.stop.set()


class FaceFeed:
    """Batches of one identity's faces for one worker, on its device."""

    def __init__(self, side: str, batch_size: int, timeout_s: float, device: torch.device) -> None:
        self.side, self.batch_size = side, batch_size
        self.timeout_s, self.device = timeout_s, device
        self.bank: FaceBank | None = None
        self.reader: _ShardReader | None = None

    @property
    def cached(self) -> bool:
        return self.bank is not None

    def fill(self, shard: Any, generator: torch.Generator) -> None:
        """Read the shard once into a FaceBank on the device."""
        reader = _ShardReader(shard, READ_BATCH, epochs=1, shuffle=0)
        faces, landmarks = [], []
        try:
            while (item := reader.get(self.timeout_s, f"--{self.side}")) is not None:
                faces.append(torch.from_numpy(item[0]).to(self.device))
                landmarks.append(torch.from_numpy(item[1]).to(self.device))
        finally:
            reader.close()
        self.bank = FaceBank(torch.cat(faces), torch.cat(landmarks), generator)

    def stream(self, shard: Any) -> None:
        """Read the shard epoch after epoch in the background."""
        self.reader = _ShardReader(shard, self.batch_size, None, shuffle=4 * self.batch_size)

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The next (faces, landmarks) batch on the device."""
        if self.bank is not None:
            return self.bank.sample(self.batch_size)
        assert self.reader is not None, "call fill() or stream() first"
        faces, landmarks = self.reader.get(self.timeout_s, f"--{self.side}")
        pin = self.device.type == "cuda"
        return _to_device(faces, pin, self.device), _to_device(landmarks, pin, self.device)

    def close(self) -> None:
        if self.reader is not None:
            self.reader.close()


def _to_device(array: np.ndarray, pin: bool, device: torch.device) -> torch.Tensor:
    tensor = torch.from_numpy(np.ascontiguousarray(array))
    if pin:
        tensor = tensor.pin_memory()
    return tensor.to(device, non_blocking=pin)


def open_feeds(
    shards: dict[str, Any],
    rows: dict[str, int],
    cfg: TrainConfig,
    world: int,
    device: torch.device,
    generator: torch.Generator,
) -> tuple[dict[str, FaceFeed], dict[str, Any]]:
    """One feed per identity; cached on the device when both shares fit the limit together.

    rows: faces per identity in the whole dataset (each worker holds about 1/world).
    Returns the feeds and a note of the choice {"cached", "bytes", "limit_bytes", "seconds"}.
    """
    started = time.perf_counter()
    needed = sum(faces_nbytes(-(-count // world), cfg.resolution) for count in rows.values())
    limit = cache_limit_bytes(cfg, device)
    feeds = {side: FaceFeed(side, cfg.batch_size, cfg.data_timeout_s, device) for side in shards}
    for side, shard in shards.items():
        if needed <= limit:
            feeds[side].fill(shard, generator)
        else:
            feeds[side].stream(shard)
    note = {"cached": needed <= limit, "bytes": needed, "limit_bytes": limit}
    note["seconds"] = time.perf_counter() - started
    return feeds, note

"""Checks every stage makes before Ray starts, written once: where its Ray is, --gpu, --out.

Each raises ValueError naming the flag; the CLI turns it into exit code 2 (a bad invocation).
"""

from __future__ import annotations

import os

import ray

from ops import storage

LOCAL = "local"


def ray_address(address: str | None) -> str:
    """Where a command's Ray is: --address, else RAY_ADDRESS, else "local" (its own)."""
    return address or os.environ.get("RAY_ADDRESS") or LOCAL


def runs_local(address: str | None) -> bool:
    """True when the command is to start its own Ray on this machine: it has joined none
    yet, and neither --address nor RAY_ADDRESS names one."""
    return not ray.is_initialized() and ray_address(address) == LOCAL


def check_gpu(gpu: bool, address: str | None) -> None:
    """With --gpu, refuse a Ray that has no GPU: actors asking for one would wait forever.

    A Ray this process joined is asked for its GPUs; a local Ray still to start has this
    machine's CUDA devices; a cluster still to join answers when it is joined.
    """
    if not gpu:
        return
    if ray.is_initialized():
        if ray.cluster_resources().get("GPU", 0) <= 0:
            raise ValueError("--gpu: the Ray cluster this process joined has no GPU; drop --gpu")
    elif runs_local(address):
        import torch

        if not torch.cuda.is_available():
            raise ValueError("--gpu: this machine has no CUDA GPU; drop --gpu or use --address")


def check_out_dir(out: str, flag: str = "--out") -> None:
    """A local `out` must be a folder that can be made and written (checked with a real
    write); object-store URIs pass, the store answers on the first write."""
    try:
        storage.check_writable_dir(out)
    except ValueError as exc:
        raise ValueError(f"{flag}: {exc}; give a folder that can be written") from exc

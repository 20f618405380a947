"""Paste-back benchmark: the cv2 path against the torch path, stage by stage, per face.

    python -m benchmarks paste [--data ../shared/data] [--frames 16] [--resolution 128]
                               [--device cpu|cuda] [--threads 1]

Both paths do the same work to the same faces (real frames of a render target, one face
each, landmarks from the detector, the swap of an untrained model): crop (align), colour
match (lab, hist, none), mask (learned mask ∩ oval, eroded, feathered), paste back, and the
watermark, in milliseconds per face; the torch path also uploads the frames and downloads
them. The model and the detector are the same on both paths and are not timed. On CPU,
times are CPU seconds of this process at `--threads` threads (cv2 and torch), best of 3,
so other load on a shared machine does not skew them; on CUDA they are wall seconds after
a synchronize. The first call of each stage is a warm-up (the colour tables are built there).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np

from benchmarks.media import DEFAULT_DATA, shared_clips

CLIPS = ("person_e__liveportrait_s18.mp4", "person_d__liveportrait_d18.mp4")


def _best_ms(fn: Callable[[], object], device: str, repeats: int = 3) -> float:
    """Fastest of `repeats` runs after a warm-up, in ms (CPU time on CPU, wall time on CUDA)."""
    import torch

    cuda = device.startswith("cuda")
    clock = time.perf_counter if cuda else time.process_time
    fn()
    best = float("inf")
    for _ in range(repeats):
        if cuda:
            torch.cuda.synchronize()
        started = clock()
        fn()
        if cuda:
            torch.cuda.synchronize()
        best = min(best, clock() - started)
    return best * 1000.0


def _faces(clip: str, frames_n: int, resolution: int) -> dict:
    """Frames of a clip with one face each, its landmarks, and an untrained model's swap."""
    import torch

    from ops.align import align_face
    from ops.blend import template_oval
    from ops.detect import RetinaFaceDetector, select_faces
    from ops.model import ModelConfig, SwapAutoencoder
    from ops.video import iter_frames

    frames = [frame for _, _, frame in iter_frames(clip, 0, frames_n)]
    detector = RetinaFaceDetector(threads=1)
    found = [select_faces(f, 24, 0.8, "largest") for f in detector.detect_batch(frames)]
    frames = [frame for frame, faces in zip(frames, found, strict=True) if faces]
    landmarks = [faces[0].landmarks for faces in found if faces]
    aligned = [align_face(f, p, resolution) for f, p in zip(frames, landmarks, strict=True)]
    torch.manual_seed(0)
    model = SwapAutoencoder(ModelConfig(resolution=resolution, width=8, latent_dim=32)).eval()
    crops = np.stack([crop for crop, _ in aligned])
    with torch.inference_mode():
        x = torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 255.0
        rgb, mask = model.swap(x, to="b")
    return {
        "frames": frames,
        "landmarks": landmarks,
        "affines": np.stack([affine for _, affine in aligned]),
        "crops": crops,
        "swapped": (rgb.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy(),
        "learned": mask[:, 0].numpy(),
        "oval": template_oval(resolution, 1.5),
    }


def time_cv2(faces: dict, device: str) -> dict[str, float]:
    """ms per face of each stage of the cv2 path (`pipelines.render.segment.composite`)."""
    from ops.align import warp_face
    from ops.blend import blend_mask, match_color, paste_back
    from ops.watermark import embed_watermark

    frames, affines, oval = faces["frames"], faces["affines"], faces["oval"]
    n, size = len(frames), oval.shape[0]
    pairs = list(zip(faces["swapped"], faces["crops"], strict=True))
    masks = [blend_mask(learned, oval) for learned in faces["learned"]]
    jobs = list(zip(frames, faces["swapped"], masks, affines, strict=True))
    pasted = [paste_back(f, c, m, a) for f, c, m, a in jobs]
    stages = {
        "crop": lambda: [warp_face(f, a, size) for f, a in zip(frames, affines, strict=True)],
        **{
            f"colour {method}": lambda method=method: [
                match_color(s, r, oval, method) for s, r in pairs
            ]
            for method in ("lab", "hist", "none")
        },
        "mask": lambda: [blend_mask(learned, oval) for learned in faces["learned"]],
        "paste": lambda: [paste_back(f, c, m, a) for f, c, m, a in jobs],
        "watermark": lambda: [
            embed_watermark(f, p) for f, p in zip(pasted, faces["landmarks"], strict=True)
        ],
    }
    return {name: _best_ms(fn, device) / n for name, fn in stages.items()}


def time_torch(faces: dict, device: str) -> dict[str, float]:
    """ms per face of each stage of the torch path (`DeviceCompositor.composite`) on `device`."""
    import torch

    from ops.blend_torch import blend_masks, crop_faces, match_colors, paste_faces
    from ops.watermark_torch import embed_watermarks

    n, size = len(faces["frames"]), faces["oval"].shape[0]
    rows, affines = list(range(n)), faces["affines"]
    host = np.stack(faces["frames"])
    frames = torch.from_numpy(host).to(device)
    oval = torch.from_numpy(faces["oval"]).to(device)
    swapped = torch.from_numpy(faces["swapped"]).to(device).permute(0, 3, 1, 2).float()
    crops = crop_faces(frames, rows, affines, size)
    learned = torch.from_numpy(faces["learned"]).to(device)
    masks = blend_masks(learned, oval)

    def paste() -> None:
        paste_faces(frames.clone(), rows, swapped, masks, affines)

    pasted = frames.clone()
    paste_faces(pasted, rows, swapped, masks, affines)
    stages = {
        "upload + download": lambda: (
            torch.from_numpy(np.stack(faces["frames"])).to(device).cpu().numpy()
        ),
        "crop": lambda: crop_faces(frames, rows, affines, size),
        **{
            f"colour {method}": lambda method=method: match_colors(swapped, crops, oval, method)
            for method in ("lab", "hist", "none")
        },
        "mask": lambda: blend_masks(learned, oval),
        "paste": paste,
        "watermark": lambda: embed_watermarks(pasted.clone(), rows, faces["landmarks"]),
    }
    times = {name: _best_ms(fn, device) / n for name, fn in stages.items()}
    clone_ms = _best_ms(frames.clone, device) / n  # paste and watermark work on a copy
    times["paste"] -= clone_ms
    times["watermark"] -= clone_ms
    return times


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks paste")
    parser.add_argument("--data", type=str, default=str(DEFAULT_DATA))
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--resolution", type=int, default=128, choices=(64, 128, 256))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)

    from pathlib import Path

    import cv2
    import torch

    cv2.setNumThreads(args.threads)
    torch.set_num_threads(args.threads)
    print(f"threads {args.threads}, crop {args.resolution} px, torch path on {args.device}")
    for clip in shared_clips(Path(args.data), CLIPS):
        faces = _faces(clip, args.frames, args.resolution)
        height, width = faces["frames"][0].shape[:2]
        cv2_ms, torch_ms = time_cv2(faces, args.device), time_torch(faces, args.device)
        print(f"\n{Path(clip).name}: {width}x{height}, {len(faces['frames'])} faces, ms per face")
        print(f"  {'stage':<18}{'cv2':>9}{'torch':>9}{'torch/cv2':>11}")
        for name in torch_ms:
            mine, theirs = torch_ms[name], cv2_ms.get(name, 0.0)
            ratio = f"{mine / theirs:>11.2f}" if theirs > 0 else f"{'':>11}"
            print(f"  {name:<18}{theirs:>9.2f}{mine:>9.2f}{ratio}")
        for method in ("lab", "hist", "none"):
            keep = ("crop", f"colour {method}", "mask", "paste", "watermark")
            total_cv2 = sum(cv2_ms[k] for k in keep)
            total_torch = sum(torch_ms[k] for k in keep) + torch_ms["upload + download"]
            label = f"total ({method})"
            ratio = total_torch / total_cv2
            print(f"  {label:<18}{total_cv2:>9.2f}{total_torch:>9.2f}{ratio:>11.2f}")

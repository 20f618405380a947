"""Extract benchmark: stage bounds, the Ray pipeline, and the loops a user would write without it.

    python -m benchmarks extract [--data ../shared/data] [--every-n 1] [--quick]

All numbers come from one run on the same clips, so they can be compared as ratios:
- decode-only and detect-only frames/s on one core (PyAV with 1 thread; RetinaFace on a
  1-thread onnxruntime session, frames downscaled to 640 px, batches of 8);
- the per-core bound of the pipeline: one core must decode AND detect every frame, so
  bound = 1 / (1/decode + 1/detect), times the number of workers;
- the pipeline's frames/s and faces/s with 1 and 2 workers (fresh local Ray each, Ray
  start excluded): end to end, from the call of `run_extract` to its return; and steady,
  measured here from `run_extract`'s `on_progress` reports: the frames and faces of the
  reports after the first one, over the time from the first report to the last (so the
  actor pool's start and the first segment are left out);
- loop A: `retinaface.detect_faces` on full frames read with OpenCV, aligned and encoded;
- loop B: the pipeline's own decode, detection size, alignment and encoding in one plain
  process, with onnxruntime's default threading (one thread per core);
- peak resident memory of the whole Ray process tree for the input and for the input x4.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchmarks.media import DEFAULT_DATA, shared_clips
from pipelines.config import ExtractCounts

CLIPS = (
    "person_e__liveportrait_s18.mp4",  # 1280x720
    "person_g__liveportrait_d13.mp4",  # 720x1280 vertical
    "person_d__liveportrait_d18.mp4",  # 480x480
    "person_a__mead_M030_front_neutral.mp4",  # 256x256
)


def _clips(data: Path, quick: bool) -> list[str]:
    return shared_clips(data, CLIPS[:2] if quick else CLIPS)


def tree_rss_bytes(root_pid: int) -> int:
    """Resident memory of a process and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                ppid = int(handle.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    total, stack = 0, [root_pid]
    while stack:
        pid = stack.pop()
        stack.extend(children.get(pid, []))
        try:
            with open(f"/proc/{pid}/status") as handle:
                for line in handle:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


class SteadyRate:
    """`on_progress` of `run_extract`: the work reported after the first segment report.

    The first report arrives once the actor pool is up and one segment is done; the
    frames and faces of the later reports, over the time from the first report to the
    last one, are the steady-state rate. None with fewer than two reports.
    """

    METHOD = (
        "steady = frames (faces) of the segment reports after the first one / seconds from "
        "the first report to the last (actor pool start and first segment excluded)"
    )

    def __init__(self) -> None:
        self.first: float | None = None
        self.last = 0.0
        self.at_first = {"frames": 0, "faces": 0}
        self.totals = {"frames": 0, "faces": 0}

    def __call__(self, _report: dict, totals: ExtractCounts) -> None:
        now = time.perf_counter()
        if self.first is None:
            self.first = now
            self.at_first = {key: getattr(totals, key) for key in self.at_first}
        self.last = now
        self.totals = {key: getattr(totals, key) for key in self.totals}

    @property
    def seconds(self) -> float | None:
        if self.first is None or self.last <= self.first:
            return None
        return self.last - self.first

    def rate(self, key: str) -> float | None:
        seconds = self.seconds
        return None if seconds is None else (self.totals[key] - self.at_first[key]) / seconds


class PeakMemory:
    """Samples the RSS of this process tree every 0.5 s in a background thread."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, tree_rss_bytes(os.getpid()))
            self._stop.wait(0.5)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self._stop.set()
        self._thread.join()


def measure_decode(clips: list[str], every_n: int) -> tuple[int, float]:
    from ops.video import iter_frames

    started, frames = time.perf_counter(), 0
    for clip in clips:
        for _ in iter_frames(clip, every_n=every_n, threads=1):
            frames += 1
    return frames, time.perf_counter() - started


def measure_detect(clips: list[str], every_n: int, sample: int = 48) -> tuple[int, float]:
    """Detect-only seconds for every sampled frame, estimated per clip from `sample` frames."""
    from itertools import islice

    from ops.detect import RetinaFaceDetector
    from ops.video import iter_frames, probe_video

    detector = RetinaFaceDetector(threads=1, max_side=640)
    total_frames, total_s = 0, 0.0
    for clip in clips:
        frames = [f for _, _, f in islice(iter_frames(clip, every_n=every_n), sample)]
        detector.detect_batch(frames[:8])  # warm up the session for this size
        started = time.perf_counter()
        for i in range(0, len(frames), 8):
            detector.detect_batch(frames[i : i + 8])
        per_frame = (time.perf_counter() - started) / len(frames)
        count = len(range(0, probe_video(clip).frame_count, every_n))
        total_frames += count
        total_s += per_frame * count
    return total_frames, total_s


def _align_and_encode(frame, landmarks) -> int:
    from ops.align import align_face
    from ops.quality import encode_crop, sharpness

    crop, _ = align_face(frame, landmarks, 256, 1.5)
    sharpness(crop)
    return len(encode_crop(crop, "jpeg"))


def loop_library(clips: list[str], every_n: int) -> tuple[int, int, float]:
    """Loop A: OpenCV decode + retinaface.detect_faces on full frames + align + encode."""
    import cv2
    import numpy as np
    import retinaface

    started, frames, faces = time.perf_counter(), 0, 0
    for clip in clips:
        capture = cv2.VideoCapture(clip)
        index = 0
        while True:
            ok, bgr = capture.read()
            if not ok:
                break
            if index % every_n == 0:
                frame = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                found = retinaface.detect_faces(frame, score_threshold=0.8)
                if found:
                    best = max(found, key=lambda f: f.width * f.height)
                    points = np.array([[p.x, p.y] for p in best.landmarks], np.float32)
                    _align_and_encode(frame, points)
                    faces += 1
                frames += 1
            index += 1
    return frames, faces, time.perf_counter() - started


def loop_same_settings(clips: list[str], every_n: int) -> tuple[int, int, float]:
    """Loop B: the pipeline's libraries and detection size, default threading, one process."""
    from ops.detect import RetinaFaceDetector, select_faces
    from ops.video import iter_frames

    detector = RetinaFaceDetector(threads=0, max_side=640)
    started, frames, faces = time.perf_counter(), 0, 0
    for clip in clips:
        for _, _, frame in iter_frames(clip, every_n=every_n, threads=0):
            found = select_faces(detector.detect_batch([frame])[0], 40, 0.8, "largest")
            for detection in found:
                _align_and_encode(frame, detection.landmarks)
                faces += 1
            frames += 1
    return frames, faces, time.perf_counter() - started


def pipeline_child(spec: dict) -> dict:
    """Run in a fresh process: local Ray, one extract, peak memory of the process tree."""
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray

    from pipelines.config import ExtractConfig
    from pipelines.extract.driver import run_extract

    with PeakMemory() as memory:
        ray.init(
            address="local",
            num_cpus=spec["workers"] + 1,
            include_dashboard=False,
            log_to_driver=False,
            object_store_memory=256 * 1024**2,
        )
        ray.data.DataContext.get_current().enable_progress_bars = False
        cfg = ExtractConfig(
            inputs=tuple(spec["clips"]),
            out=spec["out"],
            identity="bench",
            every_n=spec["every_n"],
            workers=spec["workers"],
            segment_frames=spec["segment_frames"],
            reference=tuple(spec.get("reference") or ()),
        )
        steady = SteadyRate()
        summary = run_extract(cfg, on_progress=steady)
        ray.shutdown()
    return {
        "frames": summary.counts.frames,
        "faces": summary.counts.faces,
        "rejected": summary.counts.rejected,
        "seconds": summary.seconds,
        "steady_frames_per_s": steady.rate("frames"),
        "steady_faces_per_s": steady.rate("faces"),
        "steady_seconds": steady.seconds,
        "peak_rss": memory.peak,
        "failed": summary.n_failed,
    }


def run_pipeline(
    clips: list[str],
    workers: int,
    every_n: int,
    segment_frames: int,
    reference: list[str] | None = None,
) -> dict:
    """One extract in a fresh process; `reference` as `--reference` (benchmarks/identity.py)."""
    with tempfile.TemporaryDirectory(prefix="rayswap-bench-") as out:
        spec = {
            "clips": clips,
            "workers": workers,
            "every_n": every_n,
            "out": out + "/out",
            "segment_frames": segment_frames,
            "reference": reference,
        }
        code = (
            "import json,sys; from benchmarks.extract import pipeline_child; "
            "print('RESULT' + json.dumps(pipeline_child(json.loads(sys.argv[1]))))"
        )
        done = subprocess.run(
            [sys.executable, "-c", code, json.dumps(spec)],
            check=True,
            capture_output=True,
            text=True,
        )
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT"))
    return json.loads(line[len("RESULT") :])


def replicate(clips: list[str], times: int, folder: str) -> list[str]:
    """`times` copies of the clip list as distinct files (symlinks with other names)."""
    copies = []
    for i in range(times):
        for clip in clips:
            link = os.path.join(folder, f"copy{i}_{os.path.basename(clip)}")
            os.symlink(clip, link)
            copies.append(link)
    return copies


def _ratio(rate: float | None, over: float) -> str:
    """rate / over for the table; n/a when the run had a single report (no steady part)."""
    if rate is None:
        return "n/a"
    return f"{rate / over:.1f}" if over == 1 else f"{rate / over:.2f}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks extract",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="../shared/data folder")
    parser.add_argument("--every-n", type=int, default=1)
    parser.add_argument("--segment-frames", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3, help="copies of the clips for the rates")
    parser.add_argument("--quick", action="store_true", help="two clips, skip the x4 memory run")
    args = parser.parse_args(argv)
    clips = _clips(args.data, args.quick)

    decode_frames, decode_s = measure_decode(clips, args.every_n)
    detect_frames, detect_s = measure_detect(clips, args.every_n)
    decode_fps, detect_fps = decode_frames / decode_s, detect_frames / detect_s
    core_bound = 1.0 / (1.0 / decode_fps + 1.0 / detect_fps)
    print(f"clips: {len(clips)}, sampled frames: {decode_frames}")
    print(f"decode-only  {decode_fps:8.1f} frames/s per core")
    print(f"detect-only  {detect_fps:8.1f} frames/s per core")
    print(f"bound        {core_bound:8.1f} frames/s per core (decode + detect on one core)")

    frames_a, faces_a, seconds_a = loop_library(clips, args.every_n)
    frames_b, faces_b, seconds_b = loop_same_settings(clips, args.every_n)
    loop_a, loop_b = frames_a / seconds_a, frames_b / seconds_b
    print(
        f"loop A (retinaface.detect_faces, full frames)  {loop_a:7.1f} frames/s, "
        f"{faces_a / seconds_a:6.1f} faces/s"
    )
    print(
        f"loop B (same settings, default threading)      {loop_b:7.1f} frames/s, "
        f"{faces_b / seconds_b:6.1f} faces/s"
    )

    cores = os.cpu_count() or 1
    print("\nend to end: Ray start excluded, actor start included; " + SteadyRate.METHOD)
    print(
        "| workers | frames/s end to end | frames/s steady | faces/s steady | steady / bound "
        "| steady / loop A | steady / loop B | end to end / loop B | peak RSS |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    results = {}
    with tempfile.TemporaryDirectory(prefix="rayswap-bench-") as folder:
        # The rates use the clips `--repeat` times over, so the last few segments (one
        # worker busy, the other done) weigh less than they would on four clips.
        repeated = replicate(clips, args.repeat, folder)
        for workers in (1, 2):
            result = run_pipeline(repeated, workers, args.every_n, args.segment_frames)
            results[workers] = result
            fps = result["frames"] / result["seconds"]
            steady, faces = result["steady_frames_per_s"], result["steady_faces_per_s"]
            bound = core_bound * min(workers, cores)
            cells = [_ratio(steady, 1), _ratio(faces, 1)]
            cells += [_ratio(steady, bound), _ratio(steady, loop_a), _ratio(steady, loop_b)]
            print(
                f"| {workers} | {fps:.1f} | {' | '.join(cells)} | {fps / loop_b:.2f} | "
                f"{result['peak_rss'] / 2**20:.0f} MiB |"
            )
    if args.quick:
        return
    with tempfile.TemporaryDirectory(prefix="rayswap-bench-mem-") as folder:
        small = run_pipeline(clips, 2, args.every_n, args.segment_frames)
        big = run_pipeline(replicate(clips, 4, folder), 2, args.every_n, args.segment_frames)
    print(
        f"\npeak RSS of the Ray process tree, 2 workers: input x1 {small['peak_rss'] / 2**20:.0f}"
        f" MiB, input x4 {big['peak_rss'] / 2**20:.0f} MiB, ratio "
        f"{big['peak_rss'] / small['peak_rss']:.2f} (frames x{big['frames'] / small['frames']:.1f})"
    )


if __name__ == "__main__":
    main()

"""Identity benchmark: how well the embedder separates people, and what --reference costs.

    python -m benchmarks identity [--data ../shared/data] [--per-file 8] [--quick]

1. Separation, on faces sampled from every file of ../shared/data whose manifest identity is
   one person (13 people; stills and clips; 8 faces per clip by default), per alignment of
   ops/identity.py ("dlib", "template", "resize") and dlib's own pipeline on the full frame:
   - nearest-neighbour identity retrieval: each face of a person with 2+ files finds its
     nearest face among all faces of the *other* files; the share that is the same person;
   - ROC-AUC over all pairs of faces from different files (same person vs not);
   - gallery ROC-AUC of `identity_distances`: one file of a person as the gallery, every
     face of the other files scored, by the distance to the gallery mean and by the mean of
     the 1 or 5 nearest;
   - for the default alignment: the share of the person's faces and of other people's
     faces kept at each --max-distance, for a one-image reference and a one-clip reference.
2. Cost: `rayswap extract` on the extract benchmark's clips with `--reference` (person_d's
   still) over without, in steady frames/s with 2 workers (as benchmarks/extract.py
   measures it: the frames of the segment reports after the first one, over the time from
   the first report to the last), and the embedder alone, per network (faces/s and CPU
   seconds per face, each on one thread: the torch rebuild of dlib's network, the default,
   against dlib's own, in one run, with the largest difference of their descriptors).
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.extract import CLIPS, SteadyRate, run_pipeline
from benchmarks.media import DEFAULT_DATA, shared_clips

THRESHOLDS = (0.45, 0.48, 0.5, 0.52, 0.55, 0.6)
REFERENCE = "person_d__liveportrait_d19.jpg"


def sample_faces(data: Path, per_file: int) -> dict[str, np.ndarray]:
    """Aligned 256 px crops (coverage 1.5, as extract cuts them) of every one-person file."""
    import cv2

    from ops.align import align_face, transform_points
    from ops.detect import RetinaFaceDetector, select_faces
    from ops.identity import IdentityEmbedder
    from ops.video import iter_frames

    detector = RetinaFaceDetector(threads=1)
    native = IdentityEmbedder("dlib")  # its chip cut straight from the full frame
    found: dict[str, list] = {k: [] for k in ("crops", "landmarks", "ids", "files", "frame")}

    def add(frame, detection, identity: str, name: str) -> None:
        crop, affine = align_face(frame, detection.landmarks, 256, 1.5)
        found["crops"].append(crop)
        found["landmarks"].append(transform_points(detection.landmarks, affine))
        found["ids"].append(identity)
        found["files"].append(name)
        found["frame"].append(native.embed_frame(frame, detection.landmarks))

    with open(data / "manifest.csv") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        identity, name = row["identity"], row["file"]
        if identity.startswith(("multiple", "none")):
            continue
        if row["kind"] == "image":
            frame = cv2.cvtColor(cv2.imread(str(data / name)), cv2.COLOR_BGR2RGB)
            faces = sorted(detector.detect_batch([frame])[0], key=lambda d: d.bbox[0])
            if identity == "obama + biden":  # Obama on the left, Biden on the right
                add(frame, faces[0], "obama", name)
                add(frame, faces[1], "biden", name)
            else:
                add(frame, select_faces(faces, which="largest")[0], identity, name)
            continue
        step, taken = max(1, int(row["frames"]) // per_file), 0
        for _, _, frame in iter_frames(str(data / name), every_n=step):
            faces = select_faces(detector.detect_batch([frame])[0], 24, 0.8, "largest")
            if faces:
                add(frame, faces[0], identity, name)
                taken += 1
            if taken >= per_file:
                break
    return {key: np.asarray(value) for key, value in found.items()}


def roc_auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """P(a same-person distance < an other-person distance), ties counted half."""
    scores = np.concatenate([positive, negative])
    ranks = scores.argsort().argsort() + 1.0
    below = ranks[: len(positive)].sum() - len(positive) * (len(positive) + 1) / 2
    return 1.0 - below / (len(positive) * len(negative))


def separation(embeddings: np.ndarray, ids: np.ndarray, files: np.ndarray) -> dict[str, float]:
    from ops.identity import identity_distances

    distances = np.linalg.norm(embeddings[:, None] - embeddings[None], axis=2)
    files_of = {i: len(set(files[ids == i])) for i in set(ids)}
    hits = []
    for i in np.flatnonzero([files_of[i] >= 2 for i in ids]):
        others = np.flatnonzero(files != files[i])
        hits.append(ids[others[distances[i, others].argmin()]] == ids[i])
    upper = np.triu_indices(len(ids), 1)
    across = files[upper[0]] != files[upper[1]]
    same = (ids[upper[0]] == ids[upper[1]])[across]
    pair = distances[upper][across]
    result = {
        "retrieval": float(np.mean(hits)),
        "queries": len(hits),
        "pair_auc": roc_auc(pair[same], pair[~same]),
    }
    for label, k in (("centroid", None), ("k1", 1), ("k5", 5)):
        aucs = []
        for name in sorted(set(files)):
            for identity in set(ids[files == name]):
                if files_of[identity] < 2:
                    continue
                gallery = embeddings[(files == name) & (ids == identity)]
                rest = files != name
                scores = identity_distances(embeddings[rest], gallery, k)
                match = ids[rest] == identity
                aucs.append(roc_auc(scores[match], scores[~match]))
        result[f"gallery_auc_{label}"] = float(np.mean(aucs))
    return result


def kept_shares(embeddings: np.ndarray, ids: np.ndarray, files: np.ndarray) -> None:
    """Share of the person's and of other people's faces within each distance."""
    from ops.identity import identity_distances

    files_of = {i: len(set(files[ids == i])) for i in set(ids)}
    for mode in ("one image", "one clip"):
        same, other = [], []
        for name in sorted(set(files)):
            for identity in set(ids[files == name]):
                if files_of[identity] < 2:
                    continue
                chosen = np.flatnonzero((files == name) & (ids == identity))
                galleries = [chosen[:1]] if mode == "one image" else [chosen]
                rest = files != name
                for gallery in galleries:
                    scores = identity_distances(embeddings[rest], embeddings[gallery])
                    match = ids[rest] == identity
                    same += list(scores[match])
                    other += list(scores[~match])
        same_a, other_a = np.asarray(same), np.asarray(other)
        cells = " | ".join(
            f"{(same_a <= t).mean():.3f} / {(other_a <= t).mean():.4f}" for t in THRESHOLDS
        )
        print(f"| {mode} reference | {cells} |")


def embed_rates(faces: dict[str, np.ndarray], count: int = 24) -> dict[str, tuple]:
    """network -> (faces/s, CPU seconds per face, descriptors) of the embedder alone, each
    network on one thread, on the same `count` faces."""
    import torch

    from ops.identity import NETWORKS, IdentityEmbedder

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    crops, landmarks = faces["crops"][:count], faces["landmarks"][:count]
    found = {}
    try:
        for network in NETWORKS:
            embedder = IdentityEmbedder(network=network)
            embedder.embed(crops[:2], landmarks[:2])  # warm up
            started, cpu_started = time.perf_counter(), time.process_time()
            descriptors = embedder.embed(crops, landmarks)
            cpu_s = time.process_time() - cpu_started
            rate = len(crops) / (time.perf_counter() - started)
            found[network] = (rate, cpu_s / len(crops), descriptors)
    finally:
        torch.set_num_threads(threads)
    return found


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks identity",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="../shared/data folder")
    parser.add_argument("--per-file", type=int, default=8, help="faces sampled per clip")
    parser.add_argument("--every-n", type=int, default=4, help="sampling of the extract runs")
    parser.add_argument("--quick", action="store_true", help="3 faces per clip, two clips")
    args = parser.parse_args(argv)
    from ops.identity import IdentityEmbedder

    faces = sample_faces(args.data, 3 if args.quick else args.per_file)
    ids, files = faces["ids"], faces["files"]
    print(f"faces: {len(ids)} of {len(set(ids))} people in {len(set(files))} files")
    print(
        "\n| alignment | NN retrieval | pair ROC-AUC | gallery AUC: mean | 1-NN | 5-NN |"
        "\n|---|---|---|---|---|---|"
    )
    variants = {
        name: IdentityEmbedder(name).embed(faces["crops"], faces["landmarks"])
        for name in ("dlib", "template", "resize")
    }
    variants["dlib on the full frame"] = faces["frame"]
    for name, embeddings in variants.items():
        r = separation(embeddings, ids, files)
        print(
            f"| {name} | {r['retrieval']:.3f} ({r['queries']}) | {r['pair_auc']:.4f} | "
            f"{r['gallery_auc_centroid']:.4f} | {r['gallery_auc_k1']:.4f} | "
            f"{r['gallery_auc_k5']:.4f} |"
        )
    print("\nkept at --max-distance (the person's faces / other people's faces), default alignment")
    print("| reference | " + " | ".join(f"{t}" for t in THRESHOLDS) + " |")
    print("|---|" + "---|" * len(THRESHOLDS))
    kept_shares(variants["dlib"], ids, files)

    clips = shared_clips(args.data, CLIPS[:2] if args.quick else CLIPS)
    reference = str(args.data / "image" / REFERENCE)
    rates = embed_rates(faces)
    print("\nembedder alone, one thread each:")
    for network, (faces_per_s, cpu_per_face, _) in rates.items():
        print(f"  {network:5s} {faces_per_s:6.1f} faces/s, {cpu_per_face:.4f} CPU s per face")
    (_, torch_cpu, mine), (_, dlib_cpu, theirs) = rates["torch"], rates["dlib"]
    print(
        f"  torch / dlib CPU per face: {torch_cpu / dlib_cpu:.2f}; "
        f"largest descriptor difference {np.abs(mine - theirs).max():.2e}"
    )
    with tempfile.TemporaryDirectory(prefix="rayswap-bench-id-"):
        plain = run_pipeline(clips, 2, args.every_n, 300)
        filtered = run_pipeline(clips, 2, args.every_n, 300, reference=[reference])
    print(SteadyRate.METHOD)
    rates = {}
    for label, result in (("without", plain), ("with --reference", filtered)):
        rates[label] = result["steady_frames_per_s"]
        rate = "n/a (one segment report)" if rates[label] is None else f"{rates[label]:6.1f}"
        print(
            f"extract {label:17s} {rate} frames/s steady, "
            f"{result['faces']} faces kept, {result.get('rejected', 0)} rejected"
        )
    if None not in rates.values():
        ratio = rates["with --reference"] / rates["without"]
        print(f"ratio with / without --reference (steady): {ratio:.2f}")


if __name__ == "__main__":
    main()

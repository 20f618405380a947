import itertools

import cv2
import numpy as np
import pytest
import torch

from ops import detect_torch
from ops.detect import RetinaFaceDetector
from ops.detect_torch import (
    TorchRetinaFaceDetector,
    area_resize,
    batched_nms,
    make_detector,
    nms_torch,
)
from ops.onnx_weights import read_onnx_graph
from ops.retinaface_net import LEAKY_SLOPE, _state_key, load_retinaface
from ops.video import iter_frames
from tests.conftest import shared_image, shared_video

MULTI_FACE_STILL = "two_faces_obama_biden__face_recognition_two_people.jpg"  # 1126x661


@pytest.fixture(scope="module")
def weights() -> bytes:
    from retinaface.weights import WEIGHTS

    return WEIGHTS


@pytest.fixture(scope="module")
def onnx_detector():
    return RetinaFaceDetector(threads=1, max_side=640)


@pytest.fixture(scope="module")
def torch_detector():
    return TorchRetinaFaceDetector("cpu", threads=0, max_side=640)  # 0: leave torch's threads


def _read_rgb(path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def _clip_frames(name: str, count: int, every_n: int) -> list[np.ndarray]:
    frames = iter_frames(str(shared_video(name)), every_n=every_n)
    return [frame for _, _, frame in itertools.islice(frames, count)]


def _assert_same_faces(expected, found, tolerance_px: float = 1.0) -> tuple[float, float]:
    """Same number of faces per frame, boxes and landmarks within `tolerance_px`."""
    assert [len(f) for f in found] == [len(f) for f in expected]
    worst_box, worst_points = 0.0, 0.0
    for frame_expected, frame_found in zip(expected, found, strict=True):
        for want, got in zip(frame_expected, frame_found, strict=True):
            worst_box = max(worst_box, float(np.abs(want.bbox - got.bbox).max()))
            worst_points = max(worst_points, float(np.abs(want.landmarks - got.landmarks).max()))
            assert got.bbox.dtype == np.float32 and got.landmarks.shape == (5, 2)
            assert abs(want.score - got.score) < 1e-3
    assert worst_box < tolerance_px and worst_points < tolerance_px
    return worst_box, worst_points


def test_read_onnx_graph_matches_the_onnx_package(weights):
    onnx = pytest.importorskip("onnx")
    from onnx import numpy_helper

    model = onnx.load_from_string(weights)
    nodes, initializers = read_onnx_graph(weights)
    expected = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    assert initializers.keys() == expected.keys()
    for name, array in expected.items():
        assert initializers[name].dtype == np.float32
        np.testing.assert_array_equal(initializers[name], array)
    assert [(n.name, n.op_type, n.inputs, n.outputs) for n in nodes] == [
        (n.name, n.op_type, tuple(n.input), tuple(n.output)) for n in model.graph.node
    ]


def test_retinaface_net_convs_match_the_onnx_graph(weights):
    onnx = pytest.importorskip("onnx")
    from onnx.helper import get_attribute_value

    net = load_retinaface(weights)
    modules = dict(net.named_modules())
    ops = set()
    for node in onnx.load_from_string(weights).graph.node:
        ops.add(node.op_type)
        attrs = {a.name: get_attribute_value(a) for a in node.attribute}
        if node.op_type == "LeakyRelu":
            assert attrs["alpha"] == pytest.approx(LEAKY_SLOPE)
        if node.op_type != "Conv":
            continue
        conv = modules[_state_key(node.name).removesuffix("_1")]
        if isinstance(conv, torch.nn.Sequential):
            conv = conv[0]
        assert list(conv.kernel_size) == attrs["kernel_shape"]
        assert list(conv.stride) == attrs["strides"]
        assert list(conv.dilation) == attrs["dilations"]
        assert conv.groups == attrs["group"]
        assert list(conv.padding) * 2 == attrs["pads"]
    assert "BatchNormalization" not in ops  # folded into the convs' biases


def test_retinaface_net_raw_outputs_match_onnxruntime(weights, onnx_detector):
    net = load_retinaface(weights)
    rng = np.random.default_rng(0)
    blob = rng.uniform(-127, 151, (2, 3, 97, 131)).astype(np.float32)  # odd size: ceil grids
    expected = onnx_detector.session.run(None, {"input": blob})
    with torch.inference_mode():
        found = net(torch.from_numpy(blob))
    for want, got in zip(expected, found, strict=True):
        assert got.shape == want.shape
        np.testing.assert_allclose(got.numpy(), want, atol=2e-4)


@pytest.mark.parametrize(
    "name",
    [MULTI_FACE_STILL, "biden__face_recognition_biden.jpg", "person_d__liveportrait_d19.jpg"],
)
def test_detect_batch_matches_onnxruntime_on_stills(name, onnx_detector, torch_detector):
    frame = _read_rgb(shared_image(name))
    expected = onnx_detector.detect_batch([frame])
    _assert_same_faces(expected, torch_detector.detect_batch([frame]))
    if name == MULTI_FACE_STILL:
        assert len(expected[0]) == 2


@pytest.mark.parametrize(
    "clip",
    [
        "hard_multiface_profiles__face_recognition_short_hamilton_clip.mp4",  # 1-6 faces
        "hard_bw_smallfaces__moviepy_chaplin.mp4",  # small faces, some frames without
        "person_e__liveportrait_s18.mp4",  # 1280x720: downscaled to 640x360
    ],
)
def test_detect_batch_matches_onnxruntime_on_clips(clip, onnx_detector, torch_detector):
    frames = _clip_frames(clip, count=4, every_n=40)
    expected = onnx_detector.detect_batch(frames)
    assert sum(len(f) for f in expected) > 0
    _assert_same_faces(expected, torch_detector.detect_batch(frames))


def test_detect_batch_of_frames_equals_one_at_a_time(torch_detector):
    frames = _clip_frames(
        "hard_multiface_profiles__face_recognition_short_hamilton_clip.mp4", count=3, every_n=60
    )
    frames.append(np.zeros_like(frames[0]))  # a faceless frame inside the batch
    batched = torch_detector.detect_batch(frames)
    single = [torch_detector.detect_batch([frame])[0] for frame in frames]
    _assert_same_faces(single, batched, tolerance_px=1e-3)
    assert batched[-1] == []


def test_detect_batch_of_a_tensor_resizes_on_the_device(onnx_detector, torch_detector):
    frame = _read_rgb(shared_image(MULTI_FACE_STILL))
    expected = onnx_detector.detect_batch([frame])
    found = torch_detector.detect_batch(torch.from_numpy(frame[None]))
    _assert_same_faces(expected, found)


@pytest.mark.parametrize("size", [(360, 640), (331, 577), (100, 100), (720, 1279)])
def test_area_resize_matches_cv2_inter_area(size):
    rng = np.random.default_rng(1)
    frame = cv2.GaussianBlur(rng.integers(0, 256, (720, 1280, 3), dtype=np.uint8), (5, 5), 0)
    expected = cv2.resize(frame, size[::-1], interpolation=cv2.INTER_AREA).astype(np.float32)
    found = area_resize(torch.from_numpy(frame[None]), *size)[0].numpy()
    assert found.shape == expected.shape
    assert np.abs(found - expected).max() <= 1.0
    assert np.mean(found != expected) < 0.01


def _reference_nms(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> list[int]:
    """Textbook greedy NMS, one box at a time."""
    kept: list[int] = []
    for i in sorted(range(len(scores)), key=lambda j: -scores[j]):
        x0, y0 = np.maximum(boxes[kept, :2], boxes[i, :2]).T
        x1, y1 = np.minimum(boxes[kept, 2:], boxes[i, 2:]).T
        inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
        areas = (boxes[kept, 2] - boxes[kept, 0]) * (boxes[kept, 3] - boxes[kept, 1])
        area = (boxes[i, 2] - boxes[i, 0]) * (boxes[i, 3] - boxes[i, 1])
        if not np.any(inter / (areas + area - inter) > threshold):
            kept.append(i)
    return kept


def _random_boxes(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    centres = rng.uniform(0, 200, (n // 8 + 1, 2))[rng.integers(0, n // 8 + 1, n)]
    centres += rng.normal(0, 6, (n, 2))  # clusters of overlapping boxes, like face anchors
    sides = rng.uniform(10, 60, (n, 2))
    boxes = np.hstack([centres - sides / 2, centres + sides / 2]).astype(np.float32)
    return boxes, (rng.permutation(n) + 1).astype(np.float32) / n  # distinct, > 0


@pytest.mark.parametrize("seed", range(5))
def test_nms_torch_equals_reference_nms(seed):
    rng = np.random.default_rng(seed)
    boxes, scores = _random_boxes(rng, 300)
    for threshold in (0.3, 0.4, 0.7):
        expected = _reference_nms(boxes, scores, threshold)
        found = nms_torch(torch.from_numpy(boxes), torch.from_numpy(scores), threshold)
        assert found.tolist() == expected
        xywh = np.hstack([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]]).tolist()
        chosen = cv2.dnn.NMSBoxes(xywh, scores.tolist(), 0.0, threshold)
        assert sorted(np.asarray(chosen).reshape(-1).tolist()) == sorted(expected)


def test_nms_torch_keeps_groups_apart_and_handles_empty_input(monkeypatch):
    rng = np.random.default_rng(7)
    boxes, scores = _random_boxes(rng, 120)
    groups = rng.integers(0, 3, 120)
    expected = set()
    for g in range(3):
        members = np.flatnonzero(groups == g)
        expected |= set(members[_reference_nms(boxes[members], scores[members], 0.4)].tolist())
    args = (torch.from_numpy(boxes), torch.from_numpy(scores), torch.from_numpy(groups))
    found = nms_torch(args[0], args[1], 0.4, args[2])
    assert set(found.tolist()) == expected
    assert np.all(np.diff(scores[found.numpy()]) <= 0)  # highest score first
    monkeypatch.setattr(detect_torch, "MAX_IOU_ENTRIES", 100)  # the per-group path
    assert nms_torch(args[0], args[1], 0.4, args[2]).tolist() == found.tolist()
    if detect_torch._torchvision_batched_nms is not None:  # where torchvision imports
        assert set(batched_nms(*args, 0.4).tolist()) == expected
    monkeypatch.setattr(detect_torch, "_torchvision_batched_nms", None)  # the fallback
    assert set(batched_nms(*args, 0.4).tolist()) == expected
    empty = nms_torch(torch.zeros((0, 4)), torch.zeros(0), 0.4, torch.zeros(0, dtype=torch.long))
    assert empty.numel() == 0


def test_make_detector_picks_the_backend_for_the_device():
    assert isinstance(make_detector("cpu", threads=1), RetinaFaceDetector)
    torch_backend = make_detector("cpu", threads=0, max_side=320, backend="torch")
    assert isinstance(torch_backend, TorchRetinaFaceDetector) and torch_backend.max_side == 320
    with pytest.raises(ValueError, match="backend"):
        make_detector("cpu", backend="tensorrt")
    with pytest.raises(ValueError, match="device"):
        make_detector("mps")
    with pytest.raises(ValueError, match="CPU only"):
        make_detector("cuda", backend="onnxruntime")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA"):
            make_detector("cuda")


def test_detect_batch_rejects_bad_frames(torch_detector):
    assert torch_detector.detect_batch([]) == []
    with pytest.raises(ValueError, match="uint8"):
        torch_detector.detect_batch([np.zeros((64, 64, 3), np.float32)])
    with pytest.raises(ValueError, match="same size"):
        torch_detector.detect_batch(
            [np.zeros((64, 64, 3), np.uint8), np.zeros((32, 64, 3), np.uint8)]
        )
    with pytest.raises(ValueError, match="tensor"):
        torch_detector.detect_batch(torch.zeros((1, 3, 64, 64), dtype=torch.uint8))

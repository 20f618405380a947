"""dlib's face recognition ResNet as a torch nn.Module, weights read from dlib's own .dat file.

The same 128-D descriptor as `dlib.face_recognition_model_v1.compute_face_descriptor`, but
computed by torch: on this project's 2-core CPU, one thread, about 12 ms of CPU a chip
against the dlib-bin wheel's 85-108 ms (built without BLAS), and on a GPU where one is.

The network (dlib's `dnn_face_recognition_ex` "anet_type", rebuilt from the layers the file
holds, in the order it holds them):
- input: RGB 150 x 150, each channel minus its mean (the file's), divided by 256;
- stem: 7x7 stride-2 conv (32, no padding), affine (dlib's frozen batch norm), ReLU, 3x3
  stride-2 max pool (no padding): 150 -> 72 -> 35 px;
- residual blocks: conv 3x3, affine, ReLU, conv 3x3, affine, plus the input, ReLU. A
  "down" block's first conv has stride 2 and no padding, and its shortcut is a 2x2 stride-2
  average pool of the input. Widths: 3 x 32; 64 (down) + 3 x 64; 128 (down) + 2 x 128;
  256 (down) + 2 x 256; 256 (down);
- where a shortcut and a block differ in size, dlib adds them into the larger of each
  dimension, zero-padded (channels at the end, rows and columns at the bottom and right);
- global average pool, then a 256 -> 128 linear map without bias.

The .dat format is dlib's `serialize`: integers as one control byte (low nibble: how many
little-endian bytes follow; 0x80: negative), strings as a length and bytes, tensors as
version 2, four dims and raw little-endian float32. Each layer's parameters follow its
type name ("con_4", "affine_", "fc_2", "max_pool_2", "avg_pool_2"); the loader checks the
layers' order, every conv's shape, stride and padding and every pool's window against the
architecture, so a different file fails to load instead of misreading.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ops.identity import EMBEDDING_DIM

# (channels, down) of each residual block, input to output
BLOCKS = ((32, False),) * 3 + ((64, True),) + ((64, False),) * 3
BLOCKS += ((128, True),) + ((128, False),) * 2 + ((256, True),) + ((256, False),) * 2
BLOCKS += ((256, True),)
# pools as dlib serializes them: rows, cols, stride y, stride x, padding y, padding x
MAX_POOL, AVG_POOL, GLOBAL_POOL = (3, 3, 2, 2, 0, 0), (2, 2, 2, 2, 0, 0), (0, 0, 1, 1, 0, 0)
_NAME = re.compile(rb"\x01([\x03-\x20])([a-z_][a-z_0-9]+)")


@dataclass
class _Conv:
    weight: np.ndarray  # (out, in, k, k)
    bias: np.ndarray
    stride: int
    padding: int


class _Reader:
    """dlib's serialized integers and tensors, read from an offset."""

    def __init__(self, data: bytes, offset: int) -> None:
        self.data, self.offset = data, offset

    def int(self) -> int:
        control = self.data[self.offset]
        size = control & 0x0F
        value = int.from_bytes(self.data[self.offset + 1 : self.offset + 1 + size], "little")
        self.offset += 1 + size
        return -value if control & 0x80 else value

    def tensor(self) -> np.ndarray:
        version = self.int()
        if version != 2:
            raise ValueError(f"tensor version {version} at byte {self.offset}, expected 2")
        shape = [self.int() for _ in range(4)]
        count = int(np.prod(shape))
        values = np.frombuffer(self.data, "<f4", count, self.offset).astype(np.float32)
        self.offset += 4 * count
        return values


def read_dlib_layers(path: str) -> list[tuple[str, object]]:
    """The file's layers with parameters, input first: (type name, what it holds)."""
    with open(path, "rb") as f:
        data = f.read()
    layers: list[tuple[str, object]] = []
    offset = 0
    while (match := _NAME.search(data, offset)) is not None:
        name = match.group(2).decode()
        if len(name) != match.group(1)[0]:  # bytes that only look like a name
            offset = match.start() + 1
            continue
        read = _Reader(data, match.end())
        try:
            layers.append((name, _read_layer(name, read)))
        except (IndexError, ValueError) as exc:
            raise ValueError(f"{path}: layer {name!r} at byte {match.start()}: {exc}") from exc
        offset = read.offset
    return [(name, item) for name, item in layers if item is not None]


def _read_layer(name: str, read: _Reader) -> object | None:
    """What one layer holds (None: nothing this network needs)."""
    if name == "input_rgb_image_sized":
        means = []
        for _ in range(3):
            mantissa, exponent = read.int(), read.int()
            means.append(mantissa * 2.0**exponent)
        return np.array(means, np.float32)
    if name == "con_4":
        params = read.tensor()
        filters, rows, cols, stride, _, padding, _ = (read.int() for _ in range(7))
        weight = params[: len(params) - filters].reshape(filters, -1, rows, cols)
        if weight.size + filters != len(params) or rows != cols:
            raise ValueError(f"a con_4 layer of {len(params)} values does not fit")
        return _Conv(weight, params[-filters:], stride, padding)
    if name == "affine_":
        params = read.tensor()
        half = len(params) // 2
        return params[:half], params[half:]
    if name == "fc_2":
        outputs, inputs = read.int(), read.int()
        params = read.tensor()
        if len(params) != inputs * outputs:
            raise ValueError(f"fc_2 holds {len(params)} values, not {inputs} x {outputs}")
        return params.reshape(inputs, outputs)
    if name in ("max_pool_2", "avg_pool_2"):
        return tuple(read.int() for _ in range(6))
    return None


class _Block(nn.Module):
    """conv, affine, ReLU, conv, affine, plus the shortcut, ReLU."""

    def __init__(self, c_in: int, c_out: int, down: bool) -> None:
        super().__init__()
        self.down = down
        stride, padding = (2, 0) if down else (1, 1)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, padding)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1)
        self.register_buffer("affine1", torch.zeros(2, c_out))  # gamma, beta
        self.register_buffer("affine2", torch.zeros(2, c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(_affine(self.conv1(x), self.affine1))
        y = _affine(self.conv2(y), self.affine2)
        shortcut = F.avg_pool2d(x, 2, 2) if self.down else x
        return F.relu(_add_padded(y, shortcut))


def _affine(x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
    return x * params[0, None, :, None, None] + params[1, None, :, None, None]


def _add_padded(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a + b in the larger of each dimension, each zero-padded at the end (dlib's add_prev)."""
    if a.shape == b.shape:
        return a + b
    size = [max(p, q) for p, q in zip(a.shape[1:], b.shape[1:], strict=True)]

    def pad(t: torch.Tensor) -> torch.Tensor:
        c, h, w = t.shape[1:]
        return F.pad(t, (0, size[2] - w, 0, size[1] - h, 0, size[0] - c))

    return pad(a) + pad(b)


class DlibFaceNet(nn.Module):
    """dlib's face recognition ResNet: (N, 3, 150, 150) float RGB in 0-255 -> (N, 128).

    Build it with `DlibFaceNet.from_dat(path)`; the module itself starts empty.
    """

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(3))
        self.stem = nn.Conv2d(3, 32, 7, 2, 0)
        self.register_buffer("stem_affine", torch.zeros(2, 32))
        widths = [32] + [c for c, _ in BLOCKS]
        self.blocks = nn.ModuleList(
            _Block(c_in, c_out, down)
            for c_in, (c_out, down) in zip(widths[:-1], BLOCKS, strict=True)
        )
        self.fc = nn.Linear(BLOCKS[-1][0], EMBEDDING_DIM, bias=False)

    def forward(self, chips: torch.Tensor) -> torch.Tensor:
        x = (chips - self.mean[None, :, None, None]) / 256.0
        x = F.relu(_affine(self.stem(x), self.stem_affine))
        x = F.max_pool2d(x, 3, 2)
        for block in self.blocks:
            x = block(x)
        return self.fc(x.mean((2, 3)))

    @classmethod
    @torch.no_grad()
    def from_dat(cls, path: str) -> DlibFaceNet:
        """The network with the weights of dlib's `dlib_face_recognition_resnet_model_v1.dat`.

        Raises ValueError naming the file when its layers are not this network's.
        """
        layers = read_dlib_layers(path)
        kinds = [name for name, _ in layers]
        expected = ["input_rgb_image_sized", "con_4", "affine_", "max_pool_2"]
        for _, down in BLOCKS:
            expected += ["con_4", "affine_", "con_4", "affine_"] + (["avg_pool_2"] if down else [])
        expected += ["avg_pool_2", "fc_2"]
        if kinds != expected:
            raise ValueError(f"{path}: not dlib's face recognition ResNet (layers {kinds[:6]}...)")
        pools = [item for name, item in layers if name.endswith("pool_2")]
        expected_pools = [MAX_POOL] + [AVG_POOL] * sum(down for _, down in BLOCKS) + [GLOBAL_POOL]
        if pools != expected_pools:
            raise ValueError(f"{path}: pools {pools} where this network has {expected_pools}")
        net = cls()
        values = iter(item for name, item in layers if name in ("con_4", "affine_"))
        convs = [(net.stem, net.stem_affine)]
        for block in net.blocks:
            convs += [(block.conv1, block.affine1), (block.conv2, block.affine2)]
        for conv, affine in convs:
            found, (gamma, beta) = next(values), next(values)
            if found.weight.shape != tuple(conv.weight.shape) or found.stride != conv.stride[0]:
                raise ValueError(f"{path}: a conv of {found.weight.shape} where {conv} belongs")
            if found.padding != conv.padding[0]:
                raise ValueError(f"{path}: padding {found.padding} where {conv} belongs")
            conv.weight.copy_(torch.from_numpy(found.weight))
            conv.bias.copy_(torch.from_numpy(found.bias))
            affine.copy_(torch.from_numpy(np.stack([gamma, beta])))
        net.mean.copy_(torch.from_numpy(layers[0][1]))
        net.fc.weight.copy_(torch.from_numpy(layers[-1][1].T))
        return net.eval()

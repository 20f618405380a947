"""Layers the model families share: stride-2 downscale, pixel-shuffle upscale, residual block.

All take and return (B, C, H, W) float tensors; none of them has state beyond its weights.
"""

from __future__ import annotations

import torch
from torch import nn


def leaky(slope: float = 0.1) -> nn.Module:
    """The activation of every layer here: LeakyReLU(slope), in place."""
    return nn.LeakyReLU(slope, inplace=True)


class Upscale(nn.Module):
    """3x3 conv to 4x the channels, then pixel shuffle: (B, C_in, H, W) -> (B, C_out, 2H, 2W)."""

    def __init__(self, channels_in: int, channels_out: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels_in, channels_out * 4, 3, padding=1)
        self.act = leaky()
        self.shuffle = nn.PixelShuffle(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shuffle(self.act(self.conv(x)))


class Downscale(nn.Module):
    """5x5 conv with stride 2: (B, C_in, H, W) -> (B, C_out, H/2, W/2)."""

    def __init__(self, channels_in: int, channels_out: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels_in, channels_out, 5, stride=2, padding=2)
        self.act = leaky()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv(x))


class ResidualBlock(nn.Module):
    """Two 3x3 convs added back onto the input: (B, C, H, W) -> (B, C, H, W).

    The sum goes through the activation, so a block can both refine and gate its input;
    the slope 0.2 keeps more of the negative side than the 0.1 of the up/downscales.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.act = leaky(0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = self.conv2(self.act(self.conv1(x)))
        return self.act(x + residual)

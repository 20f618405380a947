"""The swap model: one shared encoder, one decoder per identity.

How the method works. An autoencoder squeezes an image through a small latent vector
(encoder) and expands it back (decoder); trained only to reproduce its input, it needs no
labels. The latent is too small to hold every pixel, so it keeps what changes from frame
to frame (head pose, gaze, eyes open or shut, expression, lighting) and leaves what never
changes for a person (eye colour, nose shape, skin) to the decoder's weights.

rayswap trains two such autoencoders at once, on faces of A and on faces of B, with ONE
shared encoder and two decoders, `decoder_a` and `decoder_b`. Because the encoder must
serve both people, it learns a common description of pose and expression; each decoder
learns to draw its own person from that description. To swap, encode a face of A and
decode it with B's decoder: the result is B's face with A's pose and expression
(`swap(x_a, to="b")`). Each decoder also predicts a mask of the face region, which render
uses (intersected with the template oval) to blend the new face into the frame.

The layout follows the "original" faceswap model: stride-2 5x5 convolutions down to a
4x4 map, a dense bottleneck to `latent_dim`, a dense layer back to a 4x4 map and one
pixel-shuffle upscale inside the encoder, then pixel-shuffle upscales in each decoder.

Images are (B, 3, R, R) float32 RGB in [0, 1]; masks are (B, 1, R, R) float32 in [0, 1].
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

RESOLUTIONS = (64, 128, 256)  # crop sides in px the model can be built for
# a2b: faces of A decoded by B's decoder (A's pose and expression, B's face); b2a the reverse
DIRECTIONS = ("a2b", "b2a")
BOTTLENECK_PX = 4  # side of the map at the bottleneck, as in the original model
ARCHITECTURE = "swap-autoencoder-v1"


def _default_widths(resolution: int, width: int, max_width: int) -> tuple[int, ...]:
    depth = int(math.log2(resolution // BOTTLENECK_PX))  # 64 px -> 4 stride-2 convs
    return tuple(min(width * 2**i, max_width) for i in range(depth))


@dataclass(frozen=True)
class ModelConfig:
    """Shape of a `SwapAutoencoder`; saved in every checkpoint's config.json.

    encoder_widths: channels of each stride-2 conv, len = log2(resolution / 4).
    decoder_widths: input channels of each decoder upscale (the first is also what the
    encoder's own upscale outputs), len = len(encoder_widths) - 1. Empty tuples pick
    defaults from `width`: encoder width * 2**i (capped at 512), decoder the reverse.
    """

    resolution: int = 64
    width: int = 32
    latent_dim: int = 256
    encoder_widths: tuple[int, ...] = field(default=())
    decoder_widths: tuple[int, ...] = field(default=())
    architecture: str = ARCHITECTURE

    def __post_init__(self) -> None:
        if self.resolution not in RESOLUTIONS:
            raise ValueError(f"resolution must be one of {RESOLUTIONS}, got {self.resolution}")
        if self.width < 4 or self.latent_dim < 8:
            raise ValueError(
                f"width must be >= 4 and latent_dim >= 8, got {self.width}, {self.latent_dim}"
            )
        if self.architecture != ARCHITECTURE:
            raise ValueError(f"unknown architecture {self.architecture!r}, expected {ARCHITECTURE}")
        depth = int(math.log2(self.resolution // BOTTLENECK_PX))
        encoder = tuple(self.encoder_widths) or _default_widths(self.resolution, self.width, 512)
        decoder = tuple(self.decoder_widths) or tuple(reversed(encoder[:-1]))
        if len(encoder) != depth or len(decoder) != depth - 1:
            raise ValueError(
                f"at {self.resolution} px the encoder needs {depth} widths and the decoder "
                f"{depth - 1}, got {len(encoder)} and {len(decoder)}"
            )
        object.__setattr__(self, "encoder_widths", tuple(int(w) for w in encoder))
        object.__setattr__(self, "decoder_widths", tuple(int(w) for w in decoder))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (tuples become lists)."""
        found = asdict(self)
        found["encoder_widths"] = list(self.encoder_widths)
        found["decoder_widths"] = list(self.decoder_widths)
        return found

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ModelConfig:
        """Inverse of `to_dict`; unknown keys raise ValueError (another architecture)."""
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"model config has unknown keys {unknown} (another architecture?)")
        fields = dict(values)
        for key in ("encoder_widths", "decoder_widths"):
            if key in fields:
                fields[key] = tuple(fields[key])
        return cls(**fields)


def _act() -> nn.Module:
    return nn.LeakyReLU(0.1, inplace=True)


class Upscale(nn.Module):
    """3x3 conv to 4x the channels, then pixel shuffle: (B, C_in, H, W) -> (B, C_out, 2H, 2W)."""

    def __init__(self, channels_in: int, channels_out: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels_in, channels_out * 4, 3, padding=1)
        self.act = _act()
        self.shuffle = nn.PixelShuffle(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shuffle(self.act(self.conv(x)))


class Encoder(nn.Module):
    """(B, 3, R, R) in [0, 1] -> (B, C, 8, 8): convs down to 4x4, dense bottleneck, one upscale."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for width in cfg.encoder_widths:
            layers += [nn.Conv2d(channels, width, 5, stride=2, padding=2), _act()]
            channels = width
        self.convs = nn.Sequential(*layers)
        self.bottleneck_channels = channels
        flat = channels * BOTTLENECK_PX * BOTTLENECK_PX
        self.to_latent = nn.Linear(flat, cfg.latent_dim)
        self.from_latent = nn.Linear(cfg.latent_dim, flat)
        self.upscale = Upscale(channels, cfg.decoder_widths[0] if cfg.decoder_widths else channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.convs(x * 2.0 - 1.0)  # (B, C, 4, 4)
        latent = self.to_latent(features.flatten(1))  # (B, latent_dim)
        grid = self.from_latent(latent).view(
            -1, self.bottleneck_channels, BOTTLENECK_PX, BOTTLENECK_PX
        )
        return self.upscale(grid)  # (B, decoder_widths[0], 8, 8)


class Decoder(nn.Module):
    """(B, C, 8, 8) -> RGB (B, 3, R, R) and mask (B, 1, R, R), both sigmoid in [0, 1]."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        widths = cfg.decoder_widths
        self.upscales = nn.Sequential(
            *(
                Upscale(c_in, c_out)
                for c_in, c_out in zip(widths, widths[1:] + (widths[-1],), strict=True)
            )
        )
        self.to_rgb = nn.Conv2d(widths[-1], 3, 5, padding=2)
        self.to_mask = nn.Conv2d(widths[-1], 1, 5, padding=2)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.upscales(features)  # (B, widths[-1], R, R)
        return torch.sigmoid(self.to_rgb(x)), torch.sigmoid(self.to_mask(x))


class SwapAutoencoder(nn.Module):
    """Shared `encoder`, `decoder_a`, `decoder_b`; see the module docstring for the method."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.config = cfg
        self.encoder = Encoder(cfg)
        self.decoder_a = Decoder(cfg)
        self.decoder_b = Decoder(cfg)

    def forward(
        self, x_a: torch.Tensor, x_b: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Reconstruct both sides in one call (so DDP syncs every parameter).

        (B, 3, R, R), (B, 3, R, R) -> (rgb_a, mask_a, rgb_b, mask_b): A through decoder_a
        and B through decoder_b.
        """
        rgb_a, mask_a = self.decoder_a(self.encoder(x_a))
        rgb_b, mask_b = self.decoder_b(self.encoder(x_b))
        return rgb_a, mask_a, rgb_b, mask_b

    def swap(self, x: torch.Tensor, to: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode (B, 3, R, R) faces and decode as identity `to` ("a" or "b") -> (rgb, mask)."""
        if to not in ("a", "b"):
            raise ValueError(f"to must be 'a' or 'b', got {to!r}")
        decoder = self.decoder_a if to == "a" else self.decoder_b
        return decoder(self.encoder(x))


def swap_target(direction: str) -> str:
    """The identity a swap `direction` decodes as: "b" for a2b, "a" for b2a.

    `SwapAutoencoder.swap(x, to=swap_target(direction))` is that direction's swap.
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    return "b" if direction == "a2b" else "a"

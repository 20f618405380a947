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

Model families (`ModelConfig.model`, `rayswap train --model`):
- `original` follows the "original" faceswap model: stride-2 5x5 convolutions down to a
  4x4 map, a dense bottleneck to `latent_dim`, a dense layer back to a 4x4 map and one
  pixel-shuffle upscale inside the encoder, then pixel-shuffle upscales in each decoder;
  the mask is a fourth output of the RGB decoder. Sized by `width` (or the explicit
  `encoder_widths` / `decoder_widths`).
- `df` and `liae` are the DeepFaceLab-class layouts of `ops.model_dfl`: residual blocks,
  a separate lighter mask decoder, sized by `encoder_dims`, `decoder_dims`, `mask_dims`
  and `latent_dim`; `liae` shares one decoder between A and B and tells them apart by
  their code (see `ops.model_dfl` for how its swap is formed).
Every family has the same interface: `forward(x_a, x_b)` reconstructs both sides and
`swap(x, to)` decodes faces as identity `to`, so render, export and preview never ask which.

Images are (B, 3, R, R) float32 RGB in [0, 1]; masks are (B, 1, R, R) float32 in [0, 1].
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from ops.model_dfl import df_parts, liae_code, liae_parts
from ops.model_layers import Upscale, leaky

RESOLUTIONS = (64, 128, 256)  # crop sides in px the model can be built for
# a2b: faces of A decoded by B's decoder (A's pose and expression, B's face); b2a the reverse
DIRECTIONS = ("a2b", "b2a")
MODELS = ("original", "df", "liae")  # model families, see the module docstring
LEGACY_MODEL = "original"  # what a checkpoint config without a "model" key holds
BOTTLENECK_PX = 4  # side of the map at the bottleneck, as in the original model
ARCHITECTURE = "swap-autoencoder-v1"
DEFAULT_WIDTH = 32
# df/liae sizes that train at 64 px on a 2-core CPU in under a second per step of batch 16
DFL_DIMS = {"encoder_dims": 32, "decoder_dims": 16, "mask_dims": 8}
# latent_dim of each family when it is 0; liae's bottlenecks are 2x wider, so it halves
LATENT_DIMS = {"original": 256, "df": 256, "liae": 128}
ORIGINAL_ONLY = ("width", "encoder_widths", "decoder_widths")
DFL_ONLY = tuple(DFL_DIMS)


def _default_widths(resolution: int, width: int, max_width: int) -> tuple[int, ...]:
    depth = int(math.log2(resolution // BOTTLENECK_PX))  # 64 px -> 4 stride-2 convs
    return tuple(min(width * 2**i, max_width) for i in range(depth))


@dataclass(frozen=True)
class ModelConfig:
    """Shape of a `SwapAutoencoder`; saved in every checkpoint's config.json.

    model: the family, one of `MODELS`. latent_dim: the dense bottleneck of every family
    (0 picks the family's `LATENT_DIMS`).
    original only:
      encoder_widths: channels of each stride-2 conv, len = log2(resolution / 4).
      decoder_widths: input channels of each decoder upscale (the first is also what the
      encoder's own upscale outputs), len = len(encoder_widths) - 1. Empty tuples pick
      defaults from `width`: encoder width * 2**i (capped at 512), decoder the reverse.
    df / liae only (0 picks `DFL_DIMS`): encoder_dims, decoder_dims, mask_dims, the
      channel units of the encoder, the RGB decoder and the mask decoder (`ops.model_dfl`).
    A field of the other family must keep its default; `to_dict` leaves such fields out.
    """

    resolution: int = 64
    width: int = DEFAULT_WIDTH
    latent_dim: int = 0
    encoder_widths: tuple[int, ...] = field(default=())
    decoder_widths: tuple[int, ...] = field(default=())
    architecture: str = ARCHITECTURE
    model: str = LEGACY_MODEL
    encoder_dims: int = 0
    decoder_dims: int = 0
    mask_dims: int = 0

    def __post_init__(self) -> None:
        if self.resolution not in RESOLUTIONS:
            raise ValueError(f"resolution must be one of {RESOLUTIONS}, got {self.resolution}")
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {MODELS}, got {self.model!r}")
        object.__setattr__(self, "latent_dim", int(self.latent_dim or LATENT_DIMS[self.model]))
        if self.width < 4 or self.latent_dim < 8:
            raise ValueError(
                f"width must be >= 4 and latent_dim >= 8, got {self.width}, {self.latent_dim}"
            )
        if self.architecture != ARCHITECTURE:
            raise ValueError(f"unknown architecture {self.architecture!r}, expected {ARCHITECTURE}")
        if self.model == "original":
            self._resolve_original()
        else:
            self._resolve_dfl()

    def _resolve_original(self) -> None:
        given = [name for name in DFL_ONLY if getattr(self, name)]
        if given:
            raise ValueError(f"{', '.join(given)} size the df and liae models, not 'original'")
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

    def _resolve_dfl(self) -> None:
        if self.width != DEFAULT_WIDTH or self.encoder_widths or self.decoder_widths:
            raise ValueError(
                f"width, encoder_widths and decoder_widths size the 'original' model; "
                f"size {self.model!r} with {', '.join(DFL_ONLY)}"
            )
        for name, default in DFL_DIMS.items():
            value = int(getattr(self, name) or default)
            if value < 2:
                raise ValueError(f"{name} must be >= 2, got {value}")
            object.__setattr__(self, name, value)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (tuples become lists) of the fields this family uses."""
        found = asdict(self)
        found["encoder_widths"] = list(self.encoder_widths)
        found["decoder_widths"] = list(self.decoder_widths)
        unused = DFL_ONLY if self.model == "original" else ORIGINAL_ONLY
        return {key: value for key, value in found.items() if key not in unused}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ModelConfig:
        """Inverse of `to_dict`; unknown keys raise ValueError (another architecture).

        A dict without "model" (checkpoints written before the families) is `original`.
        """
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"model config has unknown keys {unknown} (another architecture?)")
        fields = {"model": LEGACY_MODEL, **values}
        for key in ("encoder_widths", "decoder_widths"):
            if key in fields:
                fields[key] = tuple(fields[key])
        return cls(**fields)


class Encoder(nn.Module):
    """(B, 3, R, R) in [0, 1] -> (B, C, 8, 8): convs down to 4x4, dense bottleneck, one upscale."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for width in cfg.encoder_widths:
            layers += [nn.Conv2d(channels, width, 5, stride=2, padding=2), leaky()]
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
        # the RGB and mask heads run as one 4-channel convolution: a conv with 1 or 3 output
        # channels is slow on CPU (forward and backward), and the weights stay two modules,
        # so checkpoints keep their keys
        weight = torch.cat([self.to_rgb.weight, self.to_mask.weight])
        bias = torch.cat([self.to_rgb.bias, self.to_mask.bias])
        out = torch.sigmoid(F.conv2d(x, weight, bias, padding=self.to_rgb.padding))
        return out[:, :3], out[:, 3:]


def _original_parts(cfg: ModelConfig) -> dict[str, nn.Module]:
    return {"encoder": Encoder(cfg), "decoder_a": Decoder(cfg), "decoder_b": Decoder(cfg)}


class SwapAutoencoder(nn.Module):
    """The model of family `cfg.model`; see the module docstring for the method.

    Its parts (and so its state-dict keys): original: encoder, decoder_a, decoder_b;
    df: encoder, inter, decoder_a, decoder_b; liae: encoder, inter_ab, inter_b, decoder.
    """

    encoder: nn.Module
    decoder_a: nn.Module  # original, df
    decoder_b: nn.Module  # original, df
    inter: nn.Module  # df: the shared bottleneck
    inter_ab: nn.Module  # liae: the bottleneck of both identities
    inter_b: nn.Module  # liae: the bottleneck of B only
    decoder: nn.Module  # liae: the one decoder

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.config = cfg
        build = {"original": _original_parts, "df": df_parts, "liae": liae_parts}[cfg.model]
        for name, part in build(cfg).items():  # registration order = parameter order
            self.add_module(name, part)

    def code(self, x: torch.Tensor, side: str) -> torch.Tensor:
        """What `side`'s decoder reads for faces x (B, 3, R, R): (B, C, R', R') features."""
        if self.config.model == "original":
            return self.encoder(x)  # (B, decoder_widths[0], 8, 8)
        if self.config.model == "df":
            return self.inter(self.encoder(x))  # (B, latent_dim, R/8, R/8)
        inter_b = self.inter_b if side == "b" else None  # B's own code joins only B's path
        return liae_code(self.inter_ab, inter_b, self.encoder(x))

    def decode(self, code: torch.Tensor, side: str) -> tuple[torch.Tensor, torch.Tensor]:
        """`side`'s decoder on `code` -> rgb (B, 3, R, R), mask (B, 1, R, R)."""
        if self.config.model == "liae":
            return self.decoder(code)
        return (self.decoder_a if side == "a" else self.decoder_b)(code)

    def forward(
        self, x_a: torch.Tensor, x_b: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Reconstruct both sides in one call (so DDP syncs every parameter).

        (B, 3, R, R), (B, 3, R, R) -> (rgb_a, mask_a, rgb_b, mask_b): A through A's code
        path and decoder, B through B's.
        """
        rgb_a, mask_a = self.decode(self.code(x_a, "a"), "a")
        rgb_b, mask_b = self.decode(self.code(x_b, "b"), "b")
        return rgb_a, mask_a, rgb_b, mask_b

    def swap(self, x: torch.Tensor, to: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode (B, 3, R, R) faces and decode as identity `to` ("a" or "b") -> (rgb, mask)."""
        if to not in ("a", "b"):
            raise ValueError(f"to must be 'a' or 'b', got {to!r}")
        return self.decode(self.code(x, to), to)


def swap_target(direction: str) -> str:
    """The identity a swap `direction` decodes as: "b" for a2b, "a" for b2a.

    `SwapAutoencoder.swap(x, to=swap_target(direction))` is that direction's swap.
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    return "b" if direction == "a2b" else "a"

"""The DeepFaceLab-class model families `df` and `liae`, built from their published layout.

Both share one encoder design: four stride-2 downscales with e, 2e, 4e and 8e channels
(e = `encoder_dims`), a residual block after each of the last three, flattened at R/16.
Both decode the same way: three upscales from R/8 to R with 8d, 4d and 2d channels
(d = `decoder_dims`), a residual block after each, and a 1x1 conv to RGB. The mask has a
decoder of its own, lighter (8m, 4m, 2m channels, m = `mask_dims`, no residual blocks),
so the RGB decoder spends all its channels on the face.

df: the encoder, then a shared bottleneck `inter` (dense to `latent_dim`, dense back to a
(R/16)^2 map of `latent_dim` channels, one upscale to R/8), then one decoder per identity,
`decoder_a` and `decoder_b`. The swap is the original method's: a2b is
decoder_b(inter(encoder(x_a))).

liae: the encoder, then two bottlenecks of the same shape (2 * `latent_dim` channels
each): `inter_ab`, trained on the faces of both identities, and `inter_b`, trained on B's
faces only; then ONE `decoder` for both identities. With z = encoder(x), the decoder reads
the concatenation of two codes along the channels, (B, 4 * latent_dim, R/8, R/8):

    A's code path:  cat(inter_ab(z), inter_ab(z))
    B's code path:  cat(inter_ab(z), inter_b(z))

As in every family, `swap(x, to)` runs faces x through the code path of `to`:

    a2b = decoder(cat(inter_ab(encoder(x_a)), inter_b(encoder(x_a))))
    b2a = decoder(cat(inter_ab(encoder(x_b)), inter_ab(encoder(x_b))))

Why a2b gives B's face with A's expression: the first half of every code comes from
inter_ab, one function trained on both people, so it describes pose, expression and light
in a space common to both. What decides whose face the decoder draws is the second half:
inter_ab's output there has only ever come with A's faces, inter_b's only with B's. inter_b
has only seen B, so it maps any encoding into the region of codes the decoder learned to
draw as B, while A's pose and expression arrive through the shared first half.
DeepFaceLab gives the private bottleneck to the person of the video and renders that
person's faces through the other identity's shared-only code, cat(inter_ab, inter_ab):
here that is b2a. a2b is the mirror of it, by the same rule; to render the DeepFaceLab way,
name the person of the video b and render b2a.

Images are (B, 3, R, R) float32 RGB in [0, 1]; masks (B, 1, R, R) float32 in [0, 1].
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from ops.model_layers import Downscale, ResidualBlock, Upscale

if TYPE_CHECKING:
    from ops.model import ModelConfig

DOWNSCALES = 4  # the encoder stops at R/16, as DeepFaceLab's does
WIDTH_STEPS = (1, 2, 4, 8)  # encoder channels per downscale, in units of encoder_dims
DECODER_STEPS = (8, 4, 2)  # decoder channels per upscale, in units of decoder_dims / mask_dims


class ResidualEncoder(nn.Module):
    """(B, 3, R, R) in [0, 1] -> (B, 8e * (R/16)^2): downscales, residual blocks, flattened."""

    def __init__(self, encoder_dims: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for index, step in enumerate(WIDTH_STEPS):
            layers.append(Downscale(channels, encoder_dims * step))
            channels = encoder_dims * step
            if index > 0:  # at R/4, R/8, R/16; the first map is wide and shallow
                layers.append(ResidualBlock(channels))
        self.convs = nn.Sequential(*layers)
        self.channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.convs(x * 2.0 - 1.0).flatten(1)  # (B, 8e * (R/16)^2)


class Bottleneck(nn.Module):
    """(B, F) -> (B, C, 2s, 2s): dense to latent_dim, dense to a (B, C, s, s) map, one upscale."""

    def __init__(self, features: int, latent_dim: int, channels: int, side: int) -> None:
        super().__init__()
        self.channels, self.side = channels, side
        self.to_latent = nn.Linear(features, latent_dim)
        self.from_latent = nn.Linear(latent_dim, channels * side * side)
        self.upscale = Upscale(channels, channels)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        latent = self.to_latent(features)  # (B, latent_dim)
        grid = self.from_latent(latent).view(-1, self.channels, self.side, self.side)
        return self.upscale(grid)  # (B, C, R/8, R/8)


class ResidualDecoder(nn.Module):
    """(B, C, R/8, R/8) -> rgb (B, 3, R, R) and mask (B, 1, R, R), both sigmoid in [0, 1]."""

    def __init__(self, channels_in: int, decoder_dims: int, mask_dims: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = channels_in
        for step in DECODER_STEPS:
            layers += [Upscale(channels, decoder_dims * step), ResidualBlock(decoder_dims * step)]
            channels = decoder_dims * step
        self.rgb = nn.Sequential(*layers)
        self.to_rgb = nn.Conv2d(channels, 3, 1)
        mask_layers: list[nn.Module] = []
        channels = channels_in
        for step in DECODER_STEPS:  # no residual blocks: a mask needs far less capacity
            mask_layers.append(Upscale(channels, mask_dims * step))
            channels = mask_dims * step
        self.mask = nn.Sequential(*mask_layers)
        self.to_mask = nn.Conv2d(channels, 1, 1)

    def forward(self, code: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        rgb = torch.sigmoid(self.to_rgb(self.rgb(code)))  # (B, 3, R, R)
        return rgb, torch.sigmoid(self.to_mask(self.mask(code)))  # (B, 1, R, R)


def df_parts(cfg: ModelConfig) -> dict[str, nn.Module]:
    """encoder, inter, decoder_a, decoder_b of a `df` model, in registration order."""
    side = cfg.resolution // 2**DOWNSCALES
    encoder = ResidualEncoder(cfg.encoder_dims)
    inter = Bottleneck(encoder.channels * side * side, cfg.latent_dim, cfg.latent_dim, side)
    return {
        "encoder": encoder,
        "inter": inter,
        "decoder_a": ResidualDecoder(cfg.latent_dim, cfg.decoder_dims, cfg.mask_dims),
        "decoder_b": ResidualDecoder(cfg.latent_dim, cfg.decoder_dims, cfg.mask_dims),
    }


def liae_parts(cfg: ModelConfig) -> dict[str, nn.Module]:
    """encoder, inter_ab, inter_b, decoder of a `liae` model, in registration order."""
    side = cfg.resolution // 2**DOWNSCALES
    encoder = ResidualEncoder(cfg.encoder_dims)
    features, channels = encoder.channels * side * side, 2 * cfg.latent_dim
    return {
        "encoder": encoder,
        "inter_ab": Bottleneck(features, cfg.latent_dim, channels, side),
        "inter_b": Bottleneck(features, cfg.latent_dim, channels, side),
        "decoder": ResidualDecoder(2 * channels, cfg.decoder_dims, cfg.mask_dims),
    }


def liae_code(
    inter_ab: nn.Module, inter_b: nn.Module | None, features: torch.Tensor
) -> torch.Tensor:
    """The decoder input of encoded faces (B, F), (B, 4 * latent_dim, R/8, R/8).

    B's code path (give `inter_b`): cat(inter_ab(z), inter_b(z)); A's (None):
    cat(inter_ab(z), inter_ab(z)).
    """
    shared = inter_ab(features)  # (B, 2 * latent_dim, R/8, R/8)
    return torch.cat([shared, inter_b(features) if inter_b is not None else shared], 1)

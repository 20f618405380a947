"""Settings of `rayswap train` and `rayswap export`: each field is one flag."""

from __future__ import annotations

from dataclasses import dataclass

from pipelines.config import common
from pipelines.config.flags import (
    REQUIRED,
    above,
    at_least,
    check_fields,
    given,
    one_of,
    one_of_lazy,
    option,
    require,
    within,
)

EXPORT_FORMATS = ("torchscript", "onnx")  # what pipelines/export.py writes
# The defaults are the recipe the quality benchmark ranked best (docs/benchmarks.md):
DEFAULT_MODEL = "original"  # the model family `rayswap train` builds without --model
DEFAULT_COVERAGE = 1.1  # the model's crop without --coverage (the faces' own if narrower)
DEFAULT_WIDTH = 32  # --width, which sizes only the original model
DFL_SIZE_FIELDS = ("encoder_dims", "decoder_dims", "mask_dims")  # size only df and liae


@dataclass(frozen=True)
class TrainConfig:
    """Settings of `rayswap train`; passed to every Ray Train worker as a dict."""

    a: str = common.faces_of(
        "a", "Faces of identity a: a folder or URI of faces Parquet (OUT/faces/a of extract)."
    )
    b: str = common.faces_of("b", "Faces of identity b, as --a.")
    out: str = common.out(
        "Run folder or URI: checkpoints, metrics.jsonl, preview.png. Rerun to resume."
    )
    workers: int = option(1, "Ray Train workers (DDP ranks).", at_least(1))
    gpu: bool = option(
        False,
        "One GPU per worker: NCCL, bf16 autocast of the forward pass (losses in float32), "
        "fused Adam. Without it: gloo and float32 on CPU.",
    )
    precision: str = option(
        "auto",
        "auto: bf16 autocast of the forward pass with --gpu, float32 without; bf16 or fp32 to "
        "choose (bf16 also runs on CPU, slower).",
        one_of_lazy("ops.train_step", "PRECISION_CHOICES"),
    )
    compile: bool = option(
        False,
        "torch.compile the model (slower start, faster steps on GPU); checkpoints are the "
        "same plain state dicts either way.",
        decls=("--compile",),
    )
    resolution: int = option(
        64, "Model input side in px: 64, 128 or 256.", one_of_lazy("ops.model", "RESOLUTIONS")
    )
    coverage: float | None = option(
        None,
        "Face crop the model sees, as extract's --coverage (smaller: the face fills more of "
        "the model's pixels): a centre region of the extracted crops, at most their "
        f"coverage. Render aligns new faces the same way. Default: {DEFAULT_COVERAGE}, or the "
        "faces' own when that is narrower.",
        (lambda v: v is None or 0.5 <= v <= 4.0, "must be in [0.5, 4]"),
        show_default=False,
    )
    model: str = option(
        DEFAULT_MODEL,
        "Model family. original: the classic faceswap autoencoder (sized by --width). df: "
        "DeepFaceLab-class, a residual encoder and shared bottleneck, one residual decoder "
        "and one lighter mask decoder per identity. liae: a bottleneck of both identities "
        "and one of b only feeding ONE decoder (a2b reads both, b2a the shared one twice). "
        "df and liae are sized by --encoder-dims, --decoder-dims and --mask-dims.",
        one_of_lazy("ops.model", "MODELS"),
    )
    width: int = option(DEFAULT_WIDTH, "original: channels of the first encoder conv.", at_least(4))
    latent_dim: int | None = option(
        None,
        "Size of the dense bottleneck. Default: 256; 128 for liae, whose two bottlenecks "
        "feed twice the channels.",
        at_least(8),
        show_default=False,
    )
    encoder_dims: int | None = option(
        None,
        "df/liae: channels of the first of the 4 encoder downscales, doubled at each. Default 32.",
        at_least(2),
        show_default=False,
    )
    decoder_dims: int | None = option(
        None,
        "df/liae: decoder channels per unit, 8x, 4x and 2x at its three upscales. Default 16.",
        at_least(2),
        show_default=False,
    )
    mask_dims: int | None = option(
        None,
        "df/liae: as --decoder-dims, for the mask decoder. Default 8.",
        at_least(2),
        show_default=False,
    )
    batch_size: int = option(16, "Faces per identity per worker per step.", at_least(1))
    steps: int = option(1000, "Total optimisation steps (a rerun goes on).", at_least(1))
    max_train_s: float | None = option(
        None,
        "Stop after this many seconds of training in this run (at the next --log-every "
        "step, with a checkpoint there), even before --steps. The phases still follow "
        "--steps. Default: no limit.",
        (lambda v: v is None or v > 0, "must be > 0"),
        show_default=False,
    )
    lr: float = option(
        6e-4,
        "Adam learning rate (the peak, with --warmup-steps / --lr-decay); the quality "
        "benchmark's best from scratch and from a pretrain (docs/benchmarks.md).",
        (lambda v: 0 < v < 1, "must be in (0, 1)"),
    )
    warmup_steps: int = option(
        0,
        "Raise the learning rate linearly from --lr / N to --lr over the first N steps; "
        "0: no warm-up.",
        at_least(0),
    )
    lr_decay: str = option(
        "constant",
        "After the warm-up: constant, or a cosine or linear decay to --lr-floor x --lr at "
        "--steps. With --warmup-steps 0 and constant the rate never changes.",
        one_of_lazy("ops.recipe", "LR_DECAYS"),
    )
    lr_floor: float = option(
        0.1, "Fraction of --lr that a cosine or linear --lr-decay ends at.", within(0, 1)
    )
    warp_off_share: float = option(
        0.2,
        "Train the last share of --steps without the random warp (e.g. 0.2: the last 20%), "
        "which sharpens detail; 0: warp throughout. The phase follows the step, so a "
        "resumed run keeps it.",
        (lambda v: 0 <= v < 1, "must be in [0, 1)"),
    )
    loss: str = option(
        "dfl",
        "classic: DSSIM (11 px window) + L1, weighted to the face, eyes and mouth, + L1 of "
        "the mask. dfl: DSSIM at two windows (resolution / 11.6 and / 23.2 px) + MSE in the "
        "face, + L1 on the eyes and mouth (weight 30), + MSE of the mask. Both in float32.",
        one_of_lazy("ops.losses", "LOSSES"),
    )
    eye_mouth_weight: float = option(
        30.0,
        "Weight of the dfl loss's L1 on the eyes and mouth (DeepFaceLab's 300 against its "
        "10 x DSSIM, scaled to this loss's 1 x DSSIM). Higher draws the features sharper at "
        "some cost to the rest of the face; the classic loss has its own.",
        at_least(0),
    )
    ema_decay: float = option(
        0.999,
        "Keep a moving average of the weights with this decay (e.g. 0.999), saved in each "
        "checkpoint as ema.pt and used by the preview, render and export; 0: none.",
        (lambda v: 0 <= v < 1, "must be in [0, 1)"),
    )
    save_every: int = option(
        250, "Checkpoint (and report to Ray Train) every this many steps.", at_least(1)
    )
    log_every: int = option(10, "Write a metrics line every N steps.", at_least(1))
    cpus_per_worker: float = common.cpus_per_worker("CPUs each worker reserves.")
    device_cache_gb: float | None = option(
        None,
        "Hold each worker's faces on its device when they fit in this many GiB (batches are "
        "then drawn there); beyond it they stream through Ray Data. Default: a quarter of the "
        "GPU's memory (CPU: of RAM, up to 4 GiB); 0 always streams.",
        (lambda v: v >= 0, "must be >= 0 (0 streams every batch)"),
        show_default=False,
    )
    data_timeout_s: float = option(
        600.0, "Fail a worker that gets no batch of faces for this long.", above(0)
    )
    preview_faces: int = option(
        4, "Held-back faces per identity shown in the preview grid.", within(1, 16)
    )
    keep_checkpoints: int = option(3, "Checkpoints kept (the latest ones).", at_least(1))
    max_failures: int = option(
        3,
        "Worker-group restarts from the last checkpoint (-1: no limit).",
        (lambda v: v >= -1, "must be >= 0, or -1 (no limit)"),
    )
    seed: int = option(0, "Seed of the initial weights and augmentation.")
    init: str | None = option(
        None,
        "Start from this checkpoint's weights (a `rayswap pretrain` run, or another pair's "
        "run or checkpoint) instead of random ones. original: every part is copied; df: "
        "all but the bottleneck (inter), which starts afresh; liae: all but inter_ab and "
        "inter_b. It must hold the same --model, sizes and --resolution. Used only when "
        "--out has no checkpoint yet (a rerun resumes).",
        path=True,
        show_default=False,
    )
    holdout_videos: int | None = option(
        None,
        "Whole videos of each identity held out of training; their faces are swapped and "
        "scored at every checkpoint (identity retrieval and margin against the training "
        "faces, pose error, reconstruction SSIM; needs the eval extra). Default: 1 for an "
        "identity with at least 3 videos, else the last --holdout-share of each video's "
        "frames; 0: hold out nothing.",
        at_least(0),
        show_default=False,
    )
    holdout_share: float = option(
        0.1,
        "Share of the last frames of each video held out, for identities with fewer than 3 "
        "videos (when --holdout-videos is not given); 0: none.",
        (lambda v: 0 <= v < 0.5, "must be in [0, 0.5)"),
    )
    holdout_faces: int = option(
        32, "Held-out faces per identity scored at each checkpoint.", at_least(1)
    )
    freeze_encoder_steps: int = option(
        0,
        "Hold the encoder's weights still for the first N steps (with --init: the new "
        "bottleneck and decoders settle on the pair first); 0: train everything.",
        at_least(0),
    )
    label_selector: str | None = common.label_selector(
        "Run workers only on nodes with these Ray labels, e.g. node-kind=gpu."
    )
    address: str | None = common.address()
    # fault injection for tests: raise once at this step; the last rank's loss goes NaN here
    fail_at_step: int | None = option(None, "", at_least(0), hidden=True)
    nan_at_step: int | None = option(None, "", at_least(0), hidden=True)

    def __post_init__(self) -> None:
        check_fields(self)
        require(self.a != self.b, "b", self.b, "must differ from --a")
        self._check_model()

    def _check_model(self) -> None:
        require(
            self.fail_at_step is None or self.fail_at_step < self.steps,
            "fail_at_step",
            self.fail_at_step,
            "must be in [0, steps)",
        )
        if self.model == "original":
            for name in DFL_SIZE_FIELDS:
                value = getattr(self, name)
                require(value is None, name, value, "sizes --model df or liae, not original")
        else:
            require(
                self.width == DEFAULT_WIDTH,
                "width",
                self.width,
                f"sizes --model original; size {self.model} with --encoder-dims/--decoder-dims",
            )


@dataclass(frozen=True, kw_only=True)
class PretrainConfig(TrainConfig):
    """Settings of `rayswap pretrain`: `rayswap train`'s, with FACES of many people for a/b."""

    a: str = option("", "", hidden=True)  # both sides draw from the pool of FACES
    b: str = option("", "", hidden=True)
    init: str | None = option(None, "", hidden=True)  # a pretraining run starts afresh
    holdout_videos: int | None = option(0, "", at_least(0), hidden=True)  # no pair to score
    freeze_encoder_steps: int = option(0, "", at_least(0), hidden=True)
    out: str = common.out("Run folder or URI of the pretrained model; rerun to resume.")
    faces: tuple[str, ...] = option(
        (),
        "Faces datasets of many people (extract's OUT/faces, or one identity's folder).",
        given("at least one FACES folder"),
        argument=True,
        path=True,
        metavar="FACES...",
        show_default=False,
    )
    per_identity: int | None = option(
        None,
        "Faces drawn per identity at most, so no single person dominates. Default: the "
        "median count of the identities.",
        at_least(1),
        show_default=False,
    )
    min_identities: int = option(2, "Refuse a pool of fewer identities than this.", at_least(1))

    def __post_init__(self) -> None:
        check_fields(self)
        require(self.init is None, "init", self.init, "is for `rayswap train`")
        self._check_model()


@dataclass(frozen=True)
class ExportConfig:
    """Settings of `rayswap export`."""

    checkpoint: str = common.checkpoint(
        "A checkpoint directory, or a training --out folder (its latest checkpoint)."
    )
    out: str = option(REQUIRED, "Output file (local or URI).", given("an output file"), path=True)
    direction: str = option(
        "a2b",
        "a2b: A's pose with B's face; b2a: the other way.",
        one_of_lazy("ops.model", "DIRECTIONS"),
    )
    format: str = option("torchscript", "torchscript or onnx.", one_of(EXPORT_FORMATS))
    atol: float = option(1e-4, "Largest difference to the eager model accepted.", above(0))

    def __post_init__(self) -> None:
        check_fields(self)

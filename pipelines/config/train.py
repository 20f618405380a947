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
        "fused Adam, channels_last. Without it: gloo and float32 on CPU.",
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
    batch_size: int = option(16, "Faces per identity per worker per step.", at_least(1))
    steps: int = option(1000, "Total optimisation steps (a rerun goes on).", at_least(1))
    lr: float = option(1e-4, "Adam learning rate.", (lambda v: 0 < v < 1, "must be in (0, 1)"))
    save_every: int = option(
        250, "Checkpoint (and report to Ray Train) every this many steps.", at_least(1)
    )
    log_every: int = option(10, "Write a metrics line every N steps.", at_least(1))
    width: int = option(32, "Channels of the first encoder conv.", at_least(4))
    latent_dim: int = option(256, "Size of the shared latent vector.", at_least(8))
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
        require(
            self.fail_at_step is None or self.fail_at_step < self.steps,
            "fail_at_step",
            self.fail_at_step,
            "must be in [0, steps)",
        )


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

"""Run benchmarks: `python -m benchmarks [NAME ...|all] [options]`.

Stages: extract, train, render (all three for `all`); watermark (it needs a trained
`--checkpoint`) and gpu (the GPU check of training) run only when named. Each module
exposes `main(argv) -> None` and prints its own table; several NAMEs run one after the
other with the same options. Benchmarks that run `rayswap` commands (gpu, node) share one
Ray when named together, e.g. `python -m benchmarks gpu node --tiny --out DIR`.
"""

from __future__ import annotations

import contextlib
import importlib
import sys

STAGES = ("extract", "train", "render")
EXTRA = ("watermark", "gpu", "detect", "paste", "node", "identity", "evaluate", "quality", "pose")
ONE_RAY = ("gpu", "node", "quality")  # their commands run in this process on `media.one_ray()`


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    names = []
    while argv and not argv[0].startswith("-"):
        names.append(argv.pop(0))
    names = names or ["all"]
    unknown = [name for name in names if name not in (*STAGES, *EXTRA, "all")]
    if unknown:
        choices = "|".join((*STAGES, *EXTRA))
        raise SystemExit(f"usage: python -m benchmarks [{choices}|all ...] [options]")
    run = [stage for name in names for stage in (STAGES if name == "all" else (name,))]
    shared = contextlib.nullcontext()
    if len(run) > 1 and set(run) <= set(ONE_RAY):
        from benchmarks.media import one_ray

        shared = one_ray()
    with shared:
        for name in run:
            try:
                module = importlib.import_module(f"benchmarks.{name}")
            except ModuleNotFoundError as exc:
                if exc.name != f"benchmarks.{name}":
                    raise
                print(f"[{name}] no benchmark yet")
                continue
            print(f"\n=== {name} ===")
            module.main(list(argv))


if __name__ == "__main__":
    main()

"""Run one benchmark, or the three stage ones: `python -m benchmarks [STAGE|all] [options]`.

Stages: extract, train, render (all three for `all`); watermark (it needs a trained
`--checkpoint`) and gpu (the GPU check of training) run only when named. Each module
exposes `main(argv) -> None` and prints its own table.
"""

from __future__ import annotations

import importlib
import sys

STAGES = ("extract", "train", "render")
EXTRA = ("watermark", "gpu", "detect", "paste", "node", "identity", "evaluate")


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    stage = argv.pop(0) if argv else "all"
    if stage not in (*STAGES, *EXTRA, "all"):
        choices = "|".join((*STAGES, *EXTRA))
        raise SystemExit(f"usage: python -m benchmarks [{choices}|all] [options]")
    for name in STAGES if stage == "all" else (stage,):
        try:
            module = importlib.import_module(f"benchmarks.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"benchmarks.{name}":
                raise
            print(f"[{name}] no benchmark yet")
            continue
        print(f"\n=== {name} ===")
        module.main(argv)


if __name__ == "__main__":
    main()

"""Run one stage's benchmark, or all of them: `python -m benchmarks [extract|train|render|all]`.

Each stage module exposes `main(argv) -> None` and prints its own table.
"""

from __future__ import annotations

import importlib
import sys

STAGES = ("extract", "train", "render")


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    stage = argv.pop(0) if argv else "all"
    if stage not in (*STAGES, "all"):
        raise SystemExit(f"usage: python -m benchmarks [{'|'.join(STAGES)}|all] [options]")
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

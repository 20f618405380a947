"""Frozen configs of every stage, validated before Ray starts, and the stage summary.

Each field of a config is one CLI flag: its name (`_` -> `-`), type, default, help and
check are declared once, in the field (pipelines/config/flags.py), and the command line is
built from it (pipelines/cli/app.py). The resolved config is saved beside every output as
`_config.json` / `config.json`. Defaults run on a laptop CPU.
"""

from pipelines.config.evaluate import DemoConfig, EvaluateConfig, FacesReportConfig, VerifyConfig
from pipelines.config.extract import ExtractConfig
from pipelines.config.flags import parse_label_selector
from pipelines.config.render import RenderConfig
from pipelines.config.summary import (
    ActorPlan,
    Counts,
    EvaluateCounts,
    ExtractCounts,
    RenderCounts,
    StageSummary,
    config_json,
    versions,
)
from pipelines.config.train import ExportConfig, PretrainConfig, TrainConfig

__all__ = [
    "ActorPlan",
    "Counts",
    "EvaluateCounts",
    "ExtractCounts",
    "RenderCounts",
    "DemoConfig",
    "EvaluateConfig",
    "ExportConfig",
    "ExtractConfig",
    "FacesReportConfig",
    "PretrainConfig",
    "RenderConfig",
    "StageSummary",
    "TrainConfig",
    "VerifyConfig",
    "config_json",
    "parse_label_selector",
    "versions",
]

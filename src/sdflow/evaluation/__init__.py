"""Evaluation of SR and downscaling: the library behind ``sdflow eval`` (see
docs/evaluation.md for the protocol)."""

from sdflow.evaluation.data import DatasetError, Pair, list_images, pair_folders, read_rgb8
from sdflow.evaluation.results import (
    EvalResult,
    Figure,
    Panel,
    format_table,
    write_csv,
    write_json,
)
from sdflow.evaluation.runner import (
    EvalOptions,
    check_can_downscale,
    check_taus,
    default_taus,
    evaluate_bicubic,
    evaluate_ds,
    evaluate_folders,
    evaluate_sr,
)
from sdflow.evaluation.scoring import Scorer, draw_outputs

__all__ = [
    "DatasetError",
    "EvalOptions",
    "EvalResult",
    "Figure",
    "Pair",
    "Panel",
    "Scorer",
    "check_can_downscale",
    "check_taus",
    "default_taus",
    "draw_outputs",
    "evaluate_bicubic",
    "evaluate_ds",
    "evaluate_folders",
    "evaluate_sr",
    "format_table",
    "list_images",
    "pair_folders",
    "read_rgb8",
    "write_csv",
    "write_json",
]

"""The best summary: per model its best checkpoint, its peaks, and its distance to the baselines.

Pure: given the collected models, no file access. The best checkpoint comes from
:func:`local.upload.ranking.best_step`, the rule the W&B run summary's ``best/<metric>`` uses.
A baseline (``--baseline MODEL_DIR:CHECKPOINT``) is one checkpoint's metrics; every model of the
same group (``--group-by``, the dataset by default: comparing across datasets means nothing) gets
each metric's difference from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from local.errors import UserError
from local.report.collect import Checkpoint, ModelData
from local.upload.ranking import best_step, metric_value, peak
from remote.contract.tree import checkpoint_dir_name, checkpoint_step

GROUP_BY = ("dataset", "cb_setting", "none")
ALL_MODELS = "all models"
DIFF_DIGITS = 8  # metrics carry 4-6 digits; this keeps float noise (0.0045000000000000005) out


@dataclass(frozen=True)
class Peak:
    """A metric's highest value over a model's checkpoints, and the first checkpoint reaching it."""

    value: float
    step: int
    epoch: Optional[float]


@dataclass
class Baseline:
    """One reference checkpoint to compare against."""

    model: ModelData
    point: Checkpoint
    group: str

    @property
    def label(self) -> str:
        return f"{self.model.entry.model_dir}:{checkpoint_dir_name(self.point.step)}"


@dataclass
class BestRow:
    """One model's line of the best summary."""

    model: ModelData
    group: str
    best: Optional[Checkpoint]
    peaks: Dict[str, Optional[Peak]] = field(default_factory=dict)
    # baseline label -> metric -> best value minus the baseline's
    diffs: Dict[str, Dict[str, float]] = field(default_factory=dict)


def group_of(model: ModelData, group_by: str) -> str:
    """Given a model and the ``--group-by`` field, return the name of its group."""
    if group_by == "none":
        return ALL_MODELS
    return str(getattr(model.entry, group_by))


def steps_map(model: ModelData) -> Dict[int, Dict[str, float]]:
    """Given a model, return step -> metrics, the shape the shared ranking takes."""
    return {step: point.metrics for step, point in model.checkpoints.items()}


def best_row(model: ModelData, group: str, rank_by: Sequence[str], peaks: Sequence[str]) -> BestRow:
    """Given a model, return its best checkpoint by ``rank_by`` and the peak of each of ``peaks``."""
    checkpoints = steps_map(model)
    step = best_step(checkpoints, rank_by)
    row = BestRow(model, group, model.checkpoints[step] if step is not None else None)
    for name in peaks:
        found = peak(checkpoints, name)
        row.peaks[name] = Peak(found[0], found[1], model.checkpoints[found[1]].epoch) if found else None
    return row


def compare(row: BestRow, baselines: Sequence[Baseline]) -> None:
    """Given a best row and the baselines, fill in each metric's difference from the group's baselines."""
    if row.best is None:
        return
    for baseline in baselines:
        if baseline.group != row.group:
            continue
        diffs = {}
        for name, value in row.best.metrics.items():
            reference = metric_value(baseline.point.metrics, name)
            if reference is not None:
                diffs[name] = round(value - reference, DIFF_DIGITS)
        row.diffs[baseline.label] = diffs


def best_rows(
    models: Sequence[ModelData],
    group_by: str,
    rank_by: Sequence[str],
    peaks: Sequence[str],
    baselines: Sequence[Baseline],
) -> List[BestRow]:
    """Given the models and the report's choices, return one best-summary row per model."""
    rows = []
    for model in models:
        row = best_row(model, group_of(model, group_by), rank_by, peaks)
        compare(row, baselines)
        rows.append(row)
    return rows


def parse_baseline(text: str) -> Tuple[str, int]:
    """Given ``MODEL_DIR:CHECKPOINT`` (``810`` or ``checkpoint-810``), return (model_dir, step)."""
    model_dir, _, checkpoint = text.rpartition(":")
    step = checkpoint_step(checkpoint) if checkpoint.startswith("checkpoint-") else None
    if step is None and checkpoint.isdigit():
        step = int(checkpoint)
    if not model_dir or step is None:
        raise UserError(
            f"--baseline {text!r} is not MODEL_DIR:CHECKPOINT",
            "e.g. --baseline Instruments-grec-sft-qwen4B-4-64-dsz0:810 (or :checkpoint-810)",
        )
    return model_dir, step


def resolve_baseline(text: str, models: Dict[str, ModelData], group_by: str) -> Baseline:
    """Given a ``--baseline`` value and every model read, return the baseline or a UserError naming it."""
    model_dir, step = parse_baseline(text)
    model = models.get(model_dir)
    if model is None:
        raise UserError(
            f"--baseline {text}: no model {model_dir!r} in the manifest",
            f"give MODEL_DIR:CHECKPOINT of a model of the manifest ({', '.join(sorted(models)) or 'none'})",
        )
    point = model.checkpoints.get(step)
    if point is None:
        reason = model.failures.get(step, "no such checkpoint")
        usable = ", ".join(str(s) for s in sorted(model.checkpoints)) or "none"
        raise UserError(
            f"--baseline {text}: {model_dir} has no usable {checkpoint_dir_name(step)} ({reason})",
            f"pick one of its checkpoints with metrics: {usable}",
        )
    return Baseline(model, point, group_of(model, group_by))

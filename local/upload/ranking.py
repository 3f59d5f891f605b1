"""Which checkpoint of a model is "best": one pure rule for the W&B run summary and the report.

The researchers pick a model's best checkpoint by NDCG@10, break ties by HR@10, then NDCG@50,
then HR@50 (:data:`DEFAULT_RANK_BY`); the report's ``--rank-by`` names another order. The rule:

- checkpoints are compared metric by metric in the given order, a higher value winning;
- a checkpoint that lacks a metric (or holds no finite number for it) ranks below every one that
  has it, at that position of the order;
- when every metric of the order is equal, the lower step wins (the earlier checkpoint reached
  that quality first; the uploader's ``best_step_for_hr@10`` breaks ties the same way);
- a model none of whose checkpoints holds any metric of the order has no best checkpoint.

Metric names match exactly, else ignoring case (``hr@10`` finds ``HR@10``), as the summary's
``best_hr@10`` always did. No file, network or clock access here: the uploader
(:func:`local.upload.plan.summary`) and the report (:mod:`local.report`) both call it, so the
dashboard and the report never disagree.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Optional, Sequence, Tuple

DEFAULT_RANK_BY = ("NDCG@10", "HR@10", "NDCG@50", "HR@50")

# step -> that checkpoint's metrics
Checkpoints = Mapping[int, Mapping[str, Any]]


def metric_value(metrics: Mapping[str, Any], name: str) -> Optional[float]:
    """Given a checkpoint's metrics and a metric name, return its finite value, else None."""
    value = metrics.get(name)
    if value is None:
        wanted = name.lower()
        value = next((v for key, v in metrics.items() if key.lower() == wanted), None)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def rank_key(step: int, metrics: Mapping[str, Any], rank_by: Sequence[str]) -> Tuple[Any, ...]:
    """Given a checkpoint and the ranking order, return a key whose maximum is the best checkpoint."""
    key = []
    for name in rank_by:
        value = metric_value(metrics, name)
        # (has it, value): a missing metric ranks below any value, even a negative one.
        key.append((0, 0.0) if value is None else (1, value))
    return (*key, -step)


def best_step(checkpoints: Checkpoints, rank_by: Sequence[str] = DEFAULT_RANK_BY) -> Optional[int]:
    """Given a model's checkpoints and the ranking order, return the best checkpoint's step, or None."""
    ranked = [step for step, metrics in checkpoints.items() if _has_any(metrics, rank_by)]
    if not ranked:
        return None
    return max(ranked, key=lambda step: rank_key(step, checkpoints[step], rank_by))


def peak(checkpoints: Checkpoints, name: str) -> Optional[Tuple[float, int]]:
    """Given a model's checkpoints and a metric, return (its highest value, the lowest step holding it)."""
    step = best_step(checkpoints, (name,))
    value = None if step is None else metric_value(checkpoints[step], name)
    return None if step is None or value is None else (value, step)


def _has_any(metrics: Mapping[str, Any], rank_by: Sequence[str]) -> bool:
    return any(metric_value(metrics, name) is not None for name in rank_by)

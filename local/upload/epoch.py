"""A checkpoint's epoch, taken only from sources that do not change when later checkpoints arrive.

The original tool computed ``step / (largest step seen so far) * num_train_epochs``: a value logged
early was wrong once later checkpoints arrived (step 260 logged as epoch 10.0, the same as step
320), and a W&B history row never changes. Here the epoch comes from a stable source, in order:

1. an ``epoch`` value in the checkpoint's own metrics;
2. ``epoch`` in a ``trainer_state.json`` beside them (what the Hugging Face Trainer writes into
   every checkpoint folder);
3. the manifest's ``num_train_epochs`` with a declared ``max_steps`` (epoch = step / max_steps *
   num_train_epochs) or ``steps_per_epoch`` (epoch = step / steps_per_epoch), set through the
   overrides file or ``prepare-manifest --default-num-train-epochs``.

With none of them the epoch is unknown for that checkpoint: ``epoch_progress`` is left out of its
row (never guessed) and ``status`` says why in one line. The report command uses the same rule.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any, Mapping, Optional

from remote.contract.manifest import ModelEntry

TRAINER_STATE = "trainer_state.json"
# A trainer state with a long log history is a few MB; anything far larger is not one.
MAX_TRAINER_STATE_BYTES = 16 * 1024 * 1024
DIGITS = 6  # enough for any real epoch fraction; keeps float noise out of the history
UNKNOWN_REASON = (
    "epoch unknown: no 'epoch' in the metrics or trainer_state.json, and no num_train_epochs with "
    "max_steps or steps_per_epoch in the manifest; set them in the overrides file"
)


def _finite(value: Any) -> Optional[float]:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def read_trainer_epoch(checkpoint_dir: str) -> Optional[float]:
    """Given a checkpoint folder, return ``epoch`` from its trainer_state.json, if it has a usable one."""
    path = os.path.join(checkpoint_dir, TRAINER_STATE)
    try:
        if os.path.getsize(path) > MAX_TRAINER_STATE_BYTES:
            return None
        with open(path, "rb") as handle:
            document = json.loads(handle.read().decode("utf-8"))
    except (OSError, ValueError, RecursionError):
        return None  # absent, half-written or not a trainer state: not a stable source
    return _finite(document.get("epoch")) if isinstance(document, dict) else None


def manifest_epoch(step: int, entry: ModelEntry) -> Optional[float]:
    """Given a step and its model's manifest entry, return the epoch its declared training length gives."""
    if entry.steps_per_epoch:
        return step / entry.steps_per_epoch
    if entry.num_train_epochs and entry.max_steps:
        return step / entry.max_steps * entry.num_train_epochs
    return None


def stable_epoch(
    step: int, metrics: Mapping[str, Any], trainer_epoch: Optional[float], entry: ModelEntry
) -> Optional[float]:
    """Given a checkpoint's step, metrics and trainer-state epoch, return its epoch or None."""
    for value in (_finite(metrics.get("epoch")), trainer_epoch, manifest_epoch(step, entry)):
        if value is not None:
            return round(value, DIGITS)
    return None

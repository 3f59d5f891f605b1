"""Read a results tree for the report: each selected model's checkpoints, metrics and epochs.

The same readers as the uploader, so the report shows what W&B holds: the manifest with the
upload-time overrides (:func:`local.upload.selection.read_manifest`), the model filter's rules
(:func:`local.upload.selection.select_models`), the metrics reader
(:func:`local.upload.metrics.read_metrics`) and the stable epoch rule
(:func:`local.upload.epoch.stable_epoch`). A checkpoint whose metrics cannot be used is kept
out of every table and chart and reported with its reason; the others go on.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Sequence

from local.errors import UserError
from local.upload.epoch import read_trainer_epoch, stable_epoch
from local.upload.metrics import read_metrics, scan_checkpoints
from local.upload.report import UploadOptions
from local.upload.selection import read_manifest, select_models
from remote.contract.manifest import Manifest, ModelEntry
from remote.contract.tree import checkpoint_dir_name

log = logging.getLogger(__name__)

NO_METRICS_YET = "no metrics.json or metrics.tsv yet (eval not finished?)"
_METRIC_RE = re.compile(r"^([A-Za-z_]+)@(\d+)$")


@dataclass(frozen=True)
class Checkpoint:
    """One checkpoint's numbers: its step, epoch (None when no stable source gives one), metrics."""

    step: int
    epoch: Optional[float]
    metrics: Dict[str, float]


@dataclass
class ModelData:
    """One model of the report: its manifest entry, usable checkpoints and unusable ones (reasons)."""

    entry: ModelEntry
    checkpoints: Dict[int, Checkpoint] = field(default_factory=dict)
    failures: Dict[int, str] = field(default_factory=dict)

    @property
    def broken(self) -> Dict[int, str]:
        """Return the checkpoints whose metrics file exists but cannot be used, with the reasons."""
        return {step: reason for step, reason in self.failures.items() if reason != NO_METRICS_YET}

    @property
    def max_step(self) -> Optional[float]:
        """Return the declared training length in steps (manifest), or None: never the largest step
        seen so far, which moves as checkpoints arrive (the original tool's drifting epochs)."""
        entry = self.entry
        steps = entry.max_steps
        if not steps and entry.steps_per_epoch and entry.num_train_epochs:
            steps = entry.steps_per_epoch * entry.num_train_epochs
        return int(steps) if steps and float(steps).is_integer() else steps  # 400, not 400.0


def load_manifest_for(results_root: str, manifest_path: str, overrides: str, required: bool) -> Manifest:
    """Given the report's manifest flags, return the manifest with the upload-time overrides applied."""
    options = UploadOptions(
        results_root=results_root,
        manifest_path=manifest_path,
        overrides_path=overrides,
        overrides_required=required,
    )
    manifest = read_manifest(options)
    for problem in manifest.problems:
        log.warning("manifest: %s", problem)
    return manifest


def choose(manifest: Manifest, filters: Sequence[str]) -> List[ModelEntry]:
    """Given the manifest and ``--models`` filters, return the selected entries (UserError if none)."""
    chosen = select_models(manifest.models, filters)
    if not chosen:
        known = ", ".join(entry.model_dir for entry in manifest.models) or "none"
        raise UserError(
            f"no model matches --models {','.join(filters)}",
            f"give a model directory, a part of one or a glob (models: {known})",
        )
    return chosen


def read_model(results_root: str, entry: ModelEntry) -> ModelData:
    """Given the results root and a manifest entry, read every checkpoint of that model."""
    model = ModelData(entry)
    model_path = os.path.join(results_root, entry.model_dir)
    for step, sig in sorted(scan_checkpoints(model_path).items()):
        if sig is None:
            model.failures[step] = NO_METRICS_YET  # shown, but not an error: the eval may be running
            continue
        folder = os.path.join(model_path, checkpoint_dir_name(step))
        read = read_metrics(folder)
        if not read.ok:
            model.failures[step] = str(read.reason)
            log.warning(
                "model %s checkpoint %d: left out of the report: %s", entry.model_dir, step, read.reason
            )
            continue
        epoch = stable_epoch(step, read.metrics, read_trainer_epoch(folder), entry)
        model.checkpoints[step] = Checkpoint(step, epoch, dict(read.metrics))
    return model


def read_models(results_root: str, entries: Iterable[ModelEntry]) -> List[ModelData]:
    """Given the results root and entries, read each model (in manifest order)."""
    return [read_model(results_root, entry) for entry in entries]


def metric_names(models: Iterable[ModelData]) -> List[str]:
    """Given models, return every metric name they hold: HR@k by k, NDCG@k by k, then the rest."""
    names = {name for model in models for point in model.checkpoints.values() for name in point.metrics}
    return sorted(names, key=_metric_order)


def _metric_order(name: str) -> tuple:
    match = _METRIC_RE.match(name)
    if not match:
        return (2, name, 0)
    family = match.group(1).upper()
    return ({"HR": 0, "NDCG": 1}.get(family, 2), family, int(match.group(2)))

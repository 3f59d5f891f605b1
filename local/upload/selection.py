"""Which W&B runs one pass uploads: the manifest (with upload-time overrides), the model filter,
the upload variants, and never two writers on one run."""

from __future__ import annotations

import fnmatch
import logging
import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from local.errors import UserError
from local.upload.report import ModelOutcome, UploadOptions
from local.upload.targets import RunTarget, run_targets
from remote.contract.manifest import Manifest, ManifestError, ModelEntry, load_manifest
from remote.contract.overrides import OverridesError, load_overrides

log = logging.getLogger(__name__)


@dataclass
class Selection:
    """The models and runs of one pass, the runs refused, and the manifest's problems."""

    models: List[Tuple[ModelEntry, List[RunTarget]]] = field(default_factory=list)
    refused: List[ModelOutcome] = field(default_factory=list)
    problems: List[str] = field(default_factory=list)


def load_overrides_for(options: UploadOptions) -> Optional[Dict[str, Dict]]:
    """Given the options, return the upload-time overrides (None when no file applies).

    The original's default path applies only when the file exists; a path the user chose
    must exist, or the pass stops with the reason rather than uploading to the wrong runs.
    """
    path = options.overrides_path
    if not path or (not options.overrides_required and not os.path.exists(path)):
        return None
    try:
        return load_overrides(path)
    except OverridesError as exc:
        raise UserError(
            str(exc), "fix --manifest-overrides (WANDB_EVAL_MANIFEST_OVERRIDES) or unset it"
        ) from exc


def read_manifest(options: UploadOptions) -> Manifest:
    """Given the options, read the manifest with the overrides applied (UserError when unusable)."""
    try:
        return load_manifest(options.manifest(), load_overrides_for(options))
    except ManifestError as exc:
        raise UserError(str(exc), "check --results-root/--manifest-path") from exc


def select_models(entries: Sequence[ModelEntry], filters: Sequence[str]) -> List[ModelEntry]:
    """Given entries and filters, return the kept entries.

    A filter that is exactly a model directory selects exactly that model (the original's rule);
    any other filter keeps the models whose directory contains it or matches it as a glob.
    """
    wanted = [f.strip() for raw in filters for f in raw.split(",") if f.strip()]
    if not wanted:
        return list(entries)
    names = {entry.model_dir for entry in entries}

    def kept(entry: ModelEntry, term: str) -> bool:
        if term in names:
            return entry.model_dir == term
        return term in entry.model_dir or fnmatch.fnmatchcase(entry.model_dir, term)

    return [entry for entry in entries if any(kept(entry, term) for term in wanted)]


def select(options: UploadOptions) -> Selection:
    """Given the options, return the pass's models, each with its runs, one writer per run."""
    manifest = read_manifest(options)
    for problem in manifest.problems:
        log.warning("manifest: %s", problem)
    selection = Selection(problems=list(manifest.problems))
    owners: Dict[Tuple[Optional[str], str, str], str] = {}
    for entry in select_models(manifest.models, options.model_filters):
        targets = []
        for target in run_targets(entry, options.variants):
            key = (entry.wandb_entity, entry.wandb_project, target.run_id)
            if key in owners:
                selection.refused.append(_refusal(target, owners[key]))
                continue
            owners[key] = target.label
            targets.append(target)
        selection.models.append((entry, targets))
    return selection


def _refusal(target: RunTarget, owner: str) -> ModelOutcome:
    message = (
        f"run id {target.run_id} is also used by model {owner}; "
        "give each model its own wandb_run_id in the overrides file"
    )
    log.error("model %s: %s", target.label, message)
    return ModelOutcome(target.model_dir, target.run_id, target.variant, error=message, error_kind="refused")

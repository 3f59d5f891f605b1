"""``prepare-manifest``: scan the results tree and write the manifest (Contract 1).

Run ids are sticky: a model already in the existing manifest keeps its ``wandb_run_id`` and
``wandb_run_name`` unless the overrides file sets them, so regenerating never splits a
model's W&B run in two. The manifest file is rewritten only when its content changes, so an
idle ``pack`` sees nothing new. Standard library only.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from remote.contract.files import now_iso, read_json, write_json_atomic
from remote.contract.manifest import (
    MANIFEST_VERSION,
    MODEL_DEFAULTS,
    WRITE_ORDER,
    default_run_id,
    default_run_name,
    infer_cb_setting,
    infer_dataset,
)
from remote.contract.overrides import checked_override, load_overrides, split_variants
from remote.contract.tree import printable
from remote.scan import Skipped, discover_models

log = logging.getLogger(__name__)


@dataclass
class ManifestOptions:
    """The settings of one prepare-manifest run (the CLI flags)."""

    results_root: str
    output_manifest: str
    overrides: Optional[str] = None
    default_project: str = "MIMIGenRec-Eval"
    default_entity: str = ""
    default_eval_split: str = "test"
    run_id_prefix: str = "eval"
    default_num_train_epochs: Optional[float] = None
    default_wandb_group: str = ""
    list_skipped: bool = True  # pack does not print them and walks the tree itself


@dataclass
class ManifestReport:
    """What prepare-manifest did: the models written, what it skipped, what it warned about."""

    path: str
    written: bool
    models: List[Dict[str, Any]]
    skipped: List[Skipped] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)


def read_existing(path: str) -> Tuple[Optional[Dict[str, Any]], Dict[str, Dict[str, Any]]]:
    """Given the manifest path, return the existing document and its models by model_dir."""
    try:
        document = read_json(path)
        models = {m["model_dir"]: m for m in document.get("models", []) if isinstance(m, dict)}
        return document, models
    except FileNotFoundError:
        return None, {}
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        log.warning("existing manifest %s unreadable (%s); run ids fall back to the defaults", path, exc)
        return None, {}


def build_entry(
    model_dir: str, options: ManifestOptions, override: Dict[str, Any], previous: Optional[Dict[str, Any]]
) -> Dict[str, Any]:
    """Given a model directory, the options, its override and its previous entry, build its entry."""
    merged: Dict[str, Any] = {
        "model_dir": model_dir,
        "dataset": infer_dataset(model_dir),
        "cb_setting": infer_cb_setting(model_dir),
        "eval_split": options.default_eval_split,
        "num_train_epochs": options.default_num_train_epochs,
        "wandb_group": options.default_wandb_group or None,
        "wandb_project": options.default_project,
        "wandb_entity": options.default_entity or None,
    }
    merged.update(MODEL_DEFAULTS)
    override, variants = split_variants(override)
    merged.update(override)
    if variants:
        merged["variants"] = variants
    if merged.get("wandb_entity") == "":
        merged["wandb_entity"] = None
    sticky = previous or {}
    merged["wandb_run_id"] = (
        override.get("wandb_run_id")
        or sticky.get("wandb_run_id")
        or default_run_id(
            options.run_id_prefix, model_dir, merged["dataset"], merged["cb_setting"], merged["eval_split"]
        )
    )
    merged["wandb_run_name"] = (
        override.get("wandb_run_name") or sticky.get("wandb_run_name") or default_run_name(model_dir)
    )
    ordered = {key: merged.get(key) for key in WRITE_ORDER}
    ordered.update({k: v for k, v in merged.items() if k not in ordered})
    return ordered


def prepare_manifest(options: ManifestOptions) -> ManifestReport:
    """Given the options, scan the tree and write the manifest if its content changed."""
    overrides = load_overrides(options.overrides) if options.overrides else {}
    model_dirs, skipped = discover_models(options.results_root, options.list_skipped)
    existing, previous = read_existing(options.output_manifest)
    warnings = [
        f"override for {name!r} ignored: no such model under {options.results_root}"
        for name in sorted(set(overrides) - set(model_dirs))
    ]
    models = [
        build_entry(
            name, options, checked_override(name, overrides.get(name, {}), warnings), previous.get(name)
        )
        for name in model_dirs
    ]
    # Informational only, but JSON text: a root whose own path is not UTF-8 is written escaped.
    results_root = printable(os.path.abspath(options.results_root))
    unchanged = (
        existing is not None
        and existing.get("version") == MANIFEST_VERSION
        and existing.get("results_root") == results_root
        and existing.get("models") == models
    )
    if not unchanged:
        document = {
            "version": MANIFEST_VERSION,
            "generated_at": now_iso(),
            "results_root": results_root,
            "models": models,
        }
        write_json_atomic(options.output_manifest, document)
    return ManifestReport(options.output_manifest, not unchanged, models, skipped, warnings)

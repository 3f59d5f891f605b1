"""The W&B runs one manifest model is uploaded to: the per-checkpoint run and the epoch run.

The original tool uploaded every model to two "upload variants" (``--variants``, env
``WANDB_UPLOAD_VARIANTS``, default both), and the researchers' dashboards use both:

- ``ckpt_step``, the per-checkpoint run: id and name from ``variants.ckpt_step``, else the entry's;
  group ``variants.ckpt_step.wandb_group`` when that key is set (empty there: no group), else the
  entry's ``wandb_group``, else ``ckpt_step``.
- ``epoch``, the epoch run: id ``variants.epoch.wandb_run_id``, else ``<id>-epoch``; name likewise
  ``<name>-epoch``; group ``variants.epoch.wandb_group``, else ``epoch``.

Each run carries the same rows and has its own state file (state is per run id), so each is
uploaded exactly once on its own. The config keys are the original's, plus ``model_dir``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

from remote.contract.manifest import ModelEntry
from remote.contract.overrides import VARIANTS

DEFAULT_VARIANTS: Tuple[str, ...] = VARIANTS


@dataclass(frozen=True)
class RunTarget:
    """One W&B run a model is uploaded to."""

    entry: ModelEntry
    variant: str
    run_id: str
    run_name: str
    group: Optional[str]

    @property
    def model_dir(self) -> str:
        return self.entry.model_dir

    @property
    def label(self) -> str:
        """Return ``model_dir`` for the main run and ``model_dir [epoch]`` for the epoch run, for messages."""
        return (
            self.entry.model_dir
            if self.variant == "ckpt_step"
            else f"{self.entry.model_dir} [{self.variant}]"
        )

    def config(self) -> Dict[str, Any]:
        """Return the run config: the original's keys in its order, then ``model_dir``."""
        entry = self.entry
        return {
            "model_name": entry.model_dir,
            "upload_variant": self.variant,
            "dataset": entry.dataset,
            "cb_setting": entry.cb_setting,
            "seed": entry.seed,
            "num_beams": entry.num_beams,
            "sid_levels": entry.sid_levels,
            "num_train_epochs": entry.num_train_epochs,
            "eval_split": entry.eval_split,
            "model_dir": entry.model_dir,
        }


def parse_variants(text: str) -> Tuple[str, ...]:
    """Given ``ckpt_step,epoch`` (any order, repeats allowed), return the variants in run order.

    Raises ValueError naming what is wrong, as the original refused unknown or empty lists.
    """
    asked = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [name for name in asked if name not in VARIANTS]
    if unknown or not asked:
        raise ValueError(f"upload variants must be some of {', '.join(VARIANTS)}, got {text!r}")
    return tuple(name for name in VARIANTS if name in asked)


def _group(override: Dict[str, Optional[str]], fallback: Optional[str]) -> Optional[str]:
    if "wandb_group" in override:
        return override["wandb_group"] or None  # set to "" or null there: deliberately no group
    return fallback


def target_for(entry: ModelEntry, variant: str) -> RunTarget:
    """Given a manifest entry and a variant, return the run it is uploaded to."""
    override = entry.variants.get(variant, {})
    if variant == "ckpt_step":
        run_id = override.get("wandb_run_id") or entry.wandb_run_id
        name = override.get("wandb_run_name") or entry.wandb_run_name
        return RunTarget(entry, variant, run_id, name, _group(override, entry.wandb_group or "ckpt_step"))
    run_id = override.get("wandb_run_id") or f"{entry.wandb_run_id}-epoch"
    name = override.get("wandb_run_name") or f"{entry.wandb_run_name}-epoch"
    return RunTarget(entry, variant, run_id, name, override.get("wandb_group") or "epoch")


def run_targets(entry: ModelEntry, variants: Sequence[str] = DEFAULT_VARIANTS) -> List[RunTarget]:
    """Given a manifest entry and the variants to upload, return its runs (main run first)."""
    return [target_for(entry, variant) for variant in VARIANTS if variant in variants]

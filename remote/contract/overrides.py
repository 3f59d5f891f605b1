"""The overrides file: per ``model_dir``, fields that replace the manifest's (the original tool's rules).

Both roles apply it: ``prepare-manifest --overrides`` when it writes the manifest on the training
machine, and ``upload --manifest-overrides`` on the uploader at upload time, which is how a user
fixes a run id (say, after W&B deleted the run) without a trip back to the air-gapped cluster.

Accepted shapes: ``{"models": {dir: {...}}}`` (the template's), ``{"models": [{"model_dir": dir,
...}]}`` or ``{dir: {...}}``. Per model, top-level keys replace the manifest's; ``variants`` holds
per-run-variant fields (``ckpt_step``: the per-checkpoint run; ``epoch``: the epoch run), each with
``wandb_run_id``, ``wandb_run_name``, ``wandb_group``. The original's legacy rule is kept: with no
``variants.epoch``, top-level ``wandb_group``/``wandb_run_id``/``wandb_run_name`` that look like an
epoch run (``epoch``, ``...-epoch``, ``...-epoch-...``) all move into ``variants.epoch``.

Standard library only.
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Tuple

from remote.contract.files import read_json

VARIANTS = ("ckpt_step", "epoch")
VARIANT_FIELDS = ("wandb_run_id", "wandb_run_name", "wandb_group")
INT_FIELDS = ("seed", "num_beams", "sid_levels")
OPTIONAL_NUMBER_FIELDS = ("num_train_epochs", "steps_per_epoch", "max_steps")
STR_FIELDS = ("dataset", "cb_setting", "eval_split", "wandb_project", "wandb_run_id", "wandb_run_name")
OPTIONAL_STR_FIELDS = ("wandb_entity", "wandb_group")

Override = Dict[str, Any]


class OverridesError(ValueError):
    """The overrides file cannot be used as a whole."""


def load_overrides(path: str) -> Dict[str, Override]:
    """Given an overrides file, return ``{model_dir: {field: value}}`` or raise OverridesError."""
    try:
        raw = read_json(path)
    except FileNotFoundError:
        raise OverridesError(f"overrides file not found: {path}") from None
    except (OSError, ValueError) as exc:
        raise OverridesError(f"overrides file {path} is not valid JSON ({exc})") from exc
    if not isinstance(raw, dict):
        raise OverridesError(f"overrides file {path} must hold a JSON object")
    models = raw.get("models", raw)
    if isinstance(models, list):
        models = _models_from_list(path, models)
    if not isinstance(models, dict):
        raise OverridesError(f"overrides file {path}: 'models' must be an object or a list")
    for model_dir, fields in models.items():
        if not isinstance(fields, dict):
            raise OverridesError(f"overrides file {path}: entry {model_dir!r} must be an object")
    return {str(k): dict(v) for k, v in models.items()}


def _models_from_list(path: str, items: List[Any]) -> Dict[str, Override]:
    pairs = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("model_dir"), str):
            raise OverridesError(f"overrides file {path}: every models[] item needs a model_dir")
        pairs.append((item["model_dir"], {k: v for k, v in item.items() if k != "model_dir"}))
    return dict(pairs)


def _looks_like_epoch(value: Any) -> bool:
    token = "" if value is None else str(value)
    return token == "epoch" or token.endswith("-epoch") or "-epoch-" in token


def split_variants(override: Override) -> Tuple[Override, Dict[str, Override]]:
    """Given one model's override, return (top-level fields, per-variant fields), legacy rule applied."""
    base = dict(override)
    raw = base.pop("variants", None)
    variants = {name: dict(fields) for name, fields in (raw or {}).items() if name in VARIANTS}
    if "epoch" not in variants and any(_looks_like_epoch(base.get(key)) for key in VARIANT_FIELDS):
        moved = {key: base.pop(key) for key in VARIANT_FIELDS if key in base}
        moved.setdefault("wandb_group", "epoch")
        variants["epoch"] = moved
    return base, variants


def merge_variants(*layers: Dict[str, Override]) -> Dict[str, Override]:
    """Given variant maps, later ones winning key by key, return their merge."""
    merged: Dict[str, Override] = {}
    for layer in layers:
        for name, fields in layer.items():
            merged[name] = {**merged.get(name, {}), **fields}
    return merged


def _value_ok(key: str, value: Any) -> bool:
    if key in INT_FIELDS:
        return _is_int(value)
    if key in OPTIONAL_NUMBER_FIELDS:
        return value is None or (_is_number(value) and value > 0)
    if key in STR_FIELDS:
        return isinstance(value, str) and value != ""
    if key in OPTIONAL_STR_FIELDS:
        return value is None or isinstance(value, str)
    if key == "variants":
        return isinstance(value, dict) and all(
            isinstance(fields, dict) and all(v is None or isinstance(v, str) for v in fields.values())
            for name, fields in value.items()
            if name in VARIANTS
        )
    return True


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def checked_override(model_dir: str, override: Override, warnings: List[str]) -> Override:
    """Given one model's override, drop (with a warning naming it) each field of the wrong type."""
    usable: Override = {}
    for key, value in override.items():
        if key == "model_dir":
            continue
        if _value_ok(key, value):
            usable[key] = value
        else:
            warnings.append(
                f"override {model_dir}.{key}={value!r} ignored: wrong type; fix the overrides file"
            )
    return usable


def apply_overrides(models: List[Any], overrides: Dict[str, Override], warnings: List[str]) -> List[Any]:
    """Given raw manifest entries and overrides, return the entries with the overrides merged in.

    The upload-time path (the original's ``apply_manifest_overrides``): top-level fields replace,
    variants merge key by key over the entry's own. Entries that are not objects pass unchanged
    (the manifest parser reports them).
    """
    merged = []
    for item in models:
        name = item.get("model_dir") if isinstance(item, dict) else None
        if not isinstance(name, str) or name not in overrides:
            merged.append(item)
            continue
        base, variants = split_variants(checked_override(name, overrides[name], warnings))
        entry = {**item, **base}
        own = item.get("variants") if isinstance(item.get("variants"), dict) else {}
        combined = merge_variants({k: v for k, v in own.items() if isinstance(v, dict)}, variants)
        if combined:
            entry["variants"] = combined
        merged.append(entry)
    return merged

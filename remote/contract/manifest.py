"""Contract 1: the eval manifest (``results/.wandb_eval_manifest.json``, version 1).

This module is the single definition of the manifest format. The remote role writes it
(``prepare-manifest``); the local role reads it (``upload``) through :func:`parse_manifest`.
Standard library only, Python >= 3.9.

Run ids are the users' link to their existing W&B runs, so the default id is computed exactly
as the original tool did: ``<prefix>-`` + the first 20 hex digits of SHA-1 over the compact,
key-sorted JSON of ``{model_dir, dataset, cb_setting, eval_split}``.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from remote.contract.files import read_json
from remote.contract.overrides import VARIANT_FIELDS, VARIANTS, apply_overrides
from remote.contract.tree import is_utf8, shown_name

MANIFEST_VERSION = 1

# Fields every model entry carries; the uploader refuses an entry missing any of them.
REQUIRED_MODEL_FIELDS = (
    "model_dir",
    "dataset",
    "cb_setting",
    "eval_split",
    "seed",
    "num_beams",
    "sid_levels",
    "wandb_project",
    "wandb_entity",
    "wandb_run_id",
    "wandb_run_name",
)
# Written for compatibility with manifests of the original tool (null when unset).
OPTIONAL_MODEL_FIELDS = ("num_train_epochs", "wandb_group")
# Read when present (set through the overrides file), never written by default, so a manifest of a
# tree without them stays field for field the original tool's: the training length that makes an
# epoch value stable (see local.upload.epoch), and per-variant run fields (the epoch run).
EXTRA_MODEL_FIELDS = ("max_steps", "steps_per_epoch", "variants")
# The order fields are written in: the original tool's, so diffs against its manifests stay small.
WRITE_ORDER = REQUIRED_MODEL_FIELDS[:7] + OPTIONAL_MODEL_FIELDS + REQUIRED_MODEL_FIELDS[7:]
MODEL_DEFAULTS: Dict[str, Any] = {"seed": 42, "num_beams": 50, "sid_levels": -1}

# The original tool cut the dataset name at the first of these markers, tried in this order.
DATASET_SPLIT_TOKENS = ("-sft-", "-qwen", "-llama", "-mistral", "-grpo", "-rl")
CODEBOOK_RE = re.compile(r"(cb\d+(?:-\d+)*)", re.IGNORECASE)
CODEBOOK_WIDTH_RE = re.compile(r"(?:^|-)4-(\d+)(?:-|$)")
# W&B run ids may not contain these; we also keep them free of whitespace.
RUN_ID_FORBIDDEN_RE = re.compile(r"[/\\#?%:\s]")


class ManifestError(ValueError):
    """The manifest as a whole cannot be used (unreadable, wrong version, not an object)."""


@dataclass(frozen=True)
class ModelEntry:
    """One validated model of the manifest: what the uploader needs for one W&B run."""

    model_dir: str
    dataset: str
    cb_setting: str
    eval_split: str
    seed: int
    num_beams: int
    sid_levels: int
    wandb_project: str
    wandb_entity: Optional[str]
    wandb_run_id: str
    wandb_run_name: str
    wandb_group: Optional[str] = None
    num_train_epochs: Optional[float] = None
    max_steps: Optional[float] = None
    steps_per_epoch: Optional[float] = None
    # {"ckpt_step" | "epoch": {"wandb_run_id"|"wandb_run_name"|"wandb_group": str or None}}
    variants: Dict[str, Dict[str, Optional[str]]] = field(default_factory=dict)
    extra: Dict[str, Any] = field(default_factory=dict)


@dataclass
class Manifest:
    """A parsed manifest: the usable models plus one problem line per unusable entry."""

    version: int
    generated_at: str
    results_root: str
    models: List[ModelEntry]
    problems: List[str]


def stable_hash(payload: Dict[str, Any], length: int = 20) -> str:
    """Given a JSON-able dict, return a hash that is the same on every machine and Python."""
    raw = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha1(raw.encode("utf-8")).hexdigest()[:length]


def default_run_id(prefix: str, model_dir: str, dataset: str, cb_setting: str, eval_split: str) -> str:
    """Given the identifying fields of a model, return the original tool's default run id."""
    key = {"model_dir": model_dir, "dataset": dataset, "cb_setting": cb_setting, "eval_split": eval_split}
    return f"{prefix}-{stable_hash(key, 20)}"


def default_run_name(model_dir: str) -> str:
    """Given a model directory name, return the original tool's default run name."""
    cleaned = re.sub(r"[^a-zA-Z0-9_.-]+", "-", model_dir).strip("-_.")
    return "{}-eval".format(cleaned or "unknown")


def infer_dataset(model_dir: str) -> str:
    """Given a model directory name, infer the dataset as the original tool did."""
    prefix = model_dir
    for token in DATASET_SPLIT_TOKENS:
        if token in model_dir:
            prefix = model_dir.split(token, 1)[0]
            break
    return (prefix or model_dir).replace("-", "_")


def infer_cb_setting(model_dir: str) -> str:
    """Given a model directory name, infer the codebook setting (``cb64``) or ``none``."""
    match = CODEBOOK_RE.search(model_dir)
    if match:
        return match.group(1)
    width = CODEBOOK_WIDTH_RE.search(model_dir)
    if width:
        return f"cb{width.group(1)}"
    return "none"


def is_plain_dir_name(name: Any) -> bool:
    """Given a value, tell whether it is a safe single directory name (no separators, no dots)."""
    return (
        isinstance(name, str)
        and is_utf8(name)
        and name not in ("", ".", "..")
        and not name.startswith(".")
        and "/" not in name
        and "\\" not in name
        and "\x00" not in name
    )


class _FieldError(ValueError):
    """One field of one entry has a value the uploader cannot use."""


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)  # JSON true is not 1


def _int_field(raw: Dict[str, Any], key: str) -> int:
    value = raw[key]
    if not _is_int(value):
        raise _FieldError(f"{key} must be an integer, not {value!r}")
    return int(value)


def _number_field(raw: Dict[str, Any], key: str) -> Optional[float]:
    value = raw.get(key)
    if value in (None, ""):
        return None
    if not _is_int(value) and not isinstance(value, float) or not math.isfinite(value) or value <= 0:
        raise _FieldError(f"{key} must be a positive finite number, not {value!r}")
    return float(value)


def _text_field(raw: Dict[str, Any], key: str, optional: bool = False) -> Optional[str]:
    value = raw.get(key)
    if optional and value in (None, ""):
        return None
    if not isinstance(value, str) or (not optional and not value):
        raise _FieldError(f"{key} must be {'text or null' if optional else 'non-empty text'}, not {value!r}")
    if not is_utf8(value):
        raise _FieldError(f"{key} {shown_name(value)} is not valid UTF-8 text")
    return value


def _run_id_problem(run_id: Any) -> Optional[str]:
    if not isinstance(run_id, str) or not run_id or RUN_ID_FORBIDDEN_RE.search(run_id) or len(run_id) > 128:
        return f"wandb_run_id {run_id!r} is not a valid W&B run id"
    return None


def _variants_field(raw: Dict[str, Any]) -> Dict[str, Dict[str, Optional[str]]]:
    value = raw.get("variants")
    if value in (None, {}):
        return {}
    if not isinstance(value, dict):
        raise _FieldError(f"variants must be an object, not {value!r}")
    variants: Dict[str, Dict[str, Optional[str]]] = {}
    for name in VARIANTS:
        fields = value.get(name)
        if fields is None:
            continue
        if not isinstance(fields, dict) or any(
            v is not None and not isinstance(v, str) for k, v in fields.items() if k in VARIANT_FIELDS
        ):
            raise _FieldError(f"variants.{name} must map {', '.join(VARIANT_FIELDS)} to text, not {fields!r}")
        problem = _run_id_problem(fields["wandb_run_id"]) if fields.get("wandb_run_id") else None
        if problem:
            raise _FieldError(f"variants.{name}.{problem}")
        variants[name] = {k: v for k, v in fields.items() if k in VARIANT_FIELDS}
    return variants


def _build_entry(raw: Dict[str, Any]) -> ModelEntry:
    """Given a raw entry with every required field, return it typed, or raise _FieldError."""
    known = set(REQUIRED_MODEL_FIELDS) | set(OPTIONAL_MODEL_FIELDS) | set(EXTRA_MODEL_FIELDS)
    run_id = str(raw["wandb_run_id"])
    return ModelEntry(
        model_dir=str(raw["model_dir"]),
        dataset=str(_text_field(raw, "dataset")),
        cb_setting=str(_text_field(raw, "cb_setting")),
        eval_split=str(_text_field(raw, "eval_split")),
        seed=_int_field(raw, "seed"),
        num_beams=_int_field(raw, "num_beams"),
        sid_levels=_int_field(raw, "sid_levels"),
        wandb_project=str(_text_field(raw, "wandb_project")),
        wandb_entity=_text_field(raw, "wandb_entity", optional=True),
        wandb_run_id=run_id,
        wandb_run_name=_text_field(raw, "wandb_run_name", optional=True) or run_id,
        wandb_group=_text_field(raw, "wandb_group", optional=True),
        num_train_epochs=_number_field(raw, "num_train_epochs"),
        max_steps=_number_field(raw, "max_steps"),
        steps_per_epoch=_number_field(raw, "steps_per_epoch"),
        variants=_variants_field(raw),
        extra={k: v for k, v in raw.items() if k not in known},
    )


def _check_entry(raw: Any, index: int) -> Tuple[Optional[ModelEntry], Optional[str]]:
    """Given one raw ``models[]`` item, return (entry, None) or (None, one-line problem)."""
    if not isinstance(raw, dict):
        return None, f"models[{index}] is not an object; regenerate the manifest"
    name = raw.get("model_dir")
    label = f"model {shown_name(name)}" if isinstance(name, str) else f"models[{index}]"
    if isinstance(name, str) and not is_utf8(name):
        return None, (
            f"{label}: model_dir is not valid UTF-8 text; rename the folder on the training machine "
            "(or set the field in the overrides file) and regenerate the manifest"
        )
    if not is_plain_dir_name(name):
        return None, f"{label}: model_dir must be a plain directory name; fix it in the manifest"
    missing = [key for key in REQUIRED_MODEL_FIELDS if key not in raw]
    if missing:
        return None, f"{label}: missing fields {', '.join(missing)}; regenerate the manifest"
    problem = _run_id_problem(raw["wandb_run_id"])
    if problem:
        return None, f"{label}: {problem}; set one in the overrides file"
    try:
        return _build_entry(raw), None
    except _FieldError as exc:
        return None, f"{label}: {exc}; fix it in the manifest or the overrides file"


def parse_manifest(data: Any) -> Manifest:
    """Given decoded manifest JSON, return the usable models and one problem per bad entry.

    A bad entry never hides the others; a duplicated model_dir keeps its first entry only.
    """
    if not isinstance(data, dict):
        raise ManifestError("manifest root is not a JSON object")
    if data.get("version") != MANIFEST_VERSION:
        raise ManifestError(
            f"manifest version {data.get('version')!r} is not supported (expected {MANIFEST_VERSION}); "
            "regenerate it with 'python -m remote prepare-manifest'"
        )
    raw_models = data.get("models")
    if not isinstance(raw_models, list):
        raise ManifestError("manifest 'models' is not a list")
    models: List[ModelEntry] = []
    problems: List[str] = []
    seen = set()
    for index, raw in enumerate(raw_models):
        entry, problem = _check_entry(raw, index)
        if entry is not None and entry.model_dir in seen:
            problem = f"model {entry.model_dir!r}: listed twice; only the first entry is used"
            entry = None
        if entry is None:
            problems.append(problem or f"models[{index}]: unusable")
            continue
        seen.add(entry.model_dir)
        models.append(entry)
    return Manifest(
        version=MANIFEST_VERSION,
        generated_at=str(data.get("generated_at") or ""),
        results_root=str(data.get("results_root") or ""),
        models=models,
        problems=problems,
    )


def load_manifest(path: str, overrides: Optional[Dict[str, Dict[str, Any]]] = None) -> Manifest:
    """Given a manifest path (and overrides to apply), read and parse it.

    Raises ManifestError with a one-line reason when the file as a whole is unusable; a problem
    with one entry, or with one field of an override, is a line in ``problems`` instead.
    """
    try:
        data = read_json(path)
    except FileNotFoundError:
        raise ManifestError(f"manifest not found: {path}; run 'python -m remote prepare-manifest'") from None
    except (OSError, ValueError) as exc:
        raise ManifestError(f"manifest {path} is unreadable ({exc}); regenerate it") from exc
    warnings: List[str] = []
    if overrides and isinstance(data, dict) and isinstance(data.get("models"), list):
        data = dict(data, models=apply_overrides(data["models"], overrides, warnings))
    manifest = parse_manifest(data)
    manifest.problems[:0] = warnings
    return manifest

"""Read one checkpoint's eval metrics and list a model's checkpoints cheaply.

A checkpoint is ``<model_dir>/checkpoint-<digits>``; any other folder (``checkpoint-best``,
``checkpoint-final``) never becomes a step. Its metrics come from ``metrics.json`` or, when that
is missing, ``metrics.tsv`` (a header line and one value line; non-numeric columns such as
``path`` are ignored).

Untrusted input: a file that is empty, half-written (invalid JSON), not an object, or holds no
finite number at all (strings only, NaN-only) is a *failure with a reason*, never an exception;
the caller records it in ``failed_steps`` and retries it on the next pass. Single NaN/inf or
string values next to good numbers are dropped (W&B cannot chart them) and named in ``dropped``.

Listing is cheap on purpose: an idle pass calls :func:`scan_checkpoints` (one ``scandir`` per
model and one ``stat`` per checkpoint) and reads no file whose (size, mtime_ns) it has seen.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from remote.contract.tree import METRIC_FILES, checkpoint_step

log = logging.getLogger(__name__)

# A metrics file larger than this is not an eval summary; refuse instead of loading it.
MAX_METRICS_BYTES = 4 * 1024 * 1024

# (file name, size, mtime_ns): enough to notice a rewritten metrics file without reading it.
FileSig = Tuple[str, int, int]


@dataclass
class MetricsResult:
    """What one checkpoint's metrics file gave: metrics, or a reason it cannot be used."""

    metrics: Dict[str, float] = field(default_factory=dict)
    reason: Optional[str] = None
    source: str = ""
    dropped: List[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.reason is None


def _file_sig(checkpoint_dir: str) -> Optional[FileSig]:
    for name in METRIC_FILES:
        try:
            st = os.stat(os.path.join(checkpoint_dir, name))
        except OSError:
            continue
        return (name, st.st_size, st.st_mtime_ns)
    return None


def scan_checkpoints(model_path: str) -> Dict[int, Optional[FileSig]]:
    """Given a model directory, map each numeric checkpoint step to its metrics file signature.

    A checkpoint without any metrics file maps to None (its eval has not finished yet).
    A missing model directory gives an empty map.
    """
    found: Dict[int, Optional[FileSig]] = {}
    try:
        entries = list(os.scandir(model_path))
    except (FileNotFoundError, NotADirectoryError):
        return found
    for entry in entries:
        step = checkpoint_step(entry.name)
        if step is None or not entry.is_dir(follow_symlinks=False):
            continue
        found[step] = _file_sig(entry.path)
    return found


def read_metrics(checkpoint_dir: str) -> MetricsResult:
    """Given a checkpoint directory, return its numeric metrics or a failure reason."""
    for name in METRIC_FILES:
        path = os.path.join(checkpoint_dir, name)
        try:
            with open(path, "rb") as handle:
                raw = handle.read(MAX_METRICS_BYTES + 1)
        except FileNotFoundError:
            continue
        except OSError as exc:
            return MetricsResult(reason=f"cannot read {name}: {exc.strerror or exc}", source=name)
        result = _parse(name, raw)
        result.source = name
        return result
    return MetricsResult(reason="no metrics.json or metrics.tsv")


def _parse(name: str, raw: bytes) -> MetricsResult:
    if len(raw) > MAX_METRICS_BYTES:
        return MetricsResult(reason=f"{name} is larger than {MAX_METRICS_BYTES} bytes")
    if not raw.strip():
        return MetricsResult(reason=f"{name} is empty")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return MetricsResult(reason=f"{name} is not UTF-8 text")
    if name.endswith(".json"):
        values, reason = _values_from_json(text)
    else:
        values, reason = _values_from_tsv(text)
    if reason:
        return MetricsResult(reason=f"{name} {reason}")
    return _keep_numbers(name, values)


def _values_from_json(text: str) -> Tuple[Dict[str, Any], Optional[str]]:
    try:
        # Python's json accepts NaN/Infinity; they are classified below, not rejected here.
        document = json.loads(text)
    except ValueError as exc:
        return {}, f"is not valid JSON (half-written?): {exc}"
    if not isinstance(document, dict):
        return {}, f"holds a JSON {type(document).__name__}, not an object"
    return _flatten(document), None


def _flatten(document: Dict[str, Any], prefix: str = "") -> Dict[str, Any]:
    """Given nested dicts, return ``{"a/b": value}`` so grouped metrics keep their names."""
    flat: Dict[str, Any] = {}
    for key, value in document.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, name + "/"))
        else:
            flat[name] = value
    return flat


def _values_from_tsv(text: str) -> Tuple[Dict[str, Any], Optional[str]]:
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) < 2:
        return {}, "has a header but no value line (half-written?)"
    header = lines[0].split("\t")
    # The last line wins: an eval script that appends re-runs leaves the newest result last.
    cells = lines[-1].split("\t")
    if len(cells) != len(header):
        return {}, f"value line has {len(cells)} cells for {len(header)} columns (half-written?)"
    values: Dict[str, Any] = {}
    for key, cell in zip(header, cells):
        try:
            values[key.strip()] = float(cell)
        except ValueError:
            values[key.strip()] = cell
    return values, None


def _keep_numbers(name: str, values: Dict[str, Any]) -> MetricsResult:
    metrics: Dict[str, float] = {}
    dropped: List[str] = []
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            dropped.append(key)
        else:
            metrics[key] = value
    if not metrics:
        return MetricsResult(reason=f"{name} holds no finite numeric metric (strings, NaN or empty)")
    return MetricsResult(metrics=metrics, dropped=dropped)

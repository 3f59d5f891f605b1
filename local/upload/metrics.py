"""Read one checkpoint's eval metrics and list a model's checkpoints cheaply.

A checkpoint is ``<model_dir>/checkpoint-<digits>``; any other folder (``checkpoint-best``,
``checkpoint-final``, a name that is not UTF-8) never becomes a step. Its metrics come from
``metrics.json`` or, when that is missing, ``metrics.tsv`` (a header line and one value line;
non-numeric columns such as ``path`` are ignored).

Only *complete* metrics are used; a file the eval is still writing, or a copy cut short, must
never give a wrong number. ``metrics.json`` is complete when it parses as a JSON object: a cut
object never does. ``metrics.tsv`` is complete when it ends with a newline, and its header and
last value line have the same number of cells: every real writer ends each line with one (all
35 sample files do; pandas and the csv module too), while a value line cut inside its last cell
would still have all its cells and read ``0.5678`` as ``0.56``, and one cut after a tab would
lose the last metric.

Untrusted input: a file that is empty, incomplete, not an object, nested absurdly deep, larger
than 4 MiB, not a regular file, or holds no finite number at all (strings only, NaN-only) is a
*failure with a reason*, never an exception; the caller records it in ``failed_steps`` and
retries it on the next pass. Single NaN/inf, huge or string values next to good numbers are
dropped (W&B cannot chart them) and named in ``dropped``.

Listing is cheap on purpose: an idle pass calls :func:`scan_checkpoints` (one ``scandir`` per
model and one ``stat`` per checkpoint) and reads no file whose (size, mtime_ns) it has seen.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import stat
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from remote.contract.tree import METRIC_FILES, checkpoint_step

log = logging.getLogger(__name__)

# A metrics file larger than this is not an eval summary; refuse instead of loading it.
MAX_METRICS_BYTES = 4 * 1024 * 1024
# Grouped metrics nest a level or two ({"test": {"HR@10": ...}}); deeper values are dropped, and
# the recursion stays far from Python's limit whatever the file holds.
MAX_NESTING = 8


# (file name, size, mtime_ns): enough to notice a rewritten metrics file without reading it.
FileSig = Tuple[str, int, int]
# Models share their checkpoint names (the same step schedule), so a full scan of 100,000
# folders asks about a few hundred names: remembered, not matched again.
_step_of = functools.lru_cache(maxsize=1 << 16)(checkpoint_step)


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


def _file_sig(model_fd: int, checkpoint: str) -> Optional[FileSig]:
    # One stat per checkpoint is most of a full scan (100,000 on a large tree): relative to the
    # model folder's descriptor, the kernel walks two path components instead of the whole path.
    for name in METRIC_FILES:
        try:
            st = os.stat(f"{checkpoint}/{name}", dir_fd=model_fd)
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
        model_fd = os.open(model_path, os.O_RDONLY | os.O_DIRECTORY)
    except (FileNotFoundError, NotADirectoryError):
        return found
    try:
        with os.scandir(model_fd) as entries:
            for entry in entries:
                step = _step_of(entry.name)
                if step is not None and entry.is_dir(follow_symlinks=False):
                    found[step] = _file_sig(model_fd, entry.name)
    finally:
        os.close(model_fd)
    return found


def read_metrics(checkpoint_dir: str) -> MetricsResult:
    """Given a checkpoint directory, return its numeric metrics or a failure reason."""
    for name in METRIC_FILES:
        try:
            raw = _read_regular(os.path.join(checkpoint_dir, name))
        except FileNotFoundError:
            continue
        except OSError as exc:
            return MetricsResult(reason=f"cannot read {name}: {exc.strerror or exc}", source=name)
        result = _parse(name, raw)
        result.source = name
        return result
    return MetricsResult(reason="no metrics.json or metrics.tsv")


def _read_regular(path: str) -> bytes:
    """Given a path, return up to MAX_METRICS_BYTES + 1 of its bytes; raise OSError unless a file.

    Opened non-blocking and checked before reading: a FIFO named metrics.json would otherwise
    hang the pass, and a device could feed it forever.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{os.path.basename(path)} is not a regular file")
        with os.fdopen(fd, "rb", closefd=False) as handle:
            return handle.read(MAX_METRICS_BYTES + 1)
    finally:
        os.close(fd)


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
    except RecursionError:
        return {}, "nests too deeply to be metrics"
    except ValueError as exc:
        return {}, f"is not valid JSON (half-written?): {exc}"
    if not isinstance(document, dict):
        return {}, f"holds a JSON {type(document).__name__}, not an object"
    return _flatten(document), None


def _flatten(document: Dict[str, Any], prefix: str = "", depth: int = 1) -> Dict[str, Any]:
    """Given nested dicts, return ``{"a/b": value}`` so grouped metrics keep their names.

    A dict deeper than MAX_NESTING is kept as one (non-numeric) value, so it is dropped.
    """
    flat: Dict[str, Any] = {}
    for key, value in document.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and depth < MAX_NESTING:
            flat.update(_flatten(value, name + "/", depth + 1))
        else:
            flat[name] = value
    return flat


def _values_from_tsv(text: str) -> Tuple[Dict[str, Any], Optional[str]]:
    """Given a TSV's text, return header -> cell of its last value line, if the file is complete."""
    if not text.endswith("\n"):
        return {}, "does not end with a newline (still being written, or cut short)"
    # Only \n ends a line (\r\n too): str.splitlines would also split a cell at \x1c or \u2028.
    lines = [line.rstrip("\r") for line in text.split("\n")]
    lines = [line for line in lines if line.strip()]
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


def _is_finite_number(value: Any) -> bool:
    """Given a value, tell whether W&B can chart it: a finite int or float (bool is no number)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float
        return False


def _keep_numbers(name: str, values: Dict[str, Any]) -> MetricsResult:
    metrics: Dict[str, float] = {}
    dropped: List[str] = []
    for key, value in values.items():
        if _is_finite_number(value):
            metrics[key] = value
        else:
            dropped.append(key)
    if not metrics:
        return MetricsResult(reason=f"{name} holds no finite numeric metric (strings, NaN or empty)")
    return MetricsResult(metrics=metrics, dropped=dropped)

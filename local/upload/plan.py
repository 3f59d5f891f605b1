"""Pure planning for one model's upload pass: no file, network or clock access here.

Given the checkpoint scan and the model's state, decide which metrics files must be read,
what each read means (new checkpoint, corrected checkpoint, failure, untouched), which rows
to log in which order, and what the table and the summary show afterwards.

Changed metrics after upload: W&B history is append-only, so a corrected checkpoint gets a
*new* history row with the same ``checkpoint_step`` and ``eval/revision`` = 1, 2, ... (the
first upload has no revision key). The table and the summary always show the newest values,
and the caller logs a warning naming model and step. Re-touching a file without changing its
numbers (same digest) uploads nothing.

Exactly once: rows are logged in the order of the in-flight record, one ``run.log`` per row
(the table rides on the last row), so the history rows a killed pass got onto the server are
always a prefix of that record; :func:`recover` splits it at the count the server reports.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Mapping, Optional, Set, Tuple

from local.upload import ranking
from local.upload.metrics import FileSig, MetricsResult
from local.upload.state import ModelState
from local.upload.targets import RunTarget
from remote.contract.tree import METRIC_FILES, checkpoint_dir_name

HEADLINE_METRICS = ("HR@10", "NDCG@10")
STEP_KEY = "checkpoint_step"
INDEX_KEY = "checkpoint_index"
EPOCH_KEY = "epoch_progress"
REVISION_KEY = "eval/revision"
TABLE_KEY = "eval/checkpoint_table"
# The original tool's table columns, in its order; the metrics it did not list follow, then ours.
TABLE_METRICS = ("HR@1", "HR@3", "HR@5", "HR@10", "NDCG@1", "NDCG@3", "NDCG@5", "NDCG@10")
TABLE_HEAD = (STEP_KEY, INDEX_KEY, EPOCH_KEY, "checkpoint_name") + TABLE_METRICS + ("metrics_path",)


@dataclass(frozen=True)
class Item:
    """One checkpoint row to log: its metrics, what proves which file version it came from, and its
    position among the model's checkpoints and epoch (fixed when planned: a logged row never changes)."""

    step: int
    revision: int
    digest: str
    file: Tuple[Any, ...]
    metrics: Dict[str, Any]
    index: Optional[int] = None
    epoch: Optional[float] = None

    def to_json(self) -> Dict[str, Any]:
        document = asdict(self)
        document["file"] = list(self.file)
        return document

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Item:
        return cls(
            int(raw["step"]),
            int(raw["revision"]),
            str(raw["digest"]),
            tuple(raw["file"]),
            raw["metrics"],
            raw.get("index"),
            raw.get("epoch"),
        )

    @property
    def source(self) -> str:
        """Return the name of the metrics file the row was read from."""
        return str(self.file[0]) if self.file else METRIC_FILES[0]


@dataclass
class Job:
    """One run's upload work: what the uploader planned, for an upload worker to do."""

    target: RunTarget
    state_path: str
    new_items: List[Item]


@dataclass
class Classified:
    """What this pass's reads mean for the model."""

    items: List[Item]
    failures: Dict[int, str]
    touched: Dict[int, FileSig]
    broken_rewrites: Dict[int, str]


def metrics_digest(metrics: Mapping[str, Any]) -> str:
    """Given metrics, return a digest that changes only when a name or a value changes."""
    return hashlib.sha1(json.dumps(metrics, sort_keys=True).encode("utf-8")).hexdigest()


def in_flight_steps(state: ModelState) -> Set[int]:
    """Given a state, return the steps of its unconfirmed in-flight upload."""
    if not state.in_flight:
        return set()
    return {int(item["step"]) for item in state.in_flight.get("items", [])}


def steps_to_read(scan: Mapping[int, Optional[FileSig]], state: ModelState) -> List[int]:
    """Given a scan and a state, return the steps whose metrics file must be (re)read.

    Skipped: checkpoints without a metrics file yet, steps in flight (their rows are already
    recorded), and processed steps whose file still has the recorded (name, size, mtime_ns).
    """
    processed = state.processed()
    flying = in_flight_steps(state)
    wanted = []
    for step, sig in sorted(scan.items()):
        if sig is None or step in flying:
            continue
        if step in processed and list(sig) == list(state.files.get(step, [])):
            continue
        wanted.append(step)
    return wanted


def _revision_of(state: ModelState, step: int) -> int:
    for row in state.table_rows:
        if row.get(STEP_KEY) == step:
            return int(row.get("revision", 0))
    return 0


def classify(reads: Mapping[int, Tuple[FileSig, MetricsResult]], state: ModelState) -> Classified:
    """Given this pass's reads and the state, sort them into rows to log and failures."""
    processed = state.processed()
    result = Classified(items=[], failures={}, touched={}, broken_rewrites={})
    for step, (sig, read) in sorted(reads.items()):
        if not read.ok:
            target = result.broken_rewrites if step in processed else result.failures
            target[step] = str(read.reason)
            continue
        digest = metrics_digest(read.metrics)
        if step in processed and state.digests.get(step) == digest:
            result.touched[step] = sig
            continue
        revision = _revision_of(state, step) + 1 if step in processed else 0
        result.items.append(Item(step, revision, digest, tuple(sig), dict(read.metrics)))
    return result


def metrics_path(model_dir: str, step: int, source: str) -> str:
    """Given a checkpoint, return its metrics file's path relative to the results root (the same on
    every machine, unlike the original's absolute path)."""
    return f"{model_dir}/{checkpoint_dir_name(step)}/{source}"


def history_row(item: Item, model_dir: str) -> Dict[str, Any]:
    """Given an item, return its W&B history row (never with a ``step=``; see Contract 3).

    The original's keys: ``checkpoint_step``, ``checkpoint_index``, ``epoch_progress`` (when
    known), ``eval/checkpoint_name``, ``eval/metrics_path``, ``eval/<metric>``; plus
    ``eval/revision`` on a corrected checkpoint's new row.
    """
    row: Dict[str, Any] = {STEP_KEY: item.step}
    if item.index is not None:
        row[INDEX_KEY] = item.index
    if item.epoch is not None:
        row[EPOCH_KEY] = item.epoch
    row["eval/checkpoint_name"] = checkpoint_dir_name(item.step)
    row["eval/metrics_path"] = metrics_path(model_dir, item.step, item.source)
    row.update({f"eval/{name}": value for name, value in sorted(item.metrics.items())})
    if item.revision:
        row[REVISION_KEY] = item.revision
    return row


def recover(in_flight: Mapping[str, Any], resumed_step: int) -> Tuple[List[Item], List[Item], int]:
    """Given an in-flight record and the resumed run's step, split it into landed and leftover.

    Returns (landed, leftover, surplus): surplus > 0 means the run holds more rows than this
    record explains (another writer); those rows are not ours and nothing is re-logged for them.
    """
    items = [Item.from_json(raw) for raw in in_flight.get("items", [])]
    count = resumed_step - int(in_flight.get("start_step", 0))
    landed = max(0, min(count, len(items)))
    return items[:landed], items[landed:], max(0, count - len(items))


def mark_processed(state: ModelState, items: List[Item]) -> None:
    """Given confirmed items, record them as processed (table rows, file sigs, digests)."""
    rows = {int(row[STEP_KEY]): row for row in state.table_rows}
    steps = set(state.processed_steps)
    for item in items:
        steps.add(item.step)
        state.files[item.step] = list(item.file)
        state.digests[item.step] = item.digest
        state.failed_steps.pop(item.step, None)
        rows[item.step] = {
            STEP_KEY: item.step,
            "revision": item.revision,
            "metrics": dict(item.metrics),
            INDEX_KEY: item.index,
            EPOCH_KEY: item.epoch,
            "source": item.source,
        }
    state.processed_steps = sorted(steps)
    state.table_rows = [rows[step] for step in sorted(rows)]


def record_failures(state: ModelState, failures: Mapping[int, str], when: str) -> bool:
    """Given failures of this pass, store them (keeping the first time of a repeated reason).

    Returns whether the state changed.
    """
    changed = False
    for step, reason in failures.items():
        old = state.failed_steps.get(step)
        if old and old.get("reason") == reason:
            continue
        state.failed_steps[step] = {"reason": reason, "time": when}
        changed = True
    return changed


def note_seen(state: ModelState, scan: Mapping[int, Any]) -> bool:
    """Given a scan, raise ``last_seen_step``; return whether it changed."""
    if not scan:
        return False
    top = max(scan)
    if state.last_seen_step is not None and state.last_seen_step >= top:
        return False
    state.last_seen_step = top
    return True


def table_data(rows: List[Dict[str, Any]], model_dir: str) -> Tuple[List[str], List[List[Any]]]:
    """Given table rows, return (columns, data) for a ``wandb.Table``, one row per checkpoint.

    Columns: the original's (``checkpoint_step, checkpoint_index, epoch_progress,
    checkpoint_name``, HR/NDCG@1..10, ``metrics_path``), then every other metric, then ``revision``.
    A row recorded before indexes were kept gets its position among the rows.
    """
    others = sorted({name for row in rows for name in row["metrics"]} - set(TABLE_METRICS))
    columns = list(TABLE_HEAD) + others + ["revision"]
    data = []
    for position, row in enumerate(sorted(rows, key=lambda r: r[STEP_KEY]), start=1):
        step, metrics = row[STEP_KEY], row["metrics"]
        source = row.get("source") or METRIC_FILES[0]
        head = [step, row.get(INDEX_KEY) or position, row.get(EPOCH_KEY), checkpoint_dir_name(step)]
        cells = head + [metrics.get(n) for n in TABLE_METRICS] + [metrics_path(model_dir, step, source)]
        data.append(cells + [metrics.get(n) for n in others] + [row.get("revision", 0)])
    return columns, data


def _find(metrics: Mapping[str, Any], wanted: str) -> Optional[Any]:
    for name, value in metrics.items():
        if name.lower() == wanted.lower():
            return value
    return None


def summary(rows: List[Dict[str, Any]]) -> Dict[str, Any]:
    """Given table rows, return the run summary: best and last headline metrics with steps.

    ``eval/<metric>`` and ``checkpoint_step`` are set to the newest checkpoint's values, so a
    late older checkpoint logged last does not become the run's displayed value. ``best/<metric>``
    and ``best/step`` are the best checkpoint by the shared ranking (the report's best summary).
    """
    if not rows:
        return {}
    last = max(rows, key=lambda row: row[STEP_KEY])
    result: Dict[str, Any] = {"last_step": last[STEP_KEY], STEP_KEY: last[STEP_KEY]}
    result.update(best_by_ranking(rows))
    result.update({f"eval/{name}": value for name, value in last["metrics"].items()})
    for metric in HEADLINE_METRICS:
        key = metric.lower()
        scored = [(_find(row["metrics"], metric), row[STEP_KEY]) for row in rows]
        scored = [(value, step) for value, step in scored if value is not None]
        if not scored:
            continue
        best_value, best_step = max(scored, key=lambda pair: (pair[0], -pair[1]))
        result["best_" + key] = best_value
        result["best_step_for_" + key] = best_step
        last_value = _find(last["metrics"], metric)
        if last_value is not None:
            result["last_" + key] = last_value
    return result


def best_by_ranking(rows: List[Dict[str, Any]]) -> Dict[str, Any]:
    """Given table rows, return ``best/<metric>`` for every metric of the best checkpoint by
    :data:`local.upload.ranking.DEFAULT_RANK_BY`, and ``best/step`` (empty when none ranks)."""
    by_step = {row[STEP_KEY]: row["metrics"] for row in rows}
    step = ranking.best_step(by_step)
    if step is None:
        return {}
    values: Dict[str, Any] = {f"best/{name}": value for name, value in by_step[step].items()}
    values["best/step"] = step
    return values

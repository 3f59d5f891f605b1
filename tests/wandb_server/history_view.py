"""The read side of a run's history: what W&B's public-API history queries serve of the streamed rows.

W&B keys history by `_step` (the SDK's step: `run.log(..., step=N)` makes it N, not the line index),
so every read query here selects and orders rows by `_step`. With `keys`, only rows holding all of
them are returned, projected to those keys (W&B's documented `scan_history(keys=...)` behaviour).

`HistoryLag` simulates W&B serving a stale history page for recently streamed rows: it hides the
last N streamed rows of a run from the read queries only. historyLineCount (and RunResumeStatus)
keep counting every line, which is what a reader can compare its rows with to detect the lag.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from .store import HISTORY_FILE, RunKey, RunRecord

logger = logging.getLogger(__name__)

# One readable row: (its _step, the line exactly as streamed, the parsed row).
Row = Tuple[int, str, Dict[str, Any]]


class HistoryLag:
    """Given test instructions, remember how many trailing rows each run's history reads must hide."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # (run_id, project or None, entity or None) -> rows hidden; None matches any project/entity.
        self._rules: Dict[Tuple[str, Optional[str], Optional[str]], int] = {}

    def set(
        self, run_id: str, rows: int, project: Optional[str] = None, entity: Optional[str] = None
    ) -> None:
        """Given a run and a row count (0 = no lag), hide that many trailing rows from history reads."""
        if rows < 0:
            raise ValueError("rows must be >= 0")
        with self._lock:
            # Re-inserting moves the rule to the end, so the latest setting wins over older ones.
            self._rules.pop((run_id, project, entity), None)
            if rows:
                self._rules[(run_id, project, entity)] = int(rows)
        logger.info("history lag of run %s (project %s, entity %s): %d rows", run_id, project, entity, rows)

    def hidden(self, key: RunKey) -> int:
        """Given a run key, return how many of its last streamed rows the read side must not see."""
        entity, project, run_id = key
        with self._lock:
            rows = 0
            for (rule_id, rule_project, rule_entity), count in self._rules.items():
                if rule_id == run_id and rule_project in (None, project) and rule_entity in (None, entity):
                    rows = count
            return rows

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def to_json(self) -> List[Dict[str, Any]]:
        with self._lock:
            return [
                {"run_id": run_id, "project": project, "entity": entity, "rows": rows}
                for (run_id, project, entity), rows in self._rules.items()
            ]


def readable_rows(run: RunRecord, hidden: int) -> List[Row]:
    """Given a run and how many trailing lines to hide, return the rows history reads serve, by `_step`.

    Gaps (lines the client has not filled yet) and rows without an integer `_step` are left out:
    W&B indexes history by `_step`, so such a row could not be selected by a step range anyway.
    """
    lines = run.lines.get(HISTORY_FILE, [])
    if hidden:
        lines = lines[: max(0, len(lines) - hidden)]
    rows: List[Row] = []
    for line in lines:
        if line is None:
            continue
        row = json.loads(line)
        step = row.get("_step")
        if isinstance(step, bool) or not isinstance(step, (int, float)):
            logger.warning("history row of %s without an integer _step: %s", run.run_id, line[:200])
            continue
        rows.append((int(step), line, row))
    rows.sort(key=lambda item: item[0])
    return rows


def in_range(rows: Sequence[Row], min_step: Optional[int], max_step: Optional[int]) -> List[Row]:
    """Given rows, keep those with min_step <= _step < max_step (None = unbounded), like W&B's pages."""
    return [
        item
        for item in rows
        if (min_step is None or item[0] >= min_step) and (max_step is None or item[0] < max_step)
    ]


def with_keys(rows: Iterable[Row], keys: Sequence[str]) -> List[Dict[str, Any]]:
    """Given rows and keys, return the rows holding every key, each projected to those keys."""
    wanted = list(dict.fromkeys(keys))  # the Go reader appends `_step` once per page: dedupe
    return [{key: row[key] for key in wanted} for _, _, row in rows if all(key in row for key in wanted)]


def sample(items: Sequence[Any], samples: Optional[int]) -> List[Any]:
    """Given items and a sample count, return at most that many, evenly spaced, first and last kept.

    Real W&B downsamples too when a query asks for fewer samples than there are rows; which rows it
    picks is its own business, so tests should only rely on the count and on small runs being whole.
    """
    if samples is None or samples <= 0 or len(items) <= samples:
        return list(items)
    if samples == 1:
        return [items[-1]]
    last = len(items) - 1
    return [items[round(index * last / (samples - 1))] for index in range(samples)]


def _value_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return str(value.get("_type") or "map")
    return "list" if isinstance(value, list) else "nil"


def history_keys(rows: Sequence[Row]) -> Dict[str, Any]:
    """Given readable rows, return W&B's `historyKeys` JSON: the keys with type counts and `lastStep`.

    `Run.lastHistoryStep` reads `lastStep` (-1 without history); `scan_history` stops after it.
    """
    keys: Dict[str, Dict[str, int]] = {}
    for _, _, row in rows:
        for key, value in row.items():
            counts = keys.setdefault(key, {})
            kind = _value_type(value)
            counts[kind] = counts.get(kind, 0) + 1
    return {
        "keys": {
            key: {"typeCounts": [{"type": kind, "count": count} for kind, count in counts.items()]}
            for key, counts in keys.items()
        },
        "lastStep": rows[-1][0] if rows else -1,
    }

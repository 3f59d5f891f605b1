"""W&B is the truth: make a model's state agree with what its run already holds, before logging.

Pure rules; the read itself is :mod:`local.upload.history`. Used whenever the state cannot vouch
for the run: it is missing (a new model, or a lost state volume), unreadable, converted from the
original tool, or the resumed run holds a different number of rows than the state accounts for.

- Every ``checkpoint_step`` the run holds counts as processed: it is never logged again. The
  state's table rows and digests are rebuilt from the run's newest row per checkpoint.
- A planned checkpoint the run holds with the same values is adopted without logging; with other
  values it follows the "corrected metrics" rule: a new row with ``eval/revision`` = the number of
  rows the run already holds for it.
- Runs of the original tool qualify too: its rows carry ``checkpoint_step`` (its ``_step`` was the
  checkpoint step; ours is not used for anything here).
"""

from __future__ import annotations

import dataclasses
import math
import posixpath
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple

from local.upload.plan import EPOCH_KEY, INDEX_KEY, REVISION_KEY, STEP_KEY, TABLE_KEY, Item, metrics_digest
from local.upload.state import ORIGIN_OURS, ModelState
from remote.contract.tree import METRIC_FILES

# eval/* keys that are not metrics (ours and the original's).
NOT_METRICS = {REVISION_KEY, TABLE_KEY, "eval/checkpoint_name", "eval/metrics_path"}
# Values equal to this relative precision are the same value (floats travel through JSON twice).
SAME = 1e-12


@dataclass(frozen=True)
class Held:
    """What a run holds for one checkpoint: its number of rows and its newest row's values."""

    rows: int
    metrics: Dict[str, float]
    index: Optional[int]
    epoch: Optional[float]
    source: str


def _number(value: Any) -> Optional[float]:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return value


def _step(row: Mapping[str, Any]) -> Optional[int]:
    value = row.get(STEP_KEY)
    if isinstance(value, float) and value.is_integer():
        return int(value)  # JSON round trips may turn 100 into 100.0
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def held_checkpoints(history: Iterable[Mapping[str, Any]]) -> Dict[int, Held]:
    """Given a run's history rows in order, return what it holds per checkpoint step."""
    held: Dict[int, Held] = {}
    for row in history:
        step = _step(row)
        if step is None:
            continue
        metrics = {
            key[len("eval/") :]: value
            for key, value in row.items()
            if key.startswith("eval/") and key not in NOT_METRICS and _number(value) is not None
        }
        path = row.get("eval/metrics_path")
        source = posixpath.basename(path) if isinstance(path, str) and path else METRIC_FILES[0]
        count = held[step].rows + 1 if step in held else 1
        index = row.get(INDEX_KEY)
        held[step] = Held(
            count, metrics, index if isinstance(index, int) else None, _number(row.get(EPOCH_KEY)), source
        )
    return held


def values_match(local: Mapping[str, Any], remote: Mapping[str, float]) -> bool:
    """Given a checkpoint's metrics here and in the run, tell whether the run already has these values.

    Metrics the run has beyond ours are ignored (the original logged booleans as numbers).
    """
    for name, value in local.items():
        other = remote.get(name)
        if other is None or not math.isclose(float(value), float(other), rel_tol=SAME, abs_tol=0.0):
            return False
    return True


def adopt(state: ModelState, held: Mapping[int, Held], run_next_step: int) -> List[int]:
    """Given what the run holds, make the state say exactly that; return the steps it claimed but lost.

    Afterwards the state is ours again (trusted), ``run_next_step`` is the run's, and every held
    checkpoint is processed with the run's values in the table.
    """
    previous = {int(row[STEP_KEY]): row for row in state.table_rows}
    lost = sorted(state.processed() - set(held))
    state.table_rows = [_table_row(step, held[step], previous.get(step)) for step in sorted(held)]
    state.digests = {step: _digest(held[step], previous.get(step), state.digests.get(step)) for step in held}
    state.files = {step: sig for step, sig in state.files.items() if step in held}
    state.processed_steps = sorted(held)
    for step in held:
        state.failed_steps.pop(step, None)
    state.origin, state.run_next_step = ORIGIN_OURS, run_next_step
    return lost


def _table_row(step: int, held: Held, previous: Optional[Mapping[str, Any]]) -> Dict[str, Any]:
    return {
        STEP_KEY: step,
        "revision": held.rows - 1,
        "metrics": dict(held.metrics),
        INDEX_KEY: held.index if held.index is not None else (previous or {}).get(INDEX_KEY),
        EPOCH_KEY: held.epoch,
        "source": held.source,
    }


def _digest(held: Held, previous: Optional[Mapping[str, Any]], known: Optional[str]) -> str:
    """Keep the state's digest when its row has the run's values (no spurious revision later)."""
    if known and previous and values_match(previous.get("metrics") or {}, held.metrics):
        return known
    return metrics_digest(held.metrics)


def sort_items(
    state: ModelState, items: Iterable[Item], held: Mapping[int, Held]
) -> Tuple[List[Item], List[int]]:
    """Given planned items and what the run holds, return (items to log, steps adopted as they are).

    An adopted item's digest and file are recorded, so the next pass sees nothing new in it.
    """
    to_log: List[Item] = []
    adopted: List[int] = []
    for item in items:
        there = held.get(item.step)
        if there is None:
            to_log.append(dataclasses.replace(item, revision=0))
        elif values_match(item.metrics, there.metrics):
            state.digests[item.step], state.files[item.step] = item.digest, list(item.file)
            adopted.append(item.step)
        else:
            to_log.append(dataclasses.replace(item, revision=there.rows))
    return to_log, sorted(adopted)

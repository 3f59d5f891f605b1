"""The run loop's heartbeat and the health rule: written by ``run``, read by ``health`` and ``status``.

Healthy means "doing its job", not only "alive". The loop records, at every step, which step it
is in, the last finished cycle's exit code and errors, how many cycles in a row failed and when
one last succeeded. :func:`judge` turns that into a verdict:

- no heartbeat, or one older than ``max_age``: the loop is dead or stuck;
- the last cycle failed permanently (exit 4: authentication, host key, deleted run): unhealthy
  at once, since retrying cannot fix it; the next cycle that succeeds clears it;
- ``max_failed_cycles`` cycles in a row failed: unhealthy;
- no cycle succeeded for ``max_without_success`` seconds (0: no limit): unhealthy.

Standard library only, and nothing heavier imported: the container healthcheck runs
``python -m local health`` every 30 seconds for as long as the service lives.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from remote.contract.exit_codes import EXIT_PERMANENT
from remote.contract.files import now_iso, write_json_atomic
from remote.contract.names import HEARTBEAT_NAME

HEARTBEAT_VERSION = 1
# While a long upload pass makes progress (a model planned, a run uploaded), the loop writes the
# heartbeat again at most this often: a backfill of thousands of runs is busy, not stuck, and a
# pass that stops making progress still lets the heartbeat age past ``max_age``.
REFRESH_SECONDS = 30.0


@dataclass(frozen=True)
class HealthRule:
    """The limits of a healthy loop: heartbeat age, failed cycles in a row, time without success."""

    max_age: float
    max_failed_cycles: int = 3
    max_without_success: float = 0.0


@dataclass
class LoopRecord:
    """What the loop knows about its cycles; written into every heartbeat."""

    started: float = field(default_factory=time.time)
    cycle: int = 0
    last_cycle: int = 0
    last_finished: Optional[str] = None
    last_exit_code: Optional[int] = None
    last_errors: List[str] = field(default_factory=list)
    failed_cycles: int = 0
    last_success: Optional[float] = None

    def finished(self, exit_code: int, errors: List[str], failed: bool) -> None:
        """Given the cycle that just ended, count it as a success or one more failure in a row."""
        self.last_cycle, self.last_finished = self.cycle, now_iso()
        self.last_exit_code, self.last_errors = exit_code, list(errors)
        if failed:
            self.failed_cycles += 1
        else:
            self.failed_cycles, self.last_success = 0, time.time()


def heartbeat_path(state_dir: str, heartbeat_file: str = "") -> str:
    """Given the state directory and an explicit heartbeat file (or ""), return the heartbeat's path."""
    return heartbeat_file or os.path.join(state_dir, HEARTBEAT_NAME)


def write_heartbeat(path: str, phase: str, record: LoopRecord) -> None:
    """Given the heartbeat path, record that the loop is alive, in which phase, and its cycles so far."""
    document: Dict[str, Any] = {
        "version": HEARTBEAT_VERSION,
        "pid": os.getpid(),
        "time": time.time(),
        "time_iso": now_iso(),
        "phase": phase,
        "cycle": record.cycle,
        "last_cycle": record.last_cycle,
        "last_finished": record.last_finished,
        "last_exit_code": record.last_exit_code,
        "last_errors": record.last_errors,
        "failed_cycles": record.failed_cycles,
        "last_success": record.last_success,
        "started": record.started,
    }
    write_json_atomic(path, document)


def read_heartbeat(path: str) -> Dict[str, Any]:
    """Given the heartbeat path, return its document (OSError or ValueError when unusable)."""
    with open(path, "r", encoding="utf-8") as handle:
        document = json.load(handle)
    if not isinstance(document, dict):
        raise ValueError("heartbeat is not a JSON object")
    return document


def previous_success(path: str) -> Optional[float]:
    """Given the heartbeat path, return when the previous loop last succeeded (None if unknown).

    A restarted loop carries it on, so a service that restarts again and again still turns
    unhealthy when no cycle has succeeded for too long.
    """
    try:
        value = read_heartbeat(path).get("last_success")
        return float(value) if value is not None else None
    except (OSError, ValueError, TypeError):
        return None


def _last_error(document: Dict[str, Any]) -> str:
    errors = document.get("last_errors") or []
    if errors:
        return "; ".join(str(error) for error in errors)
    code = document.get("last_exit_code")
    return "no cycle finished yet" if code is None else f"exit {code}"


def judge(document: Dict[str, Any], rule: HealthRule, now: float) -> Optional[str]:
    """Given a heartbeat document and the rule, return None if healthy, else the reason."""
    age = now - float(document["time"])
    if age > rule.max_age:
        return f"heartbeat is {age:.0f} s old (limit {rule.max_age:.0f} s): the loop is stuck or dead"
    last = _last_error(document)
    if document.get("last_exit_code") == EXIT_PERMANENT:
        return f"the last cycle failed permanently (exit 4, retrying cannot fix it): {last}"
    failed = int(document.get("failed_cycles") or 0)
    if 0 < rule.max_failed_cycles <= failed:
        return f"{failed} cycles in a row failed (limit {rule.max_failed_cycles}); last: {last}"
    since = document.get("last_success") or document.get("started")
    waited = now - float(since) if since is not None else 0.0
    if 0 < rule.max_without_success < waited:
        what = "no cycle succeeded" if document.get("last_success") else "no cycle has succeeded yet"
        return f"{what} for {waited:.0f} s (limit {rule.max_without_success:.0f} s); last: {last}"
    return None


def check_health(path: str, rule: HealthRule, now: Optional[float] = None) -> Optional[str]:
    """Given the heartbeat path and the rule, return None if healthy, else why not."""
    try:
        document = read_heartbeat(path)
        return judge(document, rule, time.time() if now is None else now)
    except FileNotFoundError:
        return f"no heartbeat at {path} yet"
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"heartbeat {path} unreadable ({exc})"


def describe_last_cycle(path: str) -> Optional[str]:
    """Given the heartbeat path, return one line on the loop's last cycle and error, if any."""
    try:
        document = read_heartbeat(path)
        line = "last cycle: #{} at {}, exit {}".format(
            document.get("last_cycle", document["cycle"]),
            document.get("last_finished") or document["time_iso"],
            document["last_exit_code"],
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if document.get("last_exit_code") is None:
        return "loop: cycle #{} is running (phase {}), none finished yet".format(
            document.get("cycle"), document.get("phase")
        )
    failed = document.get("failed_cycles") or 0
    if failed:
        line += f", {failed} failed in a row"
    return line + ("; errors: " + _last_error(document) if document.get("last_errors") else "")

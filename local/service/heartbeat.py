"""The run loop's heartbeat: written by ``run`` at every step, read by ``health`` and ``status``.

Standard library only, and nothing heavier imported: the container healthcheck runs
``python -m local health`` every 30 seconds for as long as the service lives.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any, Dict, List, Optional

from remote.contract.files import now_iso, write_json_atomic
from remote.contract.names import HEARTBEAT_NAME

HEARTBEAT_VERSION = 1


def heartbeat_path(state_dir: str, heartbeat_file: str = "") -> str:
    """Given the state directory and an explicit heartbeat file (or ""), return the heartbeat's path."""
    return heartbeat_file or os.path.join(state_dir, HEARTBEAT_NAME)


def write_heartbeat(
    path: str, phase: str, cycle: int, last_exit_code: Optional[int], last_errors: List[str]
) -> None:
    """Given the heartbeat path, record that the loop is alive, in which phase, after which cycle."""
    document: Dict[str, Any] = {
        "version": HEARTBEAT_VERSION,
        "pid": os.getpid(),
        "time": time.time(),
        "time_iso": now_iso(),
        "phase": phase,
        "cycle": cycle,
        "last_exit_code": last_exit_code,
        "last_errors": last_errors,
    }
    write_json_atomic(path, document)


def read_heartbeat(path: str) -> Dict[str, Any]:
    """Given the heartbeat path, return its document (OSError or ValueError when unusable)."""
    with open(path, "r", encoding="utf-8") as handle:
        document = json.load(handle)
    if not isinstance(document, dict):
        raise ValueError("heartbeat is not a JSON object")
    return document


def check_health(path: str, max_age: float, now: Optional[float] = None) -> Optional[str]:
    """Given the heartbeat path and its allowed age, return None if healthy, else why not."""
    try:
        written = float(read_heartbeat(path)["time"])
    except FileNotFoundError:
        return f"no heartbeat at {path} yet"
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"heartbeat {path} unreadable ({exc})"
    age = (time.time() if now is None else now) - written
    if age > max_age:
        return f"heartbeat is {age:.0f} s old (limit {max_age:.0f} s): the loop is stuck or dead"
    return None


def describe_last_cycle(path: str) -> Optional[str]:
    """Given the heartbeat path, return one line on the loop's last cycle and error, if any."""
    try:
        document = read_heartbeat(path)
        line = "last cycle: #{} at {}, exit {}".format(
            document["cycle"], document["time_iso"], document["last_exit_code"]
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
    errors = document.get("last_errors") or []
    return line + ("; last error: " + errors[-1] if errors else "")

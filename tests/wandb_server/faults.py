"""Fault injection for the W&B test server: error bursts, dropped connections, latency, being down.

All state is guarded by one lock; handler threads ask `take(label)` once per request. Everything is
bounded: a rule fires `count` times, latency is a fixed per-request sleep capped at MAX_LATENCY.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

logger = logging.getLogger(__name__)

# A test asking for more than this per request is almost certainly a typo (ms vs s).
MAX_LATENCY = 30.0


@dataclass
class Rule:
    """One pending fault: answer `status` (or drop the connection when status is None) `remaining` times."""

    status: Optional[int]
    remaining: int
    match: str = ""
    retry_after: Optional[float] = None

    def matches(self, label: str) -> bool:
        # "" matches anything; otherwise a substring of "<path> <graphql operation>", so both
        # match="UpsertBucket" and match="file_stream" work.
        return not self.match or self.match in label

    def to_json(self) -> Dict[str, Any]:
        return {
            "status": self.status,
            "remaining": self.remaining,
            "match": self.match,
            "retry_after": self.retry_after,
        }


class Faults:
    """Given test instructions, decide per request whether to delay, fail, drop or refuse it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: List[Rule] = []
        self._latency = 0.0
        self._down = False

    def inject(
        self, status: int, count: int = 1, match: str = "", retry_after: Optional[float] = None
    ) -> None:
        """Given an HTTP status, answer the next `count` requests matching `match` with it."""
        if not 100 <= int(status) <= 599 or count < 1:
            raise ValueError("inject needs a status in 100..599 and count >= 1")
        with self._lock:
            self._rules.append(Rule(int(status), int(count), match, retry_after))

    def drop_connections(self, count: int = 1, match: str = "") -> None:
        """Given a count, close the next `count` matching connections without any response."""
        if count < 1:
            raise ValueError("count must be >= 1")
        with self._lock:
            self._rules.append(Rule(None, int(count), match))

    def set_latency(self, seconds: float) -> None:
        if not 0 <= seconds <= MAX_LATENCY:
            raise ValueError("latency must be within 0..{} s".format(MAX_LATENCY))
        with self._lock:
            self._latency = float(seconds)

    @property
    def latency(self) -> float:
        with self._lock:
            return self._latency

    def set_down(self, down: bool) -> None:
        with self._lock:
            self._down = bool(down)

    @property
    def down(self) -> bool:
        with self._lock:
            return self._down

    def clear(self) -> None:
        """Remove every pending rule, the latency and the down flag."""
        with self._lock:
            self._rules.clear()
            self._latency = 0.0
            self._down = False

    def pending(self) -> List[Dict[str, Any]]:
        with self._lock:
            return [rule.to_json() for rule in self._rules]

    def take(self, label: str) -> Optional[Rule]:
        """Given a request label, consume and return the first matching rule (None: serve normally)."""
        with self._lock:
            for rule in self._rules:
                if rule.matches(label):
                    rule.remaining -= 1
                    if rule.remaining <= 0:
                        self._rules.remove(rule)
                    logger.info("fault for %r: %s", label, "drop" if rule.status is None else rule.status)
                    return Rule(rule.status, 1, rule.match, rule.retry_after)
            return None

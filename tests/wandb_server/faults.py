"""Fault injection for the W&B test server: error bursts, dropped connections, latency, being down.

All state is guarded by one lock; handler threads ask `take(label)` once per request. Everything is
bounded: a rule fires `count` times, latency is a fixed per-request sleep capped at MAX_LATENCY.
"""

from __future__ import annotations

import dataclasses
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
    # True: let the request take effect, then fail/drop its response (the client retries it).
    after_processing: bool = False
    # A substring the request body must contain, e.g. "wandb-history.jsonl" to hit only the
    # file_stream requests that carry history rows.
    body_match: str = ""
    # An exact GraphQL operation name. Needed on the read side, where substrings are ambiguous:
    # match="Run" would also hit RunHistoryKeys, RunSampledHistory and RunResumeStatus.
    operation: str = ""

    def matches(self, label: str, body: bytes, operation: str = "") -> bool:
        # "" matches anything; otherwise a substring of "<path> <graphql operation>", so both
        # match="UpsertBucket" and match="file_stream" work.
        return self.match in label and self.body_match.encode() in body and self.operation in ("", operation)

    def to_json(self) -> Dict[str, Any]:
        return {
            "status": self.status,
            "remaining": self.remaining,
            "match": self.match,
            "retry_after": self.retry_after,
            "after_processing": self.after_processing,
            "body_match": self.body_match,
            "operation": self.operation,
        }


class Faults:
    """Given test instructions, decide per request whether to delay, fail, drop or refuse it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: List[Rule] = []
        self._latency = 0.0
        self._down = False

    def inject(
        self,
        status: int,
        count: int = 1,
        match: str = "",
        retry_after: Optional[float] = None,
        after_processing: bool = False,
        body_match: str = "",
        operation: str = "",
    ) -> None:
        """Given an HTTP status, answer the next `count` requests matching `match` with it."""
        if not 100 <= int(status) <= 599 or count < 1:
            raise ValueError("inject needs a status in 100..599 and count >= 1")
        with self._lock:
            self._rules.append(
                Rule(int(status), int(count), match, retry_after, after_processing, body_match, operation)
            )

    def drop_connections(
        self,
        count: int = 1,
        match: str = "",
        after_processing: bool = False,
        body_match: str = "",
        operation: str = "",
    ) -> None:
        """Given a count, close the next `count` matching connections without any response."""
        if count < 1:
            raise ValueError("count must be >= 1")
        with self._lock:
            self._rules.append(Rule(None, int(count), match, None, after_processing, body_match, operation))

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

    def take(self, label: str, body: bytes = b"", operation: str = "") -> Optional[Rule]:
        """Given a request label, body and GraphQL operation, consume and return the first matching rule.

        None means: serve the request normally.
        """
        with self._lock:
            for rule in self._rules:
                if rule.matches(label, body, operation):
                    rule.remaining -= 1
                    if rule.remaining <= 0:
                        self._rules.remove(rule)
                    logger.info("fault for %r: %s", label, "drop" if rule.status is None else rule.status)
                    return dataclasses.replace(rule, remaining=1)
            return None

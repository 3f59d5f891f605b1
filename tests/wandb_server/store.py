"""In-memory state of the W&B test server: runs, their history/summary/config, files and artifacts.

Every public method takes the store lock, so HTTP handler threads and test code can call them
concurrently. Readers get deep copies (snapshots), never live objects.
"""

from __future__ import annotations

import copy
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

logger = logging.getLogger(__name__)

DEFAULT_ENTITY = "test-entity"
DEFAULT_PROJECT = "uncategorized"
# The files the SDK streams through file_stream, and what we keep for each.
HISTORY_FILE = "wandb-history.jsonl"
SUMMARY_FILE = "wandb-summary.json"
EVENTS_FILE = "wandb-events.jsonl"
OUTPUT_FILE = "output.log"

RunKey = Tuple[str, str, str]


class DeletedRunError(Exception):
    """Given a run id that was deleted, upserting or resuming it fails like W&B does (HTTP 409)."""

    def __init__(self, key: RunKey) -> None:
        entity, project, run_id = key
        super().__init__(
            "run {}/{}/{} was previously created and deleted; try a new run id".format(
                entity, project, run_id
            )
        )


@dataclass
class RunRecord:
    """One W&B run ("bucket") as the server stores it. `name` is the display name, `run_id` the id."""

    entity: str
    project: str
    run_id: str
    storage_id: str
    name: Optional[str] = None
    group: Optional[str] = None
    job_type: Optional[str] = None
    notes: Optional[str] = None
    tags: List[str] = field(default_factory=list)
    # Config as W&B stores it: {key: {"value": v, "desc": ...}}; `config` unwraps it.
    raw_config: Dict[str, Any] = field(default_factory=dict)
    summary: Dict[str, Any] = field(default_factory=dict)
    # Streamed files, one slot per line index (None = a gap the client has not filled yet).
    lines: Dict[str, List[Optional[str]]] = field(default_factory=dict)
    # Lines received per streamed file, counting re-sent ones: more than the line count proves the
    # client retried a chunk (and the offsets kept it from duplicating rows).
    lines_received: Dict[str, int] = field(default_factory=dict)
    files: Dict[str, bytes] = field(default_factory=dict)
    artifacts: List[Dict[str, Any]] = field(default_factory=list)
    state: str = "running"
    exitcode: Optional[int] = None
    deleted: bool = False
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)

    @property
    def key(self) -> RunKey:
        return (self.entity, self.project, self.run_id)

    @property
    def config(self) -> Dict[str, Any]:
        """Given the wrapped config, return plain values (the SDK's `_wandb` key is left out)."""
        return {
            k: (v.get("value") if isinstance(v, dict) else v)
            for k, v in self.raw_config.items()
            if k != "_wandb"
        }

    @property
    def history(self) -> List[Dict[str, Any]]:
        """Given the streamed history lines, return the parsed rows in line order (gaps skipped)."""
        return [json.loads(line) for line in self.lines.get(HISTORY_FILE, []) if line is not None]

    @property
    def tables(self) -> List[str]:
        """Names of the committed artifacts of type run_table (what `run.log({"t": wandb.Table})` makes)."""
        return [a["name"] for a in self.artifacts if a["type"] == "run_table" and a["state"] == "COMMITTED"]

    def line_count(self, name: str) -> int:
        return len(self.lines.get(name, []))

    def to_json(self) -> Dict[str, Any]:
        """Given this run, return the JSON shape `GET /_test/runs` serves."""
        return {
            "entity": self.entity,
            "project": self.project,
            "run_id": self.run_id,
            "name": self.name,
            "group": self.group,
            "job_type": self.job_type,
            "tags": self.tags,
            "config": self.config,
            "summary": self.summary,
            "history": self.history,
            "state": self.state,
            "exitcode": self.exitcode,
            "deleted": self.deleted,
            "files": sorted(self.files),
            "artifacts": [{k: a[k] for k in ("name", "type", "state")} for a in self.artifacts],
            "tables": self.tables,
        }


class Store:
    """Given GraphQL/file_stream calls, keep runs thread-safely; given test queries, return snapshots."""

    def __init__(self, default_entity: str = DEFAULT_ENTITY) -> None:
        self.default_entity = default_entity
        self._lock = threading.RLock()
        self._runs: Dict[RunKey, RunRecord] = {}
        self._artifacts: Dict[str, Dict[str, Any]] = {}
        self._counter = 0

    # ---- identifiers -------------------------------------------------------------------------
    def new_id(self, prefix: str) -> str:
        with self._lock:
            self._counter += 1
            return "{}-{}".format(prefix, self._counter)

    def resolve(self, entity: Optional[str], project: Optional[str], run_id: str) -> RunKey:
        """Given possibly-missing entity/project, return the key W&B would use (defaults filled in)."""
        return (entity or self.default_entity, project or DEFAULT_PROJECT, run_id)

    # ---- runs --------------------------------------------------------------------------------
    def get(self, key: RunKey) -> Optional[RunRecord]:
        with self._lock:
            run = self._runs.get(key)
            return copy.deepcopy(run) if run is not None else None

    def upsert(self, key: RunKey, fields: Dict[str, Any]) -> Tuple[RunRecord, bool]:
        """Given a run key and the non-null UpsertBucket fields, create/update the run.

        Returns (snapshot, inserted). Raises DeletedRunError for a deleted run id.
        """
        with self._lock:
            run = self._runs.get(key)
            if run is not None and run.deleted:
                raise DeletedRunError(key)
            inserted = run is None
            if run is None:
                run = RunRecord(entity=key[0], project=key[1], run_id=key[2], storage_id=self.new_id("run"))
                self._runs[key] = run
            for attr, value in fields.items():
                setattr(run, attr, value)
            run.updated_at = time.time()
            return copy.deepcopy(run), inserted

    def delete(self, key: RunKey) -> None:
        """Given a run key, mark the run deleted (creating a tombstone if it never existed)."""
        with self._lock:
            run = self._runs.get(key)
            if run is None:
                run = RunRecord(entity=key[0], project=key[1], run_id=key[2], storage_id=self.new_id("run"))
                self._runs[key] = run
            run.deleted = True

    def runs(self, include_deleted: bool = False) -> List[RunRecord]:
        with self._lock:
            return [copy.deepcopy(r) for r in self._runs.values() if include_deleted or not r.deleted]

    def find(
        self, run_id: str, project: Optional[str] = None, entity: Optional[str] = None
    ) -> Optional[RunRecord]:
        """Given a run id (and optional project/entity filters), return the latest-updated live match."""
        with self._lock:
            matches = [
                r
                for r in self._runs.values()
                if r.run_id == run_id
                and not r.deleted
                and project in (None, r.project)
                and entity in (None, r.entity)
            ]
            if not matches:
                return None
            return copy.deepcopy(max(matches, key=lambda r: r.updated_at))

    # ---- file_stream -------------------------------------------------------------------------
    def stream(
        self, key: RunKey, files: Dict[str, Any], complete: Optional[bool], exitcode: Optional[int]
    ) -> None:
        """Given one file_stream request body, write each file's lines at its offset.

        Writing at the offset (instead of appending) is what makes the SDK's retries harmless:
        a retried chunk lands on the same line indexes again.
        """
        with self._lock:
            run = self._runs.get(key)
            if run is None:
                # W&B creates the bucket on UpsertBucket first; a stream for an unknown run is a client
                # bug, but keep the data so a test can see it.
                logger.warning("file_stream for unknown run %s; creating it", key)
                run = RunRecord(entity=key[0], project=key[1], run_id=key[2], storage_id=self.new_id("run"))
                self._runs[key] = run
            if run.deleted:
                raise DeletedRunError(key)
            for name, chunk in files.items():
                self._write_chunk(run, name, int(chunk.get("offset", 0)), chunk.get("content") or [])
            if complete:
                run.state = "finished" if not exitcode else "failed"
                run.exitcode = exitcode
            run.updated_at = time.time()

    @staticmethod
    def _write_chunk(run: RunRecord, name: str, offset: int, content: List[str]) -> None:
        run.lines_received[name] = run.lines_received.get(name, 0) + len(content)
        if name == SUMMARY_FILE:
            # The summary is sent whole each time; the last line is the latest state.
            if content:
                run.summary = json.loads(content[-1])
            return
        lines = run.lines.setdefault(name, [])
        if offset > len(lines):
            logger.warning(
                "%s of %s: offset %d beyond %d lines; leaving a gap", name, run.run_id, offset, len(lines)
            )
            lines.extend([None] * (offset - len(lines)))
        for index, line in enumerate(content):
            if offset + index < len(lines):
                lines[offset + index] = line
            else:
                lines.append(line)

    # ---- run files and artifacts -------------------------------------------------------------
    def save_run_file(self, key: RunKey, name: str, data: bytes) -> None:
        with self._lock:
            run = self._runs.get(key)
            if run is not None:
                run.files[name] = data

    def create_artifact(self, key: RunKey, name: str, type_name: str, digest: str) -> Dict[str, Any]:
        with self._lock:
            artifact = {
                "id": self.new_id("artifact"),
                "name": name,
                "type": type_name,
                "digest": digest,
                "state": "PENDING",
                "files": {},
                "run": key,
            }
            self._artifacts[artifact["id"]] = artifact
            run = self._runs.get(key)
            if run is not None:
                run.artifacts.append(artifact)
            return dict(artifact)

    def artifact_file(self, artifact_id: str, name: str, data: bytes) -> None:
        with self._lock:
            artifact = self._artifacts.get(artifact_id)
            if artifact is not None:
                artifact["files"][name] = data

    def commit_artifact(self, artifact_id: str) -> Optional[Dict[str, Any]]:
        with self._lock:
            artifact = self._artifacts.get(artifact_id)
            if artifact is not None:
                artifact["state"] = "COMMITTED"
                return dict(artifact)
            return None

    def artifact(self, artifact_id: str) -> Optional[Dict[str, Any]]:
        with self._lock:
            artifact = self._artifacts.get(artifact_id)
            return copy.deepcopy(artifact) if artifact is not None else None

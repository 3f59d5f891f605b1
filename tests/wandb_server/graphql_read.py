"""The GraphQL operations wandb 0.31.0's public API (`wandb.Api()`) sends to READ runs and their history.

Two senders, both through wandb-core's HTTP client (so with its retries):
- the Python side (wandb/apis/public/runs.py) sends query texts without `operationName`; the name
  comes from the query text: `GetDefaultEntity`, `Run`, `RunHistoryKeys`, `RunSampledHistory`
  (`run.history(keys=...)`), `RunFullHistory` (`run.history()`), `RunState`;
- wandb-core's history reader (`run.scan_history`) sends `RunParquetHistory` once per scan, then one
  `HistoryPage` (no keys) or `SampledHistoryPage` (with keys) per page of `_step` values.
The run is named by the variable `name` (Python), `run` or `runName` (wandb-core).

Like W&B: an unknown project answers `project: null`, an absent or deleted run `run: null` (the SDK
turns either into "Could not find run ..."). We export no parquet files: every row is "live data".
"""

from __future__ import annotations

import json
import logging
import time
import zlib
from typing import Any, Callable, Dict, List, Optional, Tuple

from .graphql import Context, operation
from .history_view import Row, history_keys, in_range, readable_rows, sample, with_keys
from .store import DEFAULT_PROJECT, HISTORY_FILE, RunRecord

logger = logging.getLogger(__name__)


def _find(ctx: Context, variables: Dict[str, Any]) -> Tuple[bool, Optional[RunRecord]]:
    """Given a read query's variables, return (project exists, the live run or None)."""
    entity = variables.get("entity") or ctx.store.default_entity
    project = variables.get("project") or DEFAULT_PROJECT
    run_id = variables.get("name") or variables.get("run") or variables.get("runName") or ""
    run = ctx.store.get((entity, project, run_id))
    # Deleting a run leaves its project in place; only a project nobody ever wrote to is unknown.
    project_exists = run is not None or any(
        r.entity == entity and r.project == project for r in ctx.store.runs(include_deleted=True)
    )
    return project_exists, run if run is not None and not run.deleted else None


def _in_project(
    ctx: Context, variables: Dict[str, Any], build: Callable[[RunRecord], Dict[str, Any]]
) -> Dict[str, Any]:
    """Given variables and a builder for the run's fields, wrap them as `project { run { ... } }`."""
    project_exists, run = _find(ctx, variables)
    if not project_exists:
        return {"project": None}
    return {"project": {"run": build(run) if run is not None else None}}


def _rows(ctx: Context, run: RunRecord) -> List[Row]:
    return readable_rows(run, ctx.history_lag.hidden(run.key))


def _iso(timestamp: float) -> str:
    # W&B's timestamps: ISO 8601 in UTC without a zone suffix.
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(timestamp))


@operation("GetDefaultEntity")
def default_entity(ctx: Context, _: Dict[str, Any]) -> Dict[str, Any]:
    """Given nothing, name the viewer's entity: `Api.run(path)` asks even when the path has one."""
    return {"viewer": {"id": "user-1", "entity": ctx.store.default_entity}}


@operation("Run")
def run_fields(ctx: Context, variables: Dict[str, Any]) -> Dict[str, Any]:
    """Given entity/project/name, return the RunFragment fields `Api.run()` loads.

    config, summaryMetrics and systemMetrics are JSONString fields (JSON text inside JSON); config
    keeps W&B's `{"key": {"value": v}}` form, which the SDK unwraps. historyKeys is a JSON object.
    historyLineCount counts every streamed line, lagging rows included: it is the reader's truth.
    """

    def build(run: RunRecord) -> Dict[str, Any]:
        return {
            # The SDK does int(projectId); any stable integer per project will do.
            "projectId": zlib.crc32("{}/{}".format(run.entity, run.project).encode()) % 1_000_000,
            "id": run.storage_id,
            "tags": run.tags,
            "name": run.run_id,
            "displayName": run.name,
            "sweepName": None,
            "state": run.state,
            "config": json.dumps(run.raw_config),
            "group": run.group,
            "jobType": run.job_type,
            "commit": None,
            "readOnly": False,
            "createdAt": _iso(run.created_at),
            "heartbeatAt": _iso(run.updated_at),
            "description": run.notes,
            "notes": run.notes,
            "systemMetrics": json.dumps({}),
            "summaryMetrics": json.dumps(run.summary),
            "historyLineCount": run.line_count(HISTORY_FILE),
            "user": {"name": "test-user", "username": "test-user"},
            "historyKeys": history_keys(_rows(ctx, run)),
        }

    return _in_project(ctx, variables, build)


@operation("RunState")
def run_state(ctx: Context, variables: Dict[str, Any]) -> Dict[str, Any]:
    """Given a run, return its id and state (`Run.wait_until_finished` polls this)."""
    return _in_project(ctx, variables, lambda run: {"id": run.storage_id, "state": run.state})


@operation("RunHistoryKeys")
def run_history_keys(ctx: Context, variables: Dict[str, Any]) -> Dict[str, Any]:
    """Given a run, return historyKeys: `Run.lastHistoryStep` (and so every scan_history) reads it."""
    return _in_project(ctx, variables, lambda run: {"historyKeys": history_keys(_rows(ctx, run))})


def _sampled_history(ctx: Context, run: RunRecord, specs: List[Any]) -> List[List[Dict[str, Any]]]:
    """Given JSON specs {keys, minStep?, maxStep?, samples?}, return one list of rows per spec.

    A spec's maxStep is INCLUSIVE (unlike HistoryPage's): wandb-core's scan sends the page's
    exclusive end minus 1 for exactly that reason (core/internal/runhistoryreader/livedata.go).
    """
    rows = _rows(ctx, run)
    results = []
    for spec in specs:
        spec = json.loads(spec) if isinstance(spec, str) else spec
        max_step = spec.get("maxStep")
        selected = in_range(rows, spec.get("minStep"), None if max_step is None else max_step + 1)
        keys = spec.get("keys") or []
        projected = with_keys(selected, keys) if keys else [row for _, _, row in selected]
        results.append(sample(projected, spec.get("samples")))
    return results


@operation("RunSampledHistory")
def run_sampled_history(ctx: Context, variables: Dict[str, Any]) -> Dict[str, Any]:
    """Given `specs` (a list of JSON strings), serve `run.history(keys=[...])`: rows holding all keys."""
    specs = variables.get("specs") or []
    return _in_project(ctx, variables, lambda run: {"sampledHistory": _sampled_history(ctx, run, specs)})


@operation("SampledHistoryPage")
def sampled_history_page(ctx: Context, variables: Dict[str, Any]) -> Dict[str, Any]:
    """Given one JSON `spec` with a step range, serve a page of `scan_history(keys=[...])`."""
    spec = variables.get("spec") or "{}"
    return _in_project(ctx, variables, lambda run: {"sampledHistory": _sampled_history(ctx, run, [spec])})


def _history_lines(ctx: Context, run: RunRecord, variables: Dict[str, Any]) -> List[str]:
    """Given optional minStep/maxStep and samples, return the rows as streamed (JSON line strings)."""
    selected = in_range(_rows(ctx, run), variables.get("minStep"), variables.get("maxStep"))
    return sample([line for _, line, _ in selected], variables.get("samples"))


@operation("RunFullHistory")
def run_full_history(ctx: Context, variables: Dict[str, Any]) -> Dict[str, Any]:
    """Given `samples`, serve `run.history()` without keys: whole rows as JSON strings."""
    return _in_project(ctx, variables, lambda run: {"history": _history_lines(ctx, run, variables)})


@operation("HistoryPage")
def history_page(ctx: Context, variables: Dict[str, Any]) -> Dict[str, Any]:
    """Given minStep (inclusive), maxStep (exclusive) and pageSize, serve a page of `scan_history()`."""
    page = dict(variables, samples=variables.get("pageSize"))
    return _in_project(ctx, variables, lambda run: {"history": _history_lines(ctx, run, page)})


@operation("RunParquetHistory")
def run_parquet_history(ctx: Context, variables: Dict[str, Any]) -> Dict[str, Any]:
    """Given liveKeys (wandb-core asks for ["_step"]), list parquet exports (none) and the live rows.

    wandb-core only pages through steps from the smallest live `_step` on: an empty liveData makes
    scan_history return nothing at all, so every readable row must be listed here.
    """
    live_keys = variables.get("liveKeys") or ["_step"]

    def build(run: RunRecord) -> Dict[str, Any]:
        live = [{key: row[key] for key in live_keys if key in row} for _, _, row in _rows(ctx, run)]
        return {"parquetHistory": {"parquetUrls": [], "liveData": live}}

    return _in_project(ctx, variables, build)

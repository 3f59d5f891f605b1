"""The GraphQL operations the wandb SDK (0.31.0, its Go `wandb-core`) sends, answered from the Store.

There is no GraphQL parser here: the SDK sends `operationName` with every request (genqlient does),
and each operation has a fixed query text (see the strings in `wandb/bin/wandb-core`), so one
handler per operation returning the exact response shape is enough. Unknown operations are logged
with their query text and answered with `{}` so a new SDK call is easy to discover.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Dict

from .history_view import HistoryLag
from .store import HISTORY_FILE, DeletedRunError, Store

logger = logging.getLogger(__name__)

# How many trailing history lines RunResumeStatus returns (W&B returns a short tail, the SDK only
# reads the last one to find `_step`).
HISTORY_TAIL_LINES = 10


class GraphQLError(Exception):
    """Given a failed operation, carry the HTTP status and message for the `errors` response."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Context:
    """What a handler needs besides its variables: the store, the URL clients reach us at, the read lag."""

    store: Store
    base_url: str
    history_lag: HistoryLag = field(default_factory=HistoryLag)


Handler = Callable[[Context, Dict[str, Any]], Dict[str, Any]]
HANDLERS: Dict[str, Handler] = {}


def operation(name: str) -> Callable[[Handler], Handler]:
    def register(func: Handler) -> Handler:
        HANDLERS[name] = func
        return func

    return register


def operation_name(body: Dict[str, Any]) -> str:
    """Given a GraphQL request body, return its operation name (from the field, else the query text)."""
    name = body.get("operationName")
    if name:
        return str(name)
    match = re.search(r"\b(?:query|mutation)\s+(\w+)", body.get("query") or "")
    return match.group(1) if match else ""


def execute(ctx: Context, body: Dict[str, Any]) -> Dict[str, Any]:
    """Given a GraphQL request body, return the `data` object; raise GraphQLError on failure."""
    name = operation_name(body)
    handler = HANDLERS.get(name)
    if handler is None:
        logger.warning("unknown GraphQL operation %r; answering {}. Query: %s", name, body.get("query"))
        return {}
    return handler(ctx, body.get("variables") or {})


def _entity_json(name: str) -> Dict[str, Any]:
    return {"id": "entity-" + name, "name": name}


# ---- viewer and server ---------------------------------------------------------------------------
@operation("Viewer")
def viewer(ctx: Context, _: Dict[str, Any]) -> Dict[str, Any]:
    entity = ctx.store.default_entity
    return {
        "viewer": {
            "id": "user-1",
            "entity": entity,
            "username": "test-user",
            "email": "test-user@example.invalid",
            # `flags` is a JSONString field.
            "flags": "{}",
            "teams": {"edges": [{"node": {"name": entity}}]},
        }
    }


@operation("ServerFeaturesQuery")
def server_features(_: Context, __: Dict[str, Any]) -> Dict[str, Any]:
    # An empty feature list makes the SDK take its conservative (older-server) code paths.
    return {"serverInfo": {"features": []}}


@operation("XXHashDigestsEnabled")
def xxhash_enabled(_: Context, variables: Dict[str, Any]) -> Dict[str, Any]:
    return {"entity": {"xxhashDigestsEnabled": False}}


@operation("FetchOrgEntityFromEntity")
def org_entity(ctx: Context, variables: Dict[str, Any]) -> Dict[str, Any]:
    name = variables.get("entityName") or ctx.store.default_entity
    return {"entity": {"organization": {"name": name + "-org", "orgEntity": {"name": name}}}}


# ---- runs ----------------------------------------------------------------------------------------
@operation("RunResumeStatus")
def run_resume_status(ctx: Context, variables: Dict[str, Any]) -> Dict[str, Any]:
    """Given project/entity/name, return the bucket (or null) the SDK resumes from.

    Quirks: summaryMetrics, config, historyTail, eventsTail and wandbConfig are JSONString fields
    (JSON text inside JSON); historyTail is a JSON list of *line strings*; the SDK continues at
    `_step` of the last tail line + 1 and streams history from `historyLineCount`.
    """
    key = ctx.store.resolve(variables.get("entity"), variables.get("project"), variables["name"])
    run = ctx.store.get(key)
    project = {"id": "project-" + key[1], "name": key[1], "entity": _entity_json(key[0])}
    if run is None or run.deleted:
        # Real W&B does not find a deleted run here either; the 409 comes at UpsertBucket.
        return {"model": dict(project, bucket=None)}
    history = [line for line in run.lines.get(HISTORY_FILE, []) if line is not None]
    wandb_value = run.raw_config.get("_wandb", {}).get("value", {})
    bucket = {
        "id": run.storage_id,
        "name": run.run_id,
        "displayName": run.name,
        "summaryMetrics": json.dumps(run.summary),
        "logLineCount": run.line_count("output.log"),
        "historyLineCount": run.line_count(HISTORY_FILE),
        "eventsLineCount": run.line_count("wandb-events.jsonl"),
        "historyTail": json.dumps(history[-HISTORY_TAIL_LINES:]),
        "eventsTail": json.dumps([]),
        "config": json.dumps(run.raw_config),
        "tags": run.tags,
        "notes": run.notes,
        # Measured: without "t" (the telemetry block) in wandbConfig the SDK silently ignores the
        # resume data: starting_step 0, so the next row repeats `_step` 0.
        "wandbConfig": json.dumps({"t": wandb_value.get("t", {})}),
    }
    return {"model": dict(project, bucket=bucket)}


# UpsertBucket variable -> RunRecord attribute (only non-null variables are applied).
_UPSERT_FIELDS = {
    "displayName": "name",
    "groupName": "group",
    "jobType": "job_type",
    "notes": "notes",
    "tags": "tags",
    "state": "state",
}


@operation("UpsertBucket")
def upsert_bucket(ctx: Context, variables: Dict[str, Any]) -> Dict[str, Any]:
    """Given the run fields, create/update the run; return it with historyLineCount (the SDK's offset)."""
    key = ctx.store.resolve(variables.get("entity"), variables.get("project"), variables.get("name") or "")
    if not key[2]:
        key = (key[0], key[1], ctx.store.new_id("run-id"))
    fields = {attr: variables[var] for var, attr in _UPSERT_FIELDS.items() if variables.get(var) is not None}
    if variables.get("config") is not None:
        fields["raw_config"] = json.loads(variables["config"])
    if variables.get("summaryMetrics") is not None:
        fields["summary"] = json.loads(variables["summaryMetrics"])
    try:
        run, inserted = ctx.store.upsert(key, fields)
    except DeletedRunError as error:
        raise GraphQLError(409, str(error)) from error
    bucket = {
        "id": run.storage_id,
        "name": run.run_id,
        "displayName": run.name,
        "description": run.notes,
        "config": json.dumps(run.raw_config),
        "sweepName": None,
        "project": {"id": "project-" + run.project, "name": run.project, "entity": _entity_json(run.entity)},
        "historyLineCount": run.line_count(HISTORY_FILE),
    }
    return {"upsertBucket": {"bucket": bucket, "inserted": inserted}}


@operation("CreateRunFiles")
def create_run_files(ctx: Context, variables: Dict[str, Any]) -> Dict[str, Any]:
    """Given file names, hand out upload URLs on this server (like signed storage URLs: no auth)."""
    key = ctx.store.resolve(variables.get("entity"), variables.get("project"), variables["run"])
    run = ctx.store.get(key)
    files = [
        {"name": name, "uploadUrl": "{}/_storage/run/{}/{}/{}/{}".format(ctx.base_url, *key, name)}
        for name in variables.get("files") or []
    ]
    return {
        "createRunFiles": {"runID": run.storage_id if run else key[2], "uploadHeaders": [], "files": files}
    }


@operation("MarkRunFilesUploaded")
def mark_run_files_uploaded(_: Context, __: Dict[str, Any]) -> Dict[str, Any]:
    return {"markRunFilesUploaded": {"success": True}}


from . import graphql_artifacts, graphql_read  # noqa: E402,F401  (register their operations)

"""HTTP test endpoints (/_test/...) for driving a standalone server from another process or container.

  GET  /_test/health    -> {"ok": true}
  GET  /_test/runs      -> {"runs": [run JSON with history/summary/config/...]} (RunRecord.to_json)
  GET  /_test/requests  -> {"requests": [[method, path, graphql operation], ...]}
  POST /_test/faults    <- {"inject": {status, count, match, retry_after, after_processing,
                                       body_match, operation} or a list of them,
                            "drop": {count, match, after_processing, body_match, operation},
                            "latency": seconds, "down": bool,
                            "history_lag": {run_id, rows, project, entity} or a list of them,
                            "clear": bool, "reset_requests": bool}
  POST /_test/delete    <- {"run_id": ..., "project": ..., "entity": ...}
These need no auth and are never faulted, so a test can always reach them; "down" here only makes
the W&B routes reset their connections (the listener stays up, or nobody could bring it back).
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any, Dict

if TYPE_CHECKING:
    from .handler import Handler

logger = logging.getLogger(__name__)


def handle(req: "Handler", path: str, body: bytes) -> None:
    """Given a /_test/ request, answer it (400 on a malformed body, 404 on an unknown endpoint)."""
    app = req.app
    try:
        payload = json.loads(body) if body else {}
        if req.command == "GET" and path == "/_test/health":
            req.send_json(200, {"ok": True, "url": app.url})
        elif req.command == "GET" and path == "/_test/runs":
            req.send_json(200, {"runs": [run.to_json() for run in app.runs()]})
        elif req.command == "GET" and path == "/_test/requests":
            req.send_json(200, {"requests": [list(r) for r in app.requests]})
        elif req.command == "POST" and path == "/_test/faults":
            apply_faults(app, payload)
            req.send_json(
                200,
                {
                    "pending": app.faults.pending(),
                    "latency": app.faults.latency,
                    "down": app.faults.down,
                    "history_lag": app.history_lag.to_json(),
                },
            )
        elif req.command == "POST" and path == "/_test/delete":
            app.delete_run(payload.get("entity"), payload.get("project"), payload["run_id"])
            req.send_json(200, {"deleted": payload["run_id"]})
        else:
            req.send_json(404, {"error": "unknown test endpoint {} {}".format(req.command, path)})
    except (ValueError, KeyError, TypeError) as error:
        req.send_json(400, {"error": "bad test request: {}".format(error)})


def apply_faults(app: Any, payload: Dict[str, Any]) -> None:
    """Given a /_test/faults body, apply it in a fixed order: clear first, then the rest."""
    if payload.get("clear"):
        app.faults.clear()
        app.history_lag.clear()
    if payload.get("reset_requests"):
        app.reset_requests()
    injects = payload.get("inject") or []
    for spec in injects if isinstance(injects, list) else [injects]:
        app.inject(**spec)
    if payload.get("drop"):
        app.drop_connections(**payload["drop"])
    lags = payload.get("history_lag") or []
    for spec in lags if isinstance(lags, list) else [lags]:
        app.set_history_lag(**spec)
    if "latency" in payload:
        app.set_latency(float(payload["latency"]))
    if "down" in payload:
        app.set_down(bool(payload["down"]), refuse=False)

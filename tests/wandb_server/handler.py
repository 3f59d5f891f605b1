"""HTTP request handling for the W&B test server: auth, faults, routing to GraphQL/file_stream/storage.

Routes (the subset wandb 0.31's wandb-core uses, plus the test endpoints):
  POST /graphql                                   GraphQL operations (graphql.py)
  POST /files/{entity}/{project}/{run}/file_stream  history/summary/events/console lines at offsets
  PUT  /_storage/...                              uploads to the URLs CreateRunFiles/artifacts hand out
  GET  /_test/health, GET /_test/runs, GET /_test/requests, POST /_test/faults, POST /_test/delete
"""

from __future__ import annotations

import base64
import gzip
import hmac
import json
import logging
import socket
import struct
import time
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any, Dict, Optional, Tuple
from urllib.parse import unquote, urlsplit

from . import graphql, testapi
from .faults import Rule
from .store import DeletedRunError

if TYPE_CHECKING:
    from .server import WandbTestServer

logger = logging.getLogger(__name__)


class Handler(BaseHTTPRequestHandler):
    """Given one HTTP request, apply faults and auth, then answer it from the server's store."""

    # HTTP/1.1 keep-alive, like W&B behind its load balancer; Go's client reuses connections.
    protocol_version = "HTTP/1.1"
    # Idle keep-alive connections are closed after this, so stopped servers do not pin threads.
    timeout = 60
    app: "WandbTestServer"  # set on the subclass the server creates
    _pending_fault: Optional[Rule] = None

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib signature)
        logger.debug("%s %s", self.address_string(), format % args)

    # ---- the pipeline ------------------------------------------------------------------------
    def _dispatch(self) -> None:
        self._pending_fault = None
        path = unquote(urlsplit(self.path).path)
        body = self._read_body()
        if path.startswith("/_test/"):
            testapi.handle(self, path, body)
            return
        gql_body = self._json(body) if path == "/graphql" else None
        op = graphql.operation_name(gql_body) if isinstance(gql_body, dict) else ""
        self.app.record(self.command, path, op)
        if not self._survives_faults("{} {}".format(path, op).strip(), body, op):
            return
        if not path.startswith("/_storage/") and not self._authorized():
            self.send_json(401, {"errors": [{"message": "invalid API key (401 Unauthorized)"}]})
            return
        self._route(path, body, gql_body)

    def _survives_faults(self, label: str, body: bytes, operation: str) -> bool:
        """Given the request, apply down/latency/fault rules; False when the request was answered."""
        if self.app.faults.down:
            self.reset()
            return False
        latency = self.app.faults.latency
        if latency:
            time.sleep(latency)
        rule = self.app.faults.take(label, body, operation)
        if rule is not None and not rule.after_processing:
            self._send_fault(rule)
            return False
        # An after-processing fault lets the request take effect, then replaces the response
        # (send_json picks it up): the client believes it failed and retries what we already have.
        self._pending_fault = rule
        return True

    def _send_fault(self, rule: Rule) -> None:
        if rule.status is None:
            self.reset()
            return
        headers = {"Retry-After": str(rule.retry_after)} if rule.retry_after is not None else {}
        message = {"errors": [{"message": "injected fault {}".format(rule.status)}]}
        self._write_json(rule.status, message, headers)

    def _authorized(self) -> bool:
        # The SDK sends HTTP Basic auth with user "api" and the API key as password.
        header = self.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return False
        return user == "api" and hmac.compare_digest(password.encode(), self.app.api_key.encode())

    def _route(self, path: str, body: bytes, gql_body: Optional[Any]) -> None:
        if path == "/graphql" and self.command == "POST":
            self._graphql(gql_body)
        elif path.startswith("/files/") and path.endswith("/file_stream") and self.command == "POST":
            self._file_stream(path, body)
        elif path.startswith("/_storage/") and self.command == "PUT":
            self.app.save_upload(path[len("/_storage/") :], body)
            self.send_json(200, {})
        else:
            logger.warning("unhandled %s %s (%d bytes)", self.command, path, len(body))
            self.send_json(404, {"errors": [{"message": "not found: {}".format(path)}]})

    def _graphql(self, gql_body: Optional[Any]) -> None:
        if not isinstance(gql_body, dict):
            self.send_json(400, {"errors": [{"message": "request body is not a GraphQL JSON object"}]})
            return
        ctx = graphql.Context(
            self.app.store,
            "http://{}".format(self.headers.get("Host") or self.app.netloc),
            self.app.history_lag,
        )
        try:
            data = graphql.execute(ctx, gql_body)
        except graphql.GraphQLError as error:
            logger.info("GraphQL %s -> %d %s", graphql.operation_name(gql_body), error.status, error.message)
            self.send_json(error.status, {"errors": [{"message": error.message}], "data": None})
            return
        self.send_json(200, {"data": data})

    def _file_stream(self, path: str, body: bytes) -> None:
        key = _file_stream_key(path)
        payload = self._json(body)
        if key is None or not isinstance(payload, dict):
            self.send_json(400, {"error": "bad file_stream request"})
            return
        try:
            self.app.store.stream(
                key, payload.get("files") or {}, payload.get("complete"), payload.get("exitcode")
            )
        except DeletedRunError as error:
            self.send_json(409, {"error": str(error)})
            return
        # The legacy Python client read "exitcode" and "limits" from this reply; wandb-core ignores it.
        self.send_json(200, {"exitcode": None, "limits": {}})

    # ---- low-level helpers -------------------------------------------------------------------
    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = self._read_chunked()
        else:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.headers.get("Content-Encoding", "").lower() == "gzip" and body:
            body = gzip.decompress(body)
        return body

    def _read_chunked(self) -> bytes:
        parts = []
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                self.rfile.readline()
                return b"".join(parts)
            parts.append(self.rfile.read(size))
            self.rfile.readline()

    @staticmethod
    def _json(body: bytes) -> Optional[Any]:
        try:
            return json.loads(body or b"null")
        except ValueError:
            return None

    def send_json(self, status: int, payload: Any, headers: Optional[Dict[str, str]] = None) -> None:
        """Given a status and a JSON payload, answer with it (or with the pending after-processing fault)."""
        rule, self._pending_fault = self._pending_fault, None
        if rule is not None:
            self._send_fault(rule)
        else:
            self._write_json(status, payload, headers)

    def _write_json(self, status: int, payload: Any, headers: Optional[Dict[str, str]] = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def reset(self) -> None:
        """Close the connection with a TCP RST and no response (the client sees "connection reset")."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass

    def finish(self) -> None:
        # After reset() the socket is gone; flushing it would raise.
        try:
            super().finish()
        except OSError:
            pass


def _file_stream_key(path: str) -> Optional[Tuple[str, str, str]]:
    parts = path.strip("/").split("/")
    if len(parts) != 5:
        return None
    return parts[1], parts[2], parts[3]

"""WandbTestServer: a threaded HTTP server speaking the W&B protocol subset wandb 0.31.0 uses.

Usage (in-process):
    with WandbTestServer() as server:
        env = server.env()            # WANDB_BASE_URL, WANDB_API_KEY, ... for the SDK
        ...
        server.run("my-run-id").history
"""

from __future__ import annotations

import logging
import sys
import tempfile
import threading
import time
from http.server import ThreadingHTTPServer
from typing import Any, Dict, List, Optional, Tuple

from .faults import Faults
from .handler import Handler
from .history_view import HistoryLag
from .store import DEFAULT_ENTITY, RunRecord, Store

logger = logging.getLogger(__name__)

# wandb 0.31 checks the key's format before any request (wandb/sdk/lib/wbauth/validation.py):
# an optional "<prefix>-", then 40+ characters of [A-Za-z0-9_]. This one passes that check.
DEFAULT_API_KEY = "testkey_0123456789abcdef0123456789abcdef"


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # socketserver's default listen backlog is 5: parallel SDK processes opening connections at once
    # would overflow it and see SYN retries (1 s stalls) that no real W&B endpoint has.
    request_queue_size = 128

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients (and our own fault injection) reset connections all the time; that is not an
        # error worth a traceback on stderr.
        error = sys.exc_info()[1]
        if isinstance(error, (ConnectionError, TimeoutError)):
            logger.debug("connection from %s ended: %r", client_address, error)
        else:
            logger.exception("error while handling a request from %s", client_address)


class WandbTestServer:
    """Given a host/port and an API key, serve the W&B protocol subset from memory, with faults on demand."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str = DEFAULT_API_KEY,
        entity: str = DEFAULT_ENTITY,
    ) -> None:
        self.host = host
        self.port = port
        self.api_key = api_key
        self.store = Store(default_entity=entity)
        self.faults = Faults()
        self.history_lag = HistoryLag()
        self.wandb_root: Optional[str] = None  # set by the pytest fixture: where env() puts WANDB_* dirs
        self._requests: List[Tuple[str, str, str]] = []
        self._requests_lock = threading.Lock()
        self._life_lock = threading.Lock()
        self._httpd: Optional[_HTTPServer] = None
        self._thread: Optional[threading.Thread] = None
        self._running = False  # between start() and stop(); "down" keeps it True
        handler = type("BoundHandler", (Handler,), {"app": self})
        self._handler_class = handler

    # ---- lifecycle ---------------------------------------------------------------------------
    def start(self) -> "WandbTestServer":
        """Bind (port 0 = any free port; the chosen one is kept for restarts) and serve in a thread."""
        with self._life_lock:
            self._running = True
            self._listen()
        logger.info("W&B test server listening on %s", self.url)
        return self

    def _listen(self) -> None:
        self._httpd = self._bind()
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="wandb-test-server",
            daemon=True,
        )
        self._thread.start()

    def _bind(self) -> _HTTPServer:
        # Coming back up after set_down() rebinds the same port; SO_REUSEADDR makes that work at
        # once, the short bounded retry covers a racing close on a busy machine.
        deadline = time.monotonic() + 2.0
        while True:
            try:
                return _HTTPServer((self.host, self.port), self._handler_class)
            except OSError:
                if self.port == 0 or time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def _unlisten(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def stop(self) -> None:
        with self._life_lock:
            self._running = False
            self._unlisten()

    def __enter__(self) -> "WandbTestServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def netloc(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return "{}:{}".format(host, self.port)

    @property
    def url(self) -> str:
        return "http://" + self.netloc

    # ---- faults ------------------------------------------------------------------------------
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
        """Given a status (500, 429, ...), answer the next `count` requests matching `match` with it.

        `match` is a substring of "<path> <GraphQL operation>", e.g. "UpsertBucket", "file_stream",
        "/_storage/"; "" matches every W&B request. `retry_after` adds a Retry-After header.
        after_processing=True applies the request first and only then fails its response, so the
        client retries something the server already has (the duplicate-row scenario).
        `body_match` narrows it to requests whose body contains that text ("wandb-history.jsonl").
        `operation` narrows it to one exact GraphQL operation ("Run" without RunHistoryKeys).
        """
        self.faults.inject(status, count, match, retry_after, after_processing, body_match, operation)

    def drop_connections(
        self,
        count: int = 1,
        match: str = "",
        after_processing: bool = False,
        body_match: str = "",
        operation: str = "",
    ) -> None:
        """Given a count, reset the next `count` matching connections without sending a response.

        after_processing=True: the request takes effect, then its connection is reset.
        """
        self.faults.drop_connections(count, match, after_processing, body_match, operation)

    def set_latency(self, seconds: float) -> None:
        """Given seconds (0..30), delay every W&B request by that much before answering it."""
        self.faults.set_latency(seconds)

    def set_down(self, down: bool, refuse: bool = True) -> None:
        """Given True, make the server unreachable; given False, bring it back on the same port.

        refuse=True closes the listening socket (new connections: "connection refused"); requests
        on already-open keep-alive connections are reset in both modes. refuse=False keeps the
        listener (and /_test/ endpoints) up and only resets W&B requests.
        """
        self.faults.set_down(down)
        if not refuse:
            return
        with self._life_lock:
            if down:
                self._unlisten()
            elif self._running and self._httpd is None:
                self._listen()

    def clear_faults(self) -> None:
        """Drop every pending fault, the latency and history lags; a server that is down comes back up."""
        self.faults.clear()
        self.history_lag.clear()
        with self._life_lock:
            if self._running and self._httpd is None:
                self._listen()

    # ---- runs --------------------------------------------------------------------------------
    def delete_run(self, entity: Optional[str], project: Optional[str], run_id: str) -> None:
        """Given a run, mark it deleted: from now on UpsertBucket for its id answers HTTP 409."""
        self.store.delete(self.store.resolve(entity, project, run_id))

    def set_history_lag(
        self, run_id: str, rows: int, project: Optional[str] = None, entity: Optional[str] = None
    ) -> None:
        """Given a run and a row count, make the history reads (public API) miss its last `rows` rows.

        Simulates W&B serving a stale history page for recently streamed rows. It is a moving window:
        rows streamed later are hidden in their turn. Only the read queries see it (history pages,
        sampledHistory, parquetHistory's live data, historyKeys/lastHistoryStep); historyLineCount,
        RunResumeStatus and `server.run()` keep the truth. rows=0 ends the lag; clear_faults() ends all.
        project/entity None: any run with that id.
        """
        self.history_lag.set(run_id, rows, project, entity)

    def run(
        self, run_id: str, project: Optional[str] = None, entity: Optional[str] = None
    ) -> Optional[RunRecord]:
        """Given a run id (optionally narrowed by project/entity), return a snapshot of it or None."""
        return self.store.find(run_id, project, entity)

    def runs(self) -> List[RunRecord]:
        return self.store.runs()

    def save_upload(self, storage_path: str, data: bytes) -> None:
        """Given a /_storage/ path (from a URL we handed out) and the bytes PUT there, keep them."""
        kind, _, rest = storage_path.partition("/")
        if kind == "run":
            entity, project, run_id, name = rest.split("/", 3)
            self.store.save_run_file((entity, project, run_id), name, data)
        elif kind == "artifact":
            artifact_id, _, name = rest.partition("/")
            self.store.artifact_file(artifact_id, name, data)

    # ---- request log -------------------------------------------------------------------------
    def record(self, method: str, path: str, operation: str) -> None:
        with self._requests_lock:
            self._requests.append((method, path, operation))

    @property
    def requests(self) -> List[Tuple[str, str, str]]:
        """(method, path, GraphQL operation or "") of every W&B request received, oldest first."""
        with self._requests_lock:
            return list(self._requests)

    def request_count(self, match: str = "") -> int:
        """Given a substring of "<method> <path> <operation>", count the matching requests ("" = all)."""
        return sum(1 for r in self.requests if match in " ".join(r))

    def reset_requests(self) -> None:
        with self._requests_lock:
            self._requests.clear()

    # ---- SDK environment ---------------------------------------------------------------------
    def env(self) -> Dict[str, str]:
        """Return the environment variables that point the wandb SDK at this server (see env.py)."""
        from .env import sdk_env

        if self.wandb_root is None:
            # Outside the fixture (which sets a pytest tmp dir): a private temp dir, kept for reuse.
            self.wandb_root = tempfile.mkdtemp(prefix="wandb-test-")
        return sdk_env(self.url, self.api_key, self.wandb_root)

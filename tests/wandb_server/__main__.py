"""Standalone W&B test server: `python -m tests.wandb_server --host 0.0.0.0 --port 8080 --api-key KEY`.

Serves until SIGINT/SIGTERM. Drive it over HTTP with the /_test/ endpoints (see testapi.py).
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from typing import List, Optional

from .server import DEFAULT_API_KEY, WandbTestServer
from .store import DEFAULT_ENTITY


def main(argv: Optional[List[str]] = None) -> int:
    """Given command-line flags, run the server until a termination signal arrives."""
    parser = argparse.ArgumentParser(prog="python -m tests.wandb_server", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="port to bind, 0 = any (default: 8080)")
    parser.add_argument("--api-key", default=DEFAULT_API_KEY, help="the only API key accepted")
    parser.add_argument("--entity", default=DEFAULT_ENTITY, help="the viewer's default entity")
    parser.add_argument("--log-level", default="INFO", help="logging level (default: INFO)")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    server = WandbTestServer(args.host, args.port, args.api_key, args.entity).start()
    # Print the URL on stdout so a parent process started with --port 0 can read it.
    print(server.url, flush=True)
    stop.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

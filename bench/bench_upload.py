"""Figures for the uploader (issue 4), against the W&B-protocol test server on loopback.

    .venv/bin/python bench/bench_upload.py backfill [--models 200 --checkpoints 30 --latency 0.05]
    .venv/bin/python bench/bench_upload.py idle [--models 1000 --checkpoints 100]
    .venv/bin/python bench/bench_upload.py collection

backfill:   first upload of a generated tree, 1 worker vs the default workers, added latency.
idle:       a pass with nothing new over a fully processed tree: wall time and peak memory.
collection: one run with the SDK's default collection vs the uploader's lean settings:
            requests, files and bytes the server received, and wall time.
Prints one JSON line per measurement; bench/upload.md records the results.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any, Dict

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from local.upload import plan  # noqa: E402
from local.upload.metrics import scan_checkpoints  # noqa: E402
from local.upload.report import UploadOptions  # noqa: E402
from local.upload.state import ModelState, save_state, state_path  # noqa: E402
from local.upload.uploader import upload_pass  # noqa: E402
from local.upload.writer import WriterOptions  # noqa: E402
from tests.fixtures.trees import metrics_for  # noqa: E402
from tests.fixtures.upload import generated_tree  # noqa: E402
from tests.wandb_server import WandbTestServer  # noqa: E402

DEFAULT_WORKERS = UploadOptions().workers
# What the test server's env turns off; removed for the "SDK defaults" side of the comparison.
COLLECTION_ENV = (
    "WANDB_DISABLE_CODE",
    "WANDB_SAVE_CODE",
    "WANDB_DISABLE_GIT",
    "WANDB_CONSOLE",
    "WANDB__DISABLE_STATS",
    "WANDB__DISABLE_META",
    "WANDB__DISABLE_MACHINE_INFO",
    "WANDB__SAVE_REQUIREMENTS",
)


def emit(name: str, **values: Any) -> None:
    values.update(bench=name, python=platform.python_version(), cpus=os.cpu_count())
    print(json.dumps(values), flush=True)


def start_server(root: Path, keep_collection_env: bool = True) -> WandbTestServer:
    server = WandbTestServer().start()
    server.wandb_root = str(root / "wandb")
    env = server.env()
    if not keep_collection_env:
        env = {k: v for k, v in env.items() if k not in COLLECTION_ENV}
        for name in COLLECTION_ENV:
            os.environ.pop(name, None)
    os.environ.update(env)
    return server


def pass_options(root: Path, state: Path, workers: int, lean: bool = True) -> UploadOptions:
    writer = WriterOptions(init_timeout=60, finish_timeout=120, retry_wait_max=1, lean=lean)
    return UploadOptions(results_root=str(root), state_dir=str(state), workers=workers, writer=writer)


def bench_backfill(args: argparse.Namespace, scratch: Path) -> None:
    names = ["model-{:04d}".format(i) for i in range(args.models)]
    results = generated_tree(scratch / "results", names, range(100, 100 * (args.checkpoints + 1), 100))
    for workers in (1, DEFAULT_WORKERS):
        server = start_server(scratch / "w{}".format(workers))
        server.set_latency(args.latency)
        state = scratch / "state-{}".format(workers)
        started = time.perf_counter()
        report = upload_pass(pass_options(results, state, workers))
        wall = time.perf_counter() - started
        rows = sum(len(run.history) for run in server.runs())
        emit(
            "backfill",
            models=args.models,
            checkpoints=args.checkpoints,
            latency_s=args.latency,
            workers=workers,
            wall_s=round(wall, 1),
            exit_code=report.exit_code(),
            history_rows=rows,
            requests=server.request_count(),
        )
        server.stop()


def processed_state(results: Path, state_dir: Path, model: str) -> None:
    """Write the state a finished upload leaves, without uploading (the idle bench's setup)."""
    state = ModelState(model, "eval-" + model)
    scan = scan_checkpoints(str(results / model))
    items = []
    for step, sig in scan.items():
        assert sig is not None
        metrics = metrics_for(step)
        items.append(plan.Item(step, 0, plan.metrics_digest(metrics), tuple(sig), metrics))
    plan.mark_processed(state, items)
    plan.note_seen(state, scan)
    save_state(state_path(str(state_dir), model, "eval-" + model), state)


def bench_idle(args: argparse.Namespace, scratch: Path) -> None:
    names = ["model-{:04d}".format(i) for i in range(args.models)]
    started = time.perf_counter()
    results = generated_tree(scratch / "results", names, range(100, 100 * (args.checkpoints + 1), 100))
    state = scratch / "state"
    for name in names:
        processed_state(results, state, name)
    setup = time.perf_counter() - started
    server = start_server(scratch)
    # Two timed passes (tracemalloc slows allocation-heavy code, so it gets a pass of its own).
    for attempt in (1, 2, 3):
        traced = attempt == 3
        if traced:
            tracemalloc.start()
        started = time.perf_counter()
        report = upload_pass(pass_options(results, state, DEFAULT_WORKERS))
        wall = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1] if traced else 0
        tracemalloc.stop()
        emit(
            "idle",
            models=args.models,
            checkpoints=args.checkpoints,
            attempt=attempt,
            tracemalloc=traced,
            wall_s=round(wall, 2),
            tracemalloc_peak_mib=round(peak / 2**20, 1) if traced else None,
            maxrss_mib=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            requests=server.request_count(),
            exit_code=report.exit_code(),
            setup_s=round(setup, 1),
        )
    server.stop()


def run_one(scratch: Path, lean: bool, tag: str) -> Dict[str, Any]:
    server = start_server(scratch / tag, keep_collection_env=lean)
    results = generated_tree(scratch / tag / "results", ["model"], range(100, 3100, 100))
    started = time.perf_counter()
    report = upload_pass(pass_options(results, scratch / tag / "state", 1, lean=lean))
    wall = time.perf_counter() - started
    run = server.run("eval-model")
    assert run is not None and report.exit_code() == 0
    figures = dict(
        sdk_collection="lean (uploader settings)" if lean else "SDK defaults",
        wall_s=round(wall, 2),
        requests=server.request_count(),
        file_stream_posts=server.request_count("file_stream"),
        graphql_requests=server.request_count("/graphql"),
        run_files=sorted(run.files),
        run_file_bytes=sum(len(data) for data in run.files.values()),
        streamed_lines={name: len(lines) for name, lines in run.lines.items()},
    )
    server.stop()
    return figures


def bench_collection(args: argparse.Namespace, scratch: Path) -> None:
    saved = dict(os.environ)
    for lean in (False, True):
        for repeat in range(args.repeats):
            emit("collection", repeat=repeat, **run_one(scratch, lean, "lean{}-{}".format(int(lean), repeat)))
            os.environ.clear()
            os.environ.update(saved)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("which", choices=("backfill", "idle", "collection"))
    parser.add_argument("--models", type=int, default=None)
    parser.add_argument("--checkpoints", type=int, default=None)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    defaults = {"backfill": (200, 30), "idle": (1000, 100), "collection": (1, 30)}[args.which]
    args.models = args.models or defaults[0]
    args.checkpoints = args.checkpoints or defaults[1]
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    scratch = Path(tempfile.mkdtemp(prefix="bench-upload-"))
    try:
        {"backfill": bench_backfill, "idle": bench_idle, "collection": bench_collection}[args.which](
            args, scratch
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()

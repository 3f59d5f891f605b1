"""Figures for the uploader (issues 4 and 11), against the W&B-protocol test server on loopback.

    python bench/bench_upload.py backfill [--models 200 --checkpoints 30 --latency 0.05] [--workers 1,2,4]
                                          [--variants ckpt_step] [--repeats 3] [--baseline REV] [--original N]
    python bench/bench_upload.py idle [--models 1000 --checkpoints 100] [--baseline REV]
    python bench/bench_upload.py collection

backfill:   first upload of a generated tree at the given latency per request; each measurement on
            a fresh server. This tree (``--workers`` default), the commit ``--baseline`` (extracted
            with ``git archive``; measured at its own default workers and at 16), interleaved per
            repeat so the machine's load falls on all alike, and ``--original N`` times the replay
            of the original tool (tests/fixtures/original_tool.py).
idle:       a tree whose every run is uploaded: ``upload --once`` (a full scan) three times, and
            the service loop (``run``, three cycles: the first a full scan, then idle cycles).
collection: one run with the SDK's default collection vs the uploader's lean settings.
Every pass runs in its own process under bench/measure.py (wall, CPU and RSS of the whole process
tree: uploader, forkserver, workers, wandb-core). Prints one JSON line per measurement.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.bench_setup import extract_commit, processed_tree  # noqa: E402
from local.upload.report import UploadOptions, WriterOptions  # noqa: E402
from tests.fixtures.upload import generated_tree  # noqa: E402
from tests.wandb_server import WandbTestServer  # noqa: E402

MEASURE = REPO / "bench" / "measure.py"
BOTH = "ckpt_step,epoch"
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
    values["load_avg_1m"] = round(os.getloadavg()[0], 1)
    print(json.dumps(values), flush=True)


def start_server(root: Path, latency: float = 0.0) -> WandbTestServer:
    server = WandbTestServer().start()
    server.wandb_root = str(root / "wandb")
    server.set_latency(latency)
    return server


def measured(which: str, argv: List[str], env: Dict[str, str], code: Path = REPO) -> Dict[str, Any]:
    """Given a pass's command line, run it under bench/measure.py; return its figures."""
    command = [sys.executable, str(MEASURE), "--code", str(code), which, "--", *argv]
    done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=str(code))
    lines = [line for line in done.stdout.splitlines() if line.startswith("MEASURED ")]
    if not lines:
        raise RuntimeError(f"measure failed ({done.returncode}): {done.stderr[-3000:]}")
    return json.loads(lines[-1][len("MEASURED ") :])


def upload_argv(results: Path, state: Path, variants: str, workers: Optional[int]) -> List[str]:
    argv = ["upload", "--once", "--results-root", str(results), "--state-dir", str(state)]
    argv += ["--variants", variants, "--init-timeout", "60", "--finish-timeout", "120"]
    argv += ["--retry-wait-max", "1", "--log-level", "WARNING"]
    return argv + (["--workers", str(workers)] if workers else [])


def backfill_one(args: argparse.Namespace, scratch: Path, results: Path, who: str, **how: Any) -> None:
    """Given a tree, upload it once on a fresh server as ``who`` says; emit the figures."""
    tag = f"{who}-{time.monotonic_ns()}"
    server = start_server(scratch / tag, args.latency)
    env = {**os.environ, **server.env()}
    served = time.process_time()  # this process only serves W&B meanwhile: the server's CPU
    if who == "original":
        argv = [
            str(results),
            str(results / ".wandb_eval_manifest.json"),
            str(scratch / tag / "state"),
            args.variants,
        ]
        figures = measured("original", argv, env)
    else:
        argv = upload_argv(results, scratch / tag / "state", args.variants, how.get("workers"))
        figures = measured("upload", argv, env, how.get("code", REPO))
    served = time.process_time() - served
    rows = sum(len(run.history) for run in server.runs())
    runs = len(server.runs())
    emit(
        "backfill",
        who=who,
        models=args.models,
        checkpoints=args.checkpoints,
        latency_s=args.latency,
        variants=args.variants,
        workers=how.get("workers") or "default",
        runs=runs,
        history_rows=rows,
        requests=server.request_count(),
        server_cpu_s=round(served, 1),
        cpu_per_model_s=round(figures["cpu_s"] / args.models, 3),
        **figures,
    )
    server.stop()
    shutil.rmtree(scratch / tag, ignore_errors=True)


def bench_backfill(args: argparse.Namespace, scratch: Path) -> None:
    names = [f"model-{i:04d}" for i in range(args.models)]
    results = generated_tree(scratch / "results", names, range(100, 100 * (args.checkpoints + 1), 100))
    baseline = extract_commit(REPO, args.baseline, scratch / "baseline") if args.baseline else None
    sizes = [int(n) for n in args.workers.split(",")] if args.workers else [0]
    for _ in range(args.repeats):
        for size in sizes:
            backfill_one(args, scratch, results, "this tree", workers=size or None)
        if baseline is not None:
            backfill_one(args, scratch, results, f"baseline {args.baseline}", code=baseline)
            backfill_one(args, scratch, results, f"baseline {args.baseline}", code=baseline, workers=16)
    for _ in range(args.original):  # the original is slow: its repeats are counted apart
        backfill_one(args, scratch, results, "original")


def bench_idle(args: argparse.Namespace, scratch: Path) -> None:
    started = time.perf_counter()
    results, state = processed_tree(scratch, args.models, args.checkpoints)
    setup = time.perf_counter() - started
    server = start_server(scratch)
    env = {**os.environ, **server.env()}
    baseline = extract_commit(REPO, args.baseline, scratch / "baseline") if args.baseline else None
    for who, code in [("this tree", REPO)] + ([(f"baseline {args.baseline}", baseline)] if baseline else []):
        for attempt in (1, 2, 3):
            server.reset_requests()
            figures = measured("upload", upload_argv(results, state, BOTH, None), env, code or REPO)
            emit(
                "idle",
                who=who,
                models=args.models,
                checkpoints=args.checkpoints,
                attempt=attempt,
                setup_s=round(setup, 1),
                requests=server.request_count(),
                **figures,
            )
    (scratch / "inbox").mkdir(exist_ok=True)
    loop = [
        "run",
        "--results-root",
        str(results),
        "--state-dir",
        str(state),
        "--inbox",
        str(scratch / "inbox"),
    ]
    loop += ["--poll-interval-seconds", "0.01", "--max-cycles", "3", "--log-level", "WARNING"]
    server.reset_requests()
    figures = measured("loop", loop, env)
    emit(
        "idle service loop",
        who="this tree",
        models=args.models,
        checkpoints=args.checkpoints,
        requests=server.request_count(),
        **figures,
    )
    server.stop()


def run_one(scratch: Path, lean: bool, tag: str) -> Dict[str, Any]:
    from local.upload.uploader import upload_pass

    server = start_server(scratch / tag)
    env = server.env()
    if not lean:
        env = {k: v for k, v in env.items() if k not in COLLECTION_ENV}
        for name in COLLECTION_ENV:
            os.environ.pop(name, None)
    os.environ.update(env)
    results = generated_tree(scratch / tag / "results", ["model"], range(100, 3100, 100))
    writer = WriterOptions(init_timeout=60, finish_timeout=120, retry_wait_max=1, lean=lean)
    options = UploadOptions(
        results_root=str(results),
        state_dir=str(scratch / tag / "state"),
        writer=writer,
        variants=("ckpt_step",),
    )
    started = time.perf_counter()
    report = upload_pass(options)
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
            emit("collection", repeat=repeat, **run_one(scratch, lean, f"lean{int(lean)}-{repeat}"))
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
    parser.add_argument(
        "--variants", default="ckpt_step", help="ckpt_step, or ckpt_step,epoch (the default runs)"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--workers", default="", help="this tree's --workers to measure, e.g. 1,2,4 (default: its default)"
    )
    parser.add_argument("--baseline", default="", help="a commit to measure the same way (git archive)")
    parser.add_argument("--original", type=int, default=0, help="also replay the original tool, N times")
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

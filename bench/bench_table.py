"""The checkpoint table in steady state: the whole table every pass (ours) vs ``log_mode="INCREMENTAL"``.

    python bench/bench_table.py [--rows 100 --passes 10 --latency 0.05]

A run already holds ``--rows`` checkpoints and its table; then ``--passes`` passes each resume it,
log one new checkpoint row and the table, set the summary and finish, as an upload session does
(IMMUTABLE: a table of every row, logged once per pass; INCREMENTAL: a table of the new row
only). The passes run in a child process on one wandb-core; its CPU includes that wandb-core
(reaped at ``wandb.teardown()``). The test server counts requests, run file bytes and the
summary's size. Prints one JSON line per mode.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

COLUMNS = ["checkpoint_step", "checkpoint_index", "HR@10", "NDCG@10", "metrics_path"]


def _row(step: int) -> List[Any]:
    return [step, step // 100, 0.1 + step / 1e6, 0.05 + step / 1e6, f"m/checkpoint-{step}/metrics.json"]


def _session(run_id: str, mode: str, steps: List[int], all_steps: List[int]) -> None:
    import wandb

    settings = wandb.Settings(init_timeout=60, finish_timeout=120, finish_timeout_raises=True, silent=True)
    run = wandb.init(id=run_id, project="table-bench", resume="allow", reinit="create_new", settings=settings)
    run.define_metric("eval/*", step_metric="checkpoint_step")
    rows = [_row(s) for s in (steps if mode == "INCREMENTAL" else all_steps)]
    for step in steps:
        row: Dict[str, Any] = {"checkpoint_step": step, "eval/HR@10": _row(step)[2]}
        if step == steps[-1]:  # the table rides on the last row, as in an upload session
            row["eval/checkpoint_table"] = wandb.Table(columns=COLUMNS, data=rows, log_mode=mode)
        run.log(row)
    run.summary.update({"last_step": steps[-1]})
    run.finish()


def child(args: argparse.Namespace) -> None:
    """Run the fill session, or the steady passes after one warm-up pass (imports, wandb-core start);
    print the passes' CPU (this process and its wandb-core, from /proc) and wall times."""
    from local.upload.writer import core_pids_of

    first = list(range(100, 100 * (args.rows + 1), 100))
    run_id = "table-" + args.mode.lower()
    walls = []
    if args.fill:
        _session(run_id, args.mode, first, first)
        print("CHILD {}", flush=True)
        os._exit(0)
    steps = list(first)
    cpu = 0.0
    for number in range(args.passes + 1):
        steps.append(100 * (args.rows + 1 + number))
        before = _tree_cpu(core_pids_of(os.getpid()))
        started = time.perf_counter()
        _session(run_id, args.mode, steps[-1:], steps)
        if number:  # the first pass only warms up
            walls.append(round(time.perf_counter() - started, 3))
            cpu += _tree_cpu(core_pids_of(os.getpid())) - before
    print("CHILD " + json.dumps({"cpu_s": round(cpu, 3), "pass_wall_s": walls}), flush=True)
    os._exit(0)


def _tree_cpu(cores: List[int]) -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    total = usage.ru_utime + usage.ru_stime
    for pid in cores:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _child(args: argparse.Namespace, mode: str, env: Dict[str, str], fill: bool) -> Dict[str, Any]:
    command = [sys.executable, __file__, "--child", "--mode", mode, "--rows", str(args.rows)]
    command += ["--passes", str(args.passes)] + (["--fill"] if fill else [])
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    line = next(line for line in done.stdout.splitlines() if line.startswith("CHILD "))
    return json.loads(line[len("CHILD ") :])


def measure(args: argparse.Namespace, mode: str) -> None:
    from tests.wandb_server import WandbTestServer

    server = WandbTestServer().start()
    server.wandb_root = tempfile.mkdtemp(prefix="bench-table-")
    env = {**os.environ, **server.env()}
    _child(args, mode, env, fill=True)
    server.reset_requests()
    server.set_latency(args.latency)
    figures = _child(args, mode, env, fill=False)
    record = server.run("table-" + mode.lower())
    assert record is not None
    print(
        json.dumps(
            {
                "bench": "table",
                "log_mode": mode,
                "rows_before": args.rows,
                "passes": args.passes,
                "latency_s": args.latency,
                "cpu_per_pass_s": round(figures["cpu_s"] / args.passes, 3),
                "median_pass_wall_s": sorted(figures["pass_wall_s"])[len(figures["pass_wall_s"]) // 2],
                "requests_per_pass": round(server.request_count() / (args.passes + 1), 1),
                "table_file_bytes_last_pass": len(
                    max(
                        (
                            (int(n.rsplit("_", 2)[1]), d)
                            for n, d in record.files.items()
                            if n.endswith(".table.json")
                        ),
                        key=lambda pair: pair[0],
                    )[1]
                ),
                "summary_bytes": len(json.dumps(record.summary)),
                "history_rows": len(record.history),
                "python": platform.python_version(),
                "load_avg_1m": round(os.getloadavg()[0], 1),
            }
        ),
        flush=True,
    )
    server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=100)
    parser.add_argument("--passes", type=int, default=10)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--fill", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="IMMUTABLE", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    for mode in ("IMMUTABLE", "INCREMENTAL"):
        measure(args, mode)


if __name__ == "__main__":
    main()

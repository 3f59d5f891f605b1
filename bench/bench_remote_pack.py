"""Benchmark: prepare-manifest + pack on a generated tree, beside ``tar czf`` of the whole tree.

Given a generated results tree of MODELS x CHECKPOINTS (metrics.json + metrics.tsv each, plus
some large files the filters exclude), measure: the first (full) pack, the delta after one new
checkpoint per model, and an idle pack; each beside ``tar czf`` of the whole tree, which is
what a naive sync would ship every time. Each command runs as its own process; its wall time,
CPU time and maximum resident set size (``os.wait4``: the kernel's accounting of that process
and the children it waited for) are reported; ``--repeats`` runs the whole sequence again and
shows the best wall time of each (the machine may be shared). Prints a Markdown table to paste
into bench/remote-pack.md.

    python bench/bench_remote_pack.py [--models 1000] [--checkpoints 100] [--repeats 1]
        [--workdir DIR] [--remote-dir DIR] [--skip-tar]

``--workdir`` keeps the generated tree and reuses it next time (the delta checkpoints and the
outbox are removed first, so every run starts from the same tree); ``--remote-dir`` runs the
``remote`` package of another checkout (e.g. ``git archive OLD remote | tar x -C /tmp/old``)
to compare before and after on the same tree.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Tuple

REPO_ROOT = Path(__file__).resolve().parents[1]
LARGE_FILES = 20  # model-sized files that must never travel
LARGE_FILE_MB = 12
HEADER = "path\tHR@10\tNDCG@10\n"


def model_dir(root: Path, model: int) -> Path:
    """Given the root and a model number, return that model's directory."""
    return root / "Bench{:04d}-grec-sft-qwen4B-4-256-dsz0".format(model)


def generate(root: Path, models: int, checkpoints: int) -> None:
    """Given a root, write MODELS x CHECKPOINTS checkpoints and a few large excluded files."""
    for model in range(models):
        for index in range(1, checkpoints + 1):
            write_checkpoint(model_dir(root, model), index * 100, model)
    for index in range(min(LARGE_FILES, models)):
        target = model_dir(root, index) / "checkpoint-100"
        (target / "model.safetensors").write_bytes(os.urandom(LARGE_FILE_MB << 20))
        (target / "rollout.json").write_text(json.dumps({"rollouts": ["x" * 100] * 5000}))
    (root / ".generated").write_text("{} {}\n".format(models, checkpoints))


def prepare_tree(work: Path, models: int, checkpoints: int) -> Path:
    """Given the work directory, return a results tree of the asked shape, reused when it exists."""
    root = work / "results"
    marker = root / ".generated"
    if marker.is_file() and marker.read_text().split() == [str(models), str(checkpoints)]:
        for model in range(models):  # undo the previous run's delta step
            shutil.rmtree(model_dir(root, model) / "checkpoint-{}".format((checkpoints + 1) * 100), True)
        print("reusing the tree in {}".format(root))
    else:
        shutil.rmtree(root, ignore_errors=True)
        start = time.perf_counter()
        generate(root, models, checkpoints)
        print("generated {} x {} in {:.0f} s".format(models, checkpoints, time.perf_counter() - start))
    shutil.rmtree(work / "outbox", ignore_errors=True)
    return root


def write_checkpoint(model_path: Path, step: int, model: int) -> None:
    """Given a model dir and a step, write that checkpoint's metrics.json and metrics.tsv."""
    checkpoint = model_path / "checkpoint-{}".format(step)
    checkpoint.mkdir(parents=True, exist_ok=True)
    value = (model * 7 + step) % 1000 / 10000
    metrics = {"HR@{}".format(k): value * k for k in (1, 3, 5, 10, 20, 50)}
    metrics.update({"NDCG@{}".format(k): value * k / 2 for k in (1, 3, 5, 10, 20, 50)})
    (checkpoint / "metrics.json").write_text(json.dumps(metrics, indent=2))
    (checkpoint / "metrics.tsv").write_text(HEADER + "{}\t{}\t{}\n".format(checkpoint.name, value, value / 2))


@dataclass
class Run:
    """One measured process: wall seconds, CPU seconds (user + system), max RSS in MiB."""

    wall: float
    cpu: float
    rss: float


def measured(command: List[str], cwd: Path) -> Tuple[Run, str]:
    """Run a command, fail loudly if it fails; return its measurements and its stdout.

    The kernel's accounting of a process covers the children it waited for (pack's worker
    processes included: CPU summed, max RSS the largest). A child forked from this Python
    process starts with this process's RSS as its high-water mark, so the command is run under
    GNU ``/usr/bin/time`` (a small process) when there is one; otherwise ``os.wait4`` is used
    and small RSS figures are only an upper bound.
    """
    gnu_time = Path("/usr/bin/time").exists()
    with (
        tempfile.NamedTemporaryFile() as usage,
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
    ):
        wrapped = ["/usr/bin/time", "-f", "%U %S %M", "-o", usage.name, *command] if gnu_time else command
        start = time.perf_counter()
        process = subprocess.Popen(wrapped, cwd=cwd, stdout=out, stderr=err)
        _, status, rusage = os.wait4(process.pid, 0)
        elapsed = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        if os.waitstatus_to_exitcode(status) != 0:
            sys.exit("command failed: {}\n{}".format(" ".join(command), err.read().decode()))
        if gnu_time:
            user, system, rss_kib = usage.read().decode().split()[-3:]
            run = Run(elapsed, float(user) + float(system), int(rss_kib) / 1024)
        else:
            run = Run(elapsed, rusage.ru_utime + rusage.ru_stime, rusage.ru_maxrss / 1024)
        return run, out.read().decode()


def newest_bundle_size(outbox: Path) -> int:
    """Return the size of the newest bundle listed in the outbox index."""
    index = json.loads((outbox / "index.json").read_text())
    return int(index["bundles"][-1]["size"])


def row(label: str, what: str, runs: List[Run], size: str) -> str:
    """Return one Markdown table row: best wall time (all of them), its CPU, the largest RSS."""
    best = min(runs, key=lambda run: run.wall)
    walls = ", ".join("{:.1f}".format(run.wall) for run in runs)
    return "| {} | {} | {:.1f} s ({}) | {:.1f} s | {:.0f} MiB | {} |".format(
        label, what, best.wall, walls, best.cpu, max(run.rss for run in runs), size
    )


SCENARIOS = ("first (full)", "+1 checkpoint per model (delta)", "nothing new (idle)")


def one_round(root: Path, work: Path, args: argparse.Namespace, results: Dict) -> None:
    """Reset the tree and outbox, then pack full, delta and idle, each beside tar czf of the tree."""
    prepare_tree(work, args.models, args.checkpoints)
    for scenario in SCENARIOS:
        if scenario.startswith("+1"):
            for model in range(args.models):
                write_checkpoint(model_dir(root, model), (args.checkpoints + 1) * 100, model)
        outbox = work / "outbox"
        pack = [sys.executable, "-m", "remote", "pack", "--results-root", str(root), "--outbox", str(outbox)]
        run, stdout = measured(pack, Path(args.remote_dir))
        size = "{:,} bytes".format(newest_bundle_size(outbox)) if "Published" in stdout else "0 (no bundle)"
        results.setdefault((scenario, "pack"), [[], size])[0].append(run)
        if not args.skip_tar:
            tarball = work / "whole-tree.tar.gz"
            run, _ = measured(["tar", "czf", str(tarball), "-C", str(root), "."], work)
            size = "{:,} bytes".format(tarball.stat().st_size)
            results.setdefault((scenario, "tar"), [[], size])[0].append(run)
            tarball.unlink()


def main() -> int:
    """Prepare the tree, run the rounds of three scenarios, print the results table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=1000)
    parser.add_argument("--checkpoints", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=1, help="rounds; the table shows the best and all")
    parser.add_argument("--workdir", default="", help="keep and reuse the generated tree here")
    parser.add_argument("--remote-dir", default=str(REPO_ROOT), help="directory holding the remote package")
    parser.add_argument("--skip-tar", action="store_true", help="do not time tar czf")
    args = parser.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench-remote-"))
    root = work / "results"
    results: Dict = {}
    for _ in range(args.repeats):
        one_round(root, work, args, results)
    print("\ndate: {}; command: {}".format(datetime.date.today().isoformat(), " ".join(sys.argv)))
    print("machine: {} cores, {}, Python {}".format(os.cpu_count(), cpu_model(), platform.python_version()))
    print("| scenario | command | wall time, best (all) | CPU of the best | max RSS | bytes to transfer |")
    print("| --- | --- | --- | --- | --- | --- |")
    for scenario in SCENARIOS:
        for key, what in (("pack", "prepare-manifest + pack"), ("tar", "tar czf whole tree")):
            if (scenario, key) in results:
                runs, size = results[(scenario, key)]
                print(row(scenario, what, runs, size))
    if not args.workdir:
        shutil.rmtree(work)
    return 0


def cpu_model() -> str:
    """Return the CPU model name from /proc/cpuinfo, or the platform's processor string."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: prepare-manifest + pack on a generated tree, beside ``tar czf`` of the whole tree.

Given a generated results tree of MODELS x CHECKPOINTS (metrics.json + metrics.tsv each, plus
some large files the filters exclude), measure: the first (full) pack, the delta after one new
checkpoint per model, and an idle pack; each beside ``tar czf`` of the whole tree, which is
what a naive sync would ship every time. Prints a Markdown table to paste into bench/remote-pack.md.

    python bench/bench_remote_pack.py [--models 1000] [--checkpoints 100] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import List, Tuple

REPO_ROOT = Path(__file__).resolve().parents[1]
LARGE_FILES = 20  # model-sized files that must never travel
LARGE_FILE_MB = 12


def generate(root: Path, models: int, checkpoints: int) -> None:
    """Given a root, write MODELS x CHECKPOINTS checkpoints and a few large excluded files."""
    header = "path\tHR@10\tNDCG@10\n"
    for model in range(models):
        model_dir = root / "Bench{:04d}-grec-sft-qwen4B-4-256-dsz0".format(model)
        for index in range(1, checkpoints + 1):
            write_checkpoint(model_dir, index * 100, model, header)
    for index in range(LARGE_FILES):
        target = root / "Bench{:04d}-grec-sft-qwen4B-4-256-dsz0".format(index) / "checkpoint-100"
        (target / "model.safetensors").write_bytes(os.urandom(LARGE_FILE_MB << 20))
        (target / "rollout.json").write_text(json.dumps({"rollouts": ["x" * 100] * 5000}))


def write_checkpoint(model_dir: Path, step: int, model: int, header: str) -> None:
    """Given a model dir and a step, write that checkpoint's metrics.json and metrics.tsv."""
    checkpoint = model_dir / "checkpoint-{}".format(step)
    checkpoint.mkdir(parents=True, exist_ok=True)
    value = (model * 7 + step) % 1000 / 10000
    metrics = {"HR@{}".format(k): value * k for k in (1, 3, 5, 10, 20, 50)}
    metrics.update({"NDCG@{}".format(k): value * k / 2 for k in (1, 3, 5, 10, 20, 50)})
    (checkpoint / "metrics.json").write_text(json.dumps(metrics, indent=2))
    (checkpoint / "metrics.tsv").write_text(header + "{}\t{}\t{}\n".format(checkpoint.name, value, value / 2))


def timed(command: List[str]) -> Tuple[float, str]:
    """Run a command, fail loudly if it fails, return (seconds, stdout)."""
    start = time.perf_counter()
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit("command failed: {}\n{}".format(" ".join(command), result.stderr))
    return elapsed, result.stdout


def newest_bundle_size(outbox: Path) -> int:
    """Return the size of the newest bundle listed in the outbox index."""
    index = json.loads((outbox / "index.json").read_text())
    return int(index["bundles"][-1]["size"])


def pack_and_tar(root: Path, outbox: Path, work: Path, label: str) -> List[str]:
    """Pack once and tar the whole tree once; return two Markdown rows."""
    pack = [sys.executable, "-m", "remote", "pack", "--results-root", str(root), "--outbox", str(outbox)]
    pack_seconds, stdout = timed(pack)
    published = "Published" in stdout
    pack_bytes = newest_bundle_size(outbox) if published else 0
    tarball = work / "whole-tree.tar.gz"
    tar_seconds, _ = timed(["tar", "czf", str(tarball), "-C", str(root), "."])
    tar_bytes = tarball.stat().st_size
    return [
        "| {} | prepare-manifest + pack | {:.1f} s | {:,} bytes |".format(label, pack_seconds, pack_bytes),
        "| {} | tar czf whole tree | {:.1f} s | {:,} bytes |".format(label, tar_seconds, tar_bytes),
    ]


def main() -> int:
    """Generate the tree, run the three scenarios, print the results table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=1000)
    parser.add_argument("--checkpoints", type=int, default=100)
    parser.add_argument("--workdir", default="")
    args = parser.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench-remote-"))
    root, outbox = work / "results", work / "outbox"
    start = time.perf_counter()
    generate(root, args.models, args.checkpoints)
    print(
        "generated {} models x {} checkpoints in {:.0f} s".format(
            args.models, args.checkpoints, time.perf_counter() - start
        )
    )
    rows = pack_and_tar(root, outbox, work, "first (full)")
    for model in range(args.models):
        model_dir = root / "Bench{:04d}-grec-sft-qwen4B-4-256-dsz0".format(model)
        write_checkpoint(model_dir, (args.checkpoints + 1) * 100, model, "path\tHR@10\tNDCG@10\n")
    rows += pack_and_tar(root, outbox, work, "+1 checkpoint per model (delta)")
    rows += pack_and_tar(root, outbox, work, "nothing new (idle)")
    print("\nmachine: {} cores, {}, Python {}".format(os.cpu_count(), cpu_model(), platform.python_version()))
    print("| scenario | command | wall time | bytes to transfer |\n| --- | --- | --- | --- |")
    print("\n".join(rows))
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

"""Benchmark: pull throughput of one 200 MB bundle over loopback, beside OpenSSH's ``sftp`` client.

Starts the test suite's real sshd (generated keys, loopback port), publishes one bundle of
random (incompressible) bytes with its index, then alternates ``python -m local pull``'s
code path (in process: connect, read index, download with prefetch, SHA-256 verify, rename)
and ``sftp -b`` (same key, same file) for a few rounds. Prints a Markdown report.

usage: .venv/bin/python bench/bench_pull.py [--mb 200] [--rounds 3] [--write bench/pull.md]
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import logging
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, List

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from local.transfer.pull import PullOptions, pull_inbox  # noqa: E402
from remote.contract import outbox  # noqa: E402
from remote.contract.files import now_iso  # noqa: E402
from remote.contract.names import INDEX_NAME  # noqa: E402
from tests.fixtures.sshd import SshServer, start_sshd  # noqa: E402


def publish(outbox_dir: Path, megabytes: int) -> outbox.BundleRecord:
    """Write one bundle of random bytes and its index; return its record."""
    outbox_dir.mkdir(parents=True)
    name = outbox.bundle_name(1, "full")
    digest = hashlib.sha256()
    with open(outbox_dir / name, "wb") as handle:
        for _ in range(megabytes):
            block = os.urandom(1024 * 1024)
            digest.update(block)
            handle.write(block)
    size = (outbox_dir / name).stat().st_size
    record = outbox.BundleRecord(1, "full", name, size, digest.hexdigest(), 1, now_iso())
    (outbox_dir / INDEX_NAME).write_bytes(outbox.dumps(outbox.index_to_json([record], now_iso())))
    return record


def run_pull(server: SshServer, work: Path, record: outbox.BundleRecord) -> None:
    """Pull the bundle into a fresh inbox (the whole command path, minus argument parsing)."""
    inbox = work / "inbox"
    shutil.rmtree(inbox, ignore_errors=True)
    options = PullOptions(server.params(work / "known_hosts"), str(work / "outbox"), str(inbox), "bench")
    report = pull_inbox(options)
    assert report.downloaded == [record.name], report


def run_sftp(server: SshServer, work: Path, record: outbox.BundleRecord) -> None:
    """Fetch the same file with OpenSSH's sftp client in batch mode."""
    target = work / "sftp-copy"
    target.unlink(missing_ok=True)
    batch = work / "batch"
    batch.write_text("get {} {}\n".format(work / "outbox" / record.name, target))
    command = sftp_command(server, work, batch)
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    assert target.stat().st_size == record.size


def sftp_command(server: SshServer, work: Path, batch: Path) -> List[str]:
    """Return the sftp command line used (also printed in the report)."""
    return [
        "sftp", "-q", "-b", str(batch), "-i", str(server.user_key), "-P", str(server.port),
        "-o", "UserKnownHostsFile={}".format(work / "known_hosts"), "-o", "StrictHostKeyChecking=yes",
        "-o", "BatchMode=yes", "{}@{}".format(server.user, server.host),
    ]  # fmt: skip


def timed(action: Callable[[], None]) -> float:
    """Run ``action`` and return its wall time in seconds."""
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def cpu_model() -> str:
    """Return the CPU model name from /proc/cpuinfo."""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def report(
    args: argparse.Namespace, server: SshServer, work: Path, pulls: List[float], sftps: List[float]
) -> str:
    """Return the Markdown report of one benchmark run."""
    megabytes = args.mb * 1024 * 1024 / 1e6
    pull_rate, sftp_rate = megabytes / statistics.median(pulls), megabytes / statistics.median(sftps)
    sftp_line = " ".join(sftp_command(server, work, work / "batch"))
    return "\n".join(
        [
            "## Run of {}".format(
                datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
            ),
            "",
            "- machine: {} CPUs (nproc), {}; Python {}; {}".format(
                len(os.sched_getaffinity(0)),
                cpu_model(),
                platform.python_version(),
                subprocess.check_output(["ssh", "-V"], stderr=subprocess.STDOUT, text=True).strip(),
            ),
            "- command: `.venv/bin/python bench/bench_pull.py --mb {} --rounds {}`".format(
                args.mb, args.rounds
            ),
            "- bundle: {} MiB of random bytes ({:.1f} MB), loopback, sshd with internal-sftp".format(
                args.mb, megabytes
            ),
            "- sftp client: `{}` (batch: `get REMOTE LOCAL`)".format(sftp_line.replace(str(work), "$WORK")),
            "",
            "| client | median s | MB/s (median) | all rounds, s |",
            "|---|---|---|---|",
            "| local pull (paramiko, incl. SHA-256 verify) | {:.2f} | {:.1f} | {} |".format(
                statistics.median(pulls), pull_rate, ", ".join("{:.2f}".format(t) for t in pulls)
            ),
            "| OpenSSH sftp -b | {:.2f} | {:.1f} | {} |".format(
                statistics.median(sftps), sftp_rate, ", ".join("{:.2f}".format(t) for t in sftps)
            ),
            "",
            "ratio pull / sftp throughput: **{:.2f}**".format(pull_rate / sftp_rate),
            "",
        ]
    )


def main() -> int:
    """Run the benchmark and print (and optionally append) the report."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mb", type=int, default=200, help="bundle size in MiB (200)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per client, alternating (3)")
    parser.add_argument("--write", default="", help="append the report to this Markdown file")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    work = Path(tempfile.mkdtemp(prefix="bench-pull-"))
    try:
        with start_sshd(work / "sshd") as server:
            server.write_known_hosts(work / "known_hosts")
            record = publish(work / "outbox", args.mb)
            pulls: List[float] = []
            sftps: List[float] = []
            for _ in range(args.rounds):
                pulls.append(timed(lambda: run_pull(server, work, record)))
                sftps.append(timed(lambda: run_sftp(server, work, record)))
            text = report(args, server, work, pulls, sftps)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(text)
    if args.write:
        with open(args.write, "a", encoding="utf-8") as handle:
            handle.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

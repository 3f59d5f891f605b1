"""Measure one upload pass as a whole process tree: wall time, CPU and RSS of everything it starts.

    python bench/measure.py [--code DIR] upload -- --results-root R --state-dir S --once ...
    python bench/measure.py original -- RESULTS MANIFEST STATE_DIR VARIANTS
    python bench/measure.py loop -- run --max-cycles 3 ...      (also: each cycle's wall time)

Runs the pass in this process (``upload``: ``python -m local`` of the checkout in ``--code``, so
an older commit can be measured the same way; ``original``: the replay of the original tool in
``tests/fixtures/original_tool.py``). This process makes itself a child subreaper, so every
process the pass starts (forkserver, upload workers, their ``wandb-core``) stays in its tree even
when orphaned, and is reaped here: ``cpu_s`` is user + system CPU of the whole tree, exact (the
kernel adds a reaped child's CPU to its parent's; the sampler's own is taken out). A sampler
process sums the RSS and PSS of the tree every ``--sample`` seconds (``peak_tree_rss_mib``,
``peak_tree_pss_mib``: PSS counts a page shared by a fork and its parent once);
``self_maxrss_mib`` is this process alone (its ``VmHWM``: ``ru_maxrss`` would carry over the
high-water mark of the process that started it).
Prints one JSON line. Standard library only before the pass, so an idle pass is measured as is.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import resource
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Tuple

PR_SET_CHILD_SUBREAPER = 36


def make_subreaper() -> None:
    """Keep orphaned descendants in this tree (Linux prctl); they are reaped by :func:`reap_all`."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


def tree_memory(root: int, exclude: int) -> Tuple[int, int]:
    """Given a pid, return the summed RSS and PSS in bytes of it and its descendants but ``exclude``.

    RSS counts a page shared by two processes (a fork and its parent) in both; PSS divides it
    between them, so the PSS sum is the physical memory of the tree.
    """
    parents: Dict[int, int] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat", "rb") as handle:
                    parents[int(name)] = int(handle.read().rsplit(b")", 1)[1].split()[1])
            except (OSError, IndexError):
                continue
    members, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        for pid, ppid in parents.items():
            if ppid == parent and pid not in members:
                members.add(pid)
                frontier.append(pid)
    rss = pss = 0
    for pid in members - {exclude}:
        try:
            with open(f"/proc/{pid}/smaps_rollup", "rb") as handle:
                fields = dict(line.split(b":", 1) for line in handle.read().splitlines()[1:])
        except (OSError, ValueError):
            continue  # ended between the listing and this read
        rss += int(fields.get(b"Rss", b"0 kB").split()[0]) * 1024
        pss += int(fields.get(b"Pss", b"0 kB").split()[0]) * 1024
    return rss, pss


def sample(root: int, interval: float) -> None:
    """Sample the tree of ``root`` every ``interval`` s until stdin has a line; print the peaks."""
    peak_rss = peak_pss = samples = 0
    while True:
        rss, pss = tree_memory(root, exclude=os.getpid())
        peak_rss, peak_pss, samples = max(peak_rss, rss), max(peak_pss, pss), samples + 1
        if select.select([sys.stdin], [], [], interval)[0]:
            break
    print(json.dumps([peak_rss, peak_pss, samples, time.process_time()]), flush=True)


class Sampler:
    """The sampler, in a process of its own started by exec (it shares no page with the pass).

    A process, not a thread: the pass runs single-threaded, as it does in production (an idle
    full scan shares its ``stat`` calls out over forked processes only from a single-threaded one).
    """

    def __init__(self, interval: float) -> None:
        self.process = subprocess.Popen(
            [sys.executable, __file__, "sample", str(os.getpid()), str(interval)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        self.peak_rss, self.peak_pss, self.samples, self.cpu = 0, 0, 0, 0.0

    def finish(self) -> None:
        """Stop the sampler, reap it and keep its figures (its CPU is taken out of the pass's)."""
        output, _ = self.process.communicate(b"stop\n")
        self.peak_rss, self.peak_pss, self.samples, self.cpu = json.loads(output)


def reap_all(limit: float = 60.0) -> int:
    """Wait for every descendant left (a forkserver, a wandb-core flushing); return how many."""
    stop_forkserver()
    reaped, deadline = 0, time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            time.sleep(0.05)
        else:
            reaped += 1
    return reaped


def stop_forkserver() -> None:
    """Stop multiprocessing's helper processes, which would otherwise live until this one exits."""
    for name, attribute in (("forkserver", "_forkserver"), ("resource_tracker", "_resource_tracker")):
        module = sys.modules.get("multiprocessing." + name)
        if module is not None:
            getattr(module, attribute)._stop()


def run_upload(code: Path, argv: List[str]) -> int:
    sys.path.insert(0, str(code))
    os.chdir(code)
    from local.cli.main import main

    return int(main(argv))


def run_loop(code: Path, argv: List[str], cycles: List[float]) -> int:
    """Given ``run`` flags, run the service loop, timing each cycle (``run_cycle``) into ``cycles``."""
    sys.path.insert(0, str(code))
    os.chdir(code)
    import local.service.cycle as cycle
    from local.cli.main import main

    inner = cycle.run_cycle

    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            cycles.append(round(time.perf_counter() - started, 4))

    cycle.run_cycle = timed  # type: ignore[assignment]
    return int(main(argv))


def run_original(argv: List[str]) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.fixtures.original_tool import replay_original_upload

    results, manifest, state_dir, variants = argv
    replay_original_upload(Path(results), Path(manifest), Path(state_dir), variants=variants.split(","))
    return 0


def high_water_mib() -> float:
    """Return this process's peak RSS (``VmHWM``), in MiB."""
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("which", choices=("upload", "original", "loop", "sample"))
    parser.add_argument("--code", default=str(Path(__file__).resolve().parents[1]))
    parser.add_argument("--sample", type=float, default=0.1)
    parser.add_argument("rest", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    rest = args.rest[1:] if args.rest[:1] == ["--"] else args.rest
    if args.which == "sample":
        sample(int(rest[0]), float(rest[1]))
        return
    make_subreaper()
    sampler = Sampler(args.sample)
    started = time.perf_counter()
    cycles: List[float] = []
    if args.which == "upload":
        code = run_upload(Path(args.code), rest)
    elif args.which == "loop":
        code = run_loop(Path(args.code), rest, cycles)
    else:
        code = run_original(rest)
    wall = time.perf_counter() - started
    self_rss = high_water_mib()
    sampler.finish()
    reaped = reap_all()
    own = cpu_seconds(resource.RUSAGE_SELF)
    imported = [name for name in ("wandb", "paramiko") if name in sys.modules]
    figures = dict(
        wall_s=round(wall, 3),
        cpu_s=round(own + cpu_seconds(resource.RUSAGE_CHILDREN) - sampler.cpu, 3),
        cpu_self_s=round(own, 3),
        sampler_cpu_s=round(sampler.cpu, 3),
        peak_tree_rss_mib=round(sampler.peak_rss / 2**20, 1),
        peak_tree_pss_mib=round(sampler.peak_pss / 2**20, 1),
        self_maxrss_mib=round(self_rss, 1),
        rss_samples=sampler.samples,
        reaped=reaped,
        imported=imported,
        exit_code=code,
    )
    if cycles:
        figures["cycle_wall_s"] = cycles
    sys.stdout.flush()
    print("MEASURED " + json.dumps(figures), flush=True)


if __name__ == "__main__":
    main()

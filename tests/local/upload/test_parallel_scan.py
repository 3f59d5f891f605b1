"""Scan keys shared out over forked processes are the keys one process computes, whatever fails."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import List

import pytest

from local.upload import parallel_scan
from tests.fixtures.trees import make_results_tree, write_checkpoint


@pytest.fixture
def model_paths(tmp_path: Path) -> List[str]:
    """Seven models whose checkpoints differ, one with a folder still waiting for its metrics."""
    results = make_results_tree(tmp_path / "results", [f"m{i}" for i in range(7)], [100, 200])
    for index in range(7):
        for step in range(300, 300 + 100 * index, 100):
            write_checkpoint(results, f"m{index}", step)
    (results / "m3" / "checkpoint-900").mkdir()
    return [str(results / f"m{i}") for i in range(7)] + [str(results / "missing")]


def _recording_key_of(
    monkeypatch: pytest.MonkeyPatch, log_path: Path, fail_in_children: bool = False
) -> None:
    """Make every key computation append its process id to ``log_path`` (children inherit the patch)."""
    real, parent = parallel_scan.key_of, os.getpid()

    def key_of(model_path: str) -> int:
        with open(log_path, "a", encoding="ascii") as handle:
            handle.write(f"{os.getpid()}\n")
        if fail_in_children and os.getpid() != parent:
            raise OSError("disk went away")
        return real(model_path)

    monkeypatch.setattr(parallel_scan, "key_of", key_of)


def test_parallel_scan_children_compute_the_keys_this_process_would(
    model_paths: List[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    alone = [parallel_scan.key_of(path) for path in model_paths]
    assert len(set(alone)) == len(alone)  # every model differs: a mixed-up order would show
    _recording_key_of(monkeypatch, tmp_path / "pids")
    assert parallel_scan.scan_keys(model_paths, processes=3) == alone
    pids = (tmp_path / "pids").read_text().split()
    assert len(pids) == len(model_paths) and len(set(pids)) == 3  # this process and two children
    for child in set(pids) - {str(os.getpid())}:
        with pytest.raises(ChildProcessError):  # already reaped: no zombie left behind
            os.waitpid(int(child), os.WNOHANG)


def test_parallel_scan_a_failed_child_costs_only_time(
    model_paths: List[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    alone = [parallel_scan.key_of(path) for path in model_paths]
    _recording_key_of(monkeypatch, tmp_path / "pids", fail_in_children=True)
    assert parallel_scan.scan_keys(model_paths, processes=2) == alone
    pids = (tmp_path / "pids").read_text().split()
    assert pids.count(str(os.getpid())) == len(model_paths)  # its share was scanned here again


def test_parallel_scan_never_forks_beside_another_thread() -> None:
    release = threading.Event()
    other = threading.Thread(target=release.wait)
    other.start()
    try:
        assert parallel_scan.processes_for(100_000) == 1
    finally:
        release.set()
        other.join()


def test_parallel_scan_small_trees_stay_in_one_process() -> None:
    assert parallel_scan.processes_for(parallel_scan.MIN_MODELS_PER_PROCESS * 2 - 1) == 1


def test_parallel_scan_a_child_reaped_elsewhere_is_not_trusted(
    model_paths: List[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    alone = [parallel_scan.key_of(path) for path in model_paths]
    real_waitpid = os.waitpid

    def reaped_by_someone_else(pid: int, options: int):
        real_waitpid(pid, options)
        raise ChildProcessError(10, "No child processes")

    _recording_key_of(monkeypatch, tmp_path / "pids")
    monkeypatch.setattr(os, "waitpid", reaped_by_someone_else)
    assert parallel_scan.scan_keys(model_paths, processes=2) == alone
    pids = (tmp_path / "pids").read_text().split()
    assert pids.count(str(os.getpid())) == len(model_paths)  # the child's answer was not used

"""health: "healthy" means the loop does its job, not only that its heartbeat is fresh."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List

import pytest

import local.service.cycle
from local.cli.main import main
from local.errors import PermanentError
from local.service.heartbeat import HealthRule, LoopRecord, judge, write_heartbeat
from local.transfer.pull import PullReport
from remote import cli as remote_cli
from tests.fixtures.trees import make_results_tree
from tests.fixtures.upload import offline_service_args

RULE = HealthRule(max_age=600, max_failed_cycles=3, max_without_success=3600)


def _beat(**fields) -> dict:
    return {"time": 10_000.0, "started": 9_000.0, "last_exit_code": 0, "failed_cycles": 0, **fields}


def test_health_fresh_heartbeat_of_succeeding_cycles_is_healthy() -> None:
    assert judge(_beat(last_success=9_990.0), RULE, now=10_100.0) is None


def test_health_stale_heartbeat_is_unhealthy() -> None:
    assert "stuck or dead" in (judge(_beat(), RULE, now=10_700.0) or "")


def test_health_permanent_failure_is_unhealthy_at_once() -> None:
    beat = _beat(last_exit_code=4, failed_cycles=1, last_errors=["pull: host key of gpu01 changed"])
    reason = judge(beat, RULE, now=10_001.0) or ""
    assert reason.startswith("the last cycle failed permanently (exit 4") and "host key of gpu01" in reason


def test_health_counts_failed_cycles_in_a_row() -> None:
    beat = _beat(last_exit_code=3, last_errors=["pull: cannot reach gpu01:22"], last_success=9_950.0)
    assert judge(dict(beat, failed_cycles=2), RULE, now=10_001.0) is None
    reason = judge(dict(beat, failed_cycles=3), RULE, now=10_001.0) or ""
    assert reason == "3 cycles in a row failed (limit 3); last: pull: cannot reach gpu01:22"


def test_health_no_success_for_too_long_is_unhealthy_and_zero_turns_it_off() -> None:
    beat = _beat(last_exit_code=3, failed_cycles=1, last_success=5_000.0)
    assert "no cycle succeeded for 5001 s (limit 3600 s)" in (judge(beat, RULE, now=10_001.0) or "")
    assert judge(beat, HealthRule(600, 3, 0), now=10_001.0) is None
    never = _beat(last_exit_code=3, failed_cycles=1, started=5_000.0)
    assert "no cycle has succeeded yet for 5001 s" in (judge(never, RULE, now=10_001.0) or "")


def test_health_a_success_resets_the_count() -> None:
    record = LoopRecord()
    for _ in range(3):
        record.cycle += 1
        record.finished(3, ["upload: W&B unreachable"], failed=True)
    assert record.failed_cycles == 3 and record.last_success is None
    record.cycle += 1
    record.finished(0, [], failed=False)
    assert (record.failed_cycles, record.last_cycle, record.last_errors) == (0, 4, [])
    assert record.last_success is not None


def _loop(tmp_path: Path, cycles: int, *extra: str) -> int:
    loop = ["--poll-interval-seconds", "0.01", "--max-cycles", str(cycles)]
    return main(["run", *offline_service_args(tmp_path), *loop, *extra])


def _health(tmp_path: Path, *extra: str) -> int:
    return main(["health", "--state-dir", str(tmp_path / "state"), *extra])


def test_health_loop_whose_every_cycle_fails_turns_unhealthy_after_the_limit(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    # No manifest and no remote: every upload step fails (exit 2), yet the loop goes on.
    assert _loop(tmp_path, 2) == 0
    capsys.readouterr()
    assert _health(tmp_path) == 0
    assert capsys.readouterr().out.startswith("healthy: last cycle: #2 at ")
    assert _loop(tmp_path, 3) == 0
    assert _health(tmp_path) == 1
    out = capsys.readouterr().out
    assert out.startswith("unhealthy: 3 cycles in a row failed (limit 3); last: upload: manifest not found")
    assert _health(tmp_path, "--max-failed-cycles", "4") == 0


def test_health_permanent_pull_failure_then_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    remote_root = make_results_tree(tmp_path / "remote-results", ["ModelA-sft-x"], [100, 200])
    assert (
        remote_cli.main(["pack", "--results-root", str(remote_root), "--outbox", str(tmp_path / "inbox")])
        == 0
    )

    def host_key_changed(options, results_root, pulled: List[PullReport]) -> int:
        raise PermanentError("host key of gpu01:22 changed", "compare the fingerprint")

    monkeypatch.setattr(local.service.cycle, "_pull", host_key_changed)
    assert _loop(tmp_path, 1, "--host", "gpu01", "--remote-outbox", "/o") == 0
    capsys.readouterr()
    assert _health(tmp_path) == 1
    assert "failed permanently (exit 4" in capsys.readouterr().out
    assert (
        main(["status", "--results-root", str(tmp_path / "results"), "--state-dir", str(tmp_path / "state")])
        == 1
    )
    assert "service: UNHEALTHY: the last cycle failed permanently" in capsys.readouterr().out

    def pulled_fine(options, results_root, pulled: List[PullReport]) -> int:
        pulled.append(PullReport())
        return 0

    monkeypatch.setattr(local.service.cycle, "_pull", pulled_fine)  # the known_hosts file was fixed
    monkeypatch.setattr(local.service.cycle, "_ack", lambda options, seq: 0)
    assert _loop(tmp_path, 1, "--host", "gpu01", "--remote-outbox", "/o") == 0
    capsys.readouterr()
    assert _health(tmp_path) == 0
    beat = json.loads((tmp_path / "state" / "heartbeat.json").read_text())
    assert (beat["last_exit_code"], beat["failed_cycles"]) == (0, 0) and beat["last_success"]


def test_health_a_remote_that_has_published_nothing_yet_is_not_a_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A fresh install: the pull works, the outbox is still empty, so there is no manifest yet.
    def empty_outbox(options, results_root, pulled: List[PullReport]) -> int:
        pulled.append(PullReport())
        return 0

    monkeypatch.setattr(local.service.cycle, "_pull", empty_outbox)
    assert _loop(tmp_path, 3, "--host", "gpu01", "--remote-outbox", "/o") == 0
    beat = json.loads((tmp_path / "state" / "heartbeat.json").read_text())
    assert (beat["last_exit_code"], beat["failed_cycles"], beat["last_errors"]) == (0, 0, [])
    assert _health(tmp_path) == 0


def test_health_restarted_loop_keeps_the_time_of_the_last_success(tmp_path: Path) -> None:
    heartbeat = tmp_path / "state" / "heartbeat.json"
    heartbeat.parent.mkdir()
    write_heartbeat(str(heartbeat), "idle", LoopRecord(last_success=1234.0, last_exit_code=3))
    assert _loop(tmp_path, 1) == 0  # fails: no manifest
    assert json.loads(heartbeat.read_text())["last_success"] == 1234.0
    assert _health(tmp_path, "--max-seconds-without-success", "60") == 1

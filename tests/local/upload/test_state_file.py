"""Per-model state files: stable names, round trip, refusal of corrupt files, atomic writes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from local.upload.state import ModelState, StateError, load_state, save_state, state_file_name, state_path


def test_state_file_name_is_stable_and_safe() -> None:
    name = state_file_name("Games/../x y", "eval-123")
    assert name == state_file_name("Games/../x y", "eval-123")
    assert "/" not in name and " " not in name and name.endswith(".json")
    assert state_file_name("m", "eval-1") != state_file_name("m", "eval-2")


def test_state_missing_file_gives_fresh_state(tmp_path: Path) -> None:
    state = load_state(str(tmp_path / "absent.json"), "m", "r")
    assert state.processed_steps == [] and state.in_flight is None


def test_state_round_trip_keeps_every_field(tmp_path: Path) -> None:
    path = state_path(str(tmp_path), "m", "r")
    state = ModelState("m", "r", processed_steps=[20, 10], last_seen_step=20)
    state.failed_steps[30] = {"reason": "empty", "time": "t"}
    state.files[10] = ["metrics.json", 5, 6]
    state.digests[10] = "abc"
    state.table_rows = [{"checkpoint_step": 10, "revision": 0, "metrics": {"HR@10": 0.5}}]
    state.in_flight = {"start_step": 3, "pid": 1, "time": "t", "items": []}
    save_state(path, state)
    loaded = load_state(path, "m", "r")
    assert loaded.processed_steps == [10, 20]
    assert loaded.failed_steps == {30: {"reason": "empty", "time": "t"}}
    assert loaded.files == {10: ["metrics.json", 5, 6]} and loaded.digests == {10: "abc"}
    assert loaded.table_rows == state.table_rows and loaded.in_flight == state.in_flight
    assert loaded.last_update_time and loaded.last_seen_step == 20
    assert [n for n in os.listdir(tmp_path) if n.startswith(".tmp-")] == []


def test_state_corrupt_file_is_refused_not_reset(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text('{"version": 1, "processed_steps": [1, 2', encoding="utf-8")
    with pytest.raises(StateError):
        load_state(str(path), "m", "r")


def test_state_unknown_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text('{"version": 99}', encoding="utf-8")
    with pytest.raises(StateError):
        load_state(str(path), "m", "r")

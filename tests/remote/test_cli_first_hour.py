"""The remote commands in a new user's first hour: where things go, and errors that point the way."""

from __future__ import annotations

from pathlib import Path

import pytest

from remote.cli import main
from remote.contract.names import MANIFEST_NAME
from tests.fixtures.trees import make_results_tree


def test_prepare_manifest_without_output_flag_writes_under_the_results_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # It once wrote into the current folder, where neither pack nor the uploader looks.
    monkeypatch.delenv("REMOTE_MANIFEST_PATH", raising=False)
    root = make_results_tree(tmp_path / "results", ["ModelA-sft-x"], [100])
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(["prepare-manifest", "--results-root", str(root)]) == 0
    assert (root / MANIFEST_NAME).is_file() and list(elsewhere.iterdir()) == []


def test_pack_on_a_tree_without_models_says_so_and_where_it_looked(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The models are one level deeper than the --results-root given: a common slip.
    make_results_tree(tmp_path / "results" / "genrec", ["ModelA-sft-x"], [100])
    root = tmp_path / "results"
    assert main(["pack", "--results-root", str(root), "--outbox", str(tmp_path / "outbox")]) == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings[0].startswith(f"no model found in {root}: a model is a folder there holding checkpoint-")
    assert warnings[1] == f"{root / 'genrec'} holds models: did you mean --results-root {root / 'genrec'}?"


def test_pack_with_models_warns_nothing(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = make_results_tree(tmp_path / "results", ["ModelA-sft-x"], [100])
    assert main(["pack", "--results-root", str(root), "--outbox", str(tmp_path / "outbox")]) == 0
    assert [r for r in caplog.records if r.levelname == "WARNING"] == []


def test_missing_results_root_hint_depends_on_whether_the_flag_was_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.delenv("RESULTS_ROOT", raising=False)
    monkeypatch.chdir(tmp_path)
    assert main(["pack"]) == 2  # no ./results here, and no flag
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"Error: results root not found: {tmp_path / 'results'}",
        "Hint: pass --results-root DIR (the folder that holds <model_dir>/checkpoint-<step>/)",
    ]
    assert main(["pack", "--results-root", "reslts"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"Error: results root not found: {tmp_path / 'reslts'}",
        f"Hint: check the path (a relative one starts at the current folder, {tmp_path})",
    ]

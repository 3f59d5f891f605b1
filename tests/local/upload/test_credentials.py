"""No W&B API key: one line, exit 4, before any model (it once printed the SDK's error per model)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import local.upload.uploader
from local.cli.main import main
from local.errors import PermanentError
from local.upload.credentials import require_api_key
from remote.contract.names import MANIFEST_NAME
from remote.prepare import ManifestOptions, prepare_manifest
from tests.fixtures.trees import make_results_tree


@pytest.fixture
def no_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No key anywhere the SDK looks: no variables, and an empty netrc file."""
    for name in ("WANDB_API_KEY", "WANDB_API_KEY_FILE", "WANDB_IDENTITY_TOKEN_FILE", "WANDB_BASE_URL"):
        monkeypatch.setenv(name, "")  # recorded, so a key the code under test sets is undone after
        monkeypatch.delenv(name)
    netrc = tmp_path / "netrc"
    netrc.write_text("")
    monkeypatch.setenv("NETRC", str(netrc))
    return netrc


@pytest.fixture
def results(tmp_path: Path) -> Path:
    root = make_results_tree(tmp_path / "results", ["ModelA-sft-x", "ModelB-sft-y", "ModelC-sft-z"], [100])
    prepare_manifest(ManifestOptions(str(root), str(root / MANIFEST_NAME)))
    return root


def test_credentials_missing_key_is_one_line_exit_4_before_any_model(
    no_key: Path,
    results: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    def no_model_please(*args, **kwargs):
        raise AssertionError("no model may be tried without a key")

    monkeypatch.setattr(local.upload.uploader, "run_isolated", no_model_please)
    args = ["--results-root", str(results), "--state-dir", str(tmp_path / "state"), "--wandb-mode", "online"]
    assert main(["upload", "--once", *args]) == 4
    captured = capsys.readouterr()
    assert captured.out == ""
    errors = [line for line in captured.err.splitlines() if line.startswith("Error:")]
    assert errors == [
        "Error: no W&B API key, so nothing was uploaded: WANDB_API_KEY is not set, WANDB_API_KEY_FILE "
        f"names no file with a key, and {no_key} has no entry for api.wandb.ai"
    ]
    assert "refused" not in captured.err and not (tmp_path / "state").exists()
    assert main(["once", *args, "--inbox", str(tmp_path / "inbox")]) == 4
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and out[0].startswith("failed: upload: no W&B API key")


def test_credentials_found_where_the_sdk_finds_them(no_key: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(PermanentError):
        require_api_key("online")
    no_key.write_text("machine other.example login user password k" + "0" * 39 + "\n")
    with pytest.raises(PermanentError):
        require_api_key("online")  # an entry for another host is not one the SDK would use
    no_key.write_text("machine api.wandb.ai login user password k" + "0" * 39 + "\n")
    require_api_key("online")
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:8080")  # a self-hosted server: its own entry
    with pytest.raises(PermanentError, match="has no entry for 127.0.0.1:8080"):
        require_api_key("online")
    no_key.write_text("machine 127.0.0.1:8080 login user password k" + "0" * 39 + "\n")
    require_api_key("online")


def test_credentials_key_file_is_loaded_for_the_sdk(
    no_key: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_file = tmp_path / "wandb_api_key"
    key_file.write_text("")
    monkeypatch.setenv("WANDB_API_KEY_FILE", str(key_file))
    with pytest.raises(PermanentError):
        require_api_key("online")  # an empty file holds no key
    key_file.write_text("k" + "0" * 39 + "\n")
    require_api_key("online")
    assert os.environ["WANDB_API_KEY"] == "k" + "0" * 39


def test_credentials_offline_and_dry_runs_need_no_key(
    no_key: Path, results: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    require_api_key("offline")
    args = ["--results-root", str(results), "--state-dir", str(tmp_path / "state"), "--wandb-mode", "online"]
    assert main(["upload", "--once", "--disable-wandb", *args]) == 0
    assert "would upload" in capsys.readouterr().out

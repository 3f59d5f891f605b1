"""The original tool's options carry on: upload-time overrides, WANDB_MODE/RESUME/JOB_TYPE, --variants,
--model-filter's exact match, --log-level after the command."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from local.cli.main import main
from local.upload.selection import select_models
from local.upload.uploader import upload_pass
from remote.contract.exit_codes import EXIT_OK, EXIT_PERMANENT, EXIT_USAGE
from remote.contract.manifest import load_manifest
from tests.fixtures.trees import REPO_ROOT
from tests.fixtures.upload import assert_exactly_once, generated_tree, options


def _upload(*args: str, env: dict, timeout: float = 120) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "local", "upload", "--once", *args]
    return subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def test_upload_time_overrides_send_one_model_to_a_new_run_only(wandb_server, tmp_path) -> None:
    results = generated_tree(tmp_path / "results", ["a", "b"], [100, 200])
    overrides = tmp_path / "overrides.json"
    overrides.write_text(
        json.dumps({"models": {"a": {"wandb_run_id": "a-fresh", "wandb_run_name": "a-new"}}})
    )
    env = {**os.environ, **wandb_server.env(), "WANDB_EVAL_MANIFEST_OVERRIDES": str(overrides)}
    args = ("--results-root", str(results), "--state-dir", str(tmp_path / "state"), "--variants", "ckpt_step")
    done = _upload(*args, env=env)
    assert done.returncode == EXIT_OK, done.stderr
    assert_exactly_once(wandb_server, "a-fresh", [100, 200])
    assert wandb_server.run("a-fresh").name == "a-new"
    assert wandb_server.run("eval-a") is None  # the manifest's id was never written
    assert_exactly_once(wandb_server, "eval-b", [100, 200])


def test_upload_time_overrides_named_but_missing_stop_the_pass(tmp_path, capsys, monkeypatch) -> None:
    # A key exists (this test is not about credentials, which are checked first), but no call is made.
    monkeypatch.setenv("WANDB_API_KEY", "k" * 40)
    results = generated_tree(tmp_path / "results", ["a"], [100])
    code = main(
        [
            "upload",
            "--once",
            "--results-root",
            str(results),
            "--manifest-overrides",
            str(tmp_path / "absent.json"),
        ]
    )
    assert code == EXIT_USAGE
    assert capsys.readouterr().err.startswith("Error: overrides file not found")


def test_wandb_mode_disabled_validates_and_makes_no_network_call(wandb_server, tmp_path) -> None:
    results = generated_tree(tmp_path / "results", ["a"], [100, 200])
    env = {**os.environ, **wandb_server.env(), "WANDB_MODE": "disabled"}
    done = _upload("--results-root", str(results), "--state-dir", str(tmp_path / "state"), env=env)
    assert done.returncode == EXIT_OK, done.stderr
    assert "a (eval-a): would upload 2 checkpoint(s) [100, 200]" in done.stdout
    assert "dry run, nothing written" in done.stdout
    assert wandb_server.request_count() == 0 and not (tmp_path / "state").exists()


def test_wandb_job_type_and_resume_from_the_environment(wandb_server, tmp_path) -> None:
    results = generated_tree(tmp_path / "results", ["a"], [100])
    base = {**os.environ, **wandb_server.env()}
    args = ("--results-root", str(results), "--state-dir", str(tmp_path / "state"), "--variants", "ckpt_step")
    must = _upload(
        *args, "--init-timeout", "10", "--retry-attempts", "1", env={**base, "WANDB_RESUME": "must"}
    )
    assert must.returncode == EXIT_PERMANENT, must.stdout + must.stderr  # must resume, but no such run
    assert "eval-a" in must.stdout
    done = _upload(*args, env={**base, "WANDB_JOB_TYPE": "nightly-eval"})
    assert done.returncode == EXIT_OK, done.stderr
    assert wandb_server.run("eval-a").job_type == "nightly-eval"


def test_wandb_values_w_and_b_does_not_accept_are_one_line_errors_before_anything_runs(tmp_path) -> None:
    results = generated_tree(tmp_path / "results", ["a"], [100])
    for name, value in (
        ("WANDB_MODE", "onlin"),
        ("WANDB_RESUME", "sometimes"),
        ("WANDB_UPLOAD_VARIANTS", "ep"),
    ):
        done = _upload("--results-root", str(results), env={**os.environ, name: value})
        assert done.returncode == EXIT_USAGE, (name, done.stderr)
        errors = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
        assert len(errors) == 1 and (name in errors[0] or "upload variants" in errors[0]), done.stderr


def test_model_filter_exact_name_selects_only_that_model(tmp_path) -> None:
    results = generated_tree(tmp_path / "results", ["Games-sft", "Games-sft-backup", "Toys-sft"], [100])
    models = load_manifest(str(results / ".wandb_eval_manifest.json")).models
    assert [m.model_dir for m in select_models(models, ["Games-sft"])] == ["Games-sft"]
    assert [m.model_dir for m in select_models(models, ["Games"])] == ["Games-sft", "Games-sft-backup"]
    assert [m.model_dir for m in select_models(models, ["*-sft,Toys*"])] == ["Games-sft", "Toys-sft"]


def test_log_level_is_accepted_after_the_command_too(tmp_path) -> None:
    results = generated_tree(tmp_path / "results", ["a"], [100])
    args = ("--results-root", str(results), "--disable-wandb")
    env = {**os.environ, "WANDB_MODE": "disabled"}  # a dry run that asks W&B nothing
    chatty = _upload(*args, env=env)
    quiet = _upload(*args, "--log-level", "warning", env=env)
    assert chatty.returncode == quiet.returncode == EXIT_OK, quiet.stderr
    assert "INFO" in chatty.stderr and "INFO" not in quiet.stderr


def test_variants_select_the_runs_of_a_pass(wandb_server, tmp_path) -> None:
    results = generated_tree(tmp_path / "results", ["a"], [100])
    assert upload_pass(options(results, tmp_path / "state", variants=("epoch",))).exit_code() == EXIT_OK
    assert wandb_server.run("eval-a") is None and wandb_server.run("eval-a-epoch").group == "epoch"

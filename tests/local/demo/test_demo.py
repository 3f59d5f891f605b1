"""demo: the README's first command works on a fresh machine with no W&B account."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from local.cli.main import main
from remote.contract.options import TABLE
from remote.demo.sample import SAMPLE_MODELS
from tests.fixtures.trees import REPO_ROOT


def test_demo_uploads_every_sample_checkpoint_then_only_the_new_one(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    workdir = tmp_path / "demo"
    assert main(["demo", "--workdir", str(workdir)]) == 0
    out = capsys.readouterr().out
    total = sum(len(steps) for _, steps in SAMPLE_MODELS) + 1  # + the metrics.tsv-only checkpoint
    # Each model's run and its epoch run; offline, the demo never says "to W&B".
    assert f"uploaded {total} checkpoints to offline run files (12 runs opened" in out
    assert "uploaded 1 checkpoints to offline run files (2 runs opened" in out
    assert "uploaded 0 checkpoints to offline run files (0 runs opened" in out
    assert len(list((workdir / "local" / "wandb").glob("offline-run-*/run-*.wandb"))) == 14
    first = SAMPLE_MODELS[0][0]
    assert any(
        line.startswith(first) and line.split()[2] == str(len(SAMPLE_MODELS[0][1]) + 1)
        for line in out.splitlines()
    )
    # Offline mode: the table is labelled as such (its state is apart from online uploads).
    assert (
        "W&B offline mode: local run files, not in W&B (state: {})".format(
            workdir / "local" / "state" / "offline"
        )
        in out
    )
    assert "see this table again: make status" in out
    # It ends with the report of the demo's data, and says where its page is.
    index = workdir / "local" / "report" / "index.html"
    assert (
        out.rstrip().splitlines()[-1] == f"==> report: open {index} (17 charts; best_summary.csv beside it)"
    )
    assert len((workdir / "local" / "report" / "best_summary.csv").read_text().splitlines()) == 1 + 6


def test_demo_without_matplotlib_still_writes_the_report_tables_and_says_how_to_get_charts(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    workdir = tmp_path / "demo"
    assert main(["demo", "--workdir", str(workdir)]) == 0
    last = capsys.readouterr().out.rstrip().splitlines()[-2:]
    assert last[0].endswith("index.html (0 charts; best_summary.csv beside it)")
    assert (
        last[1] == "==> report: no charts, matplotlib is not installed; to get them: pip install '.[report]'"
    )
    report = workdir / "local" / "report"
    assert (report / "checkpoint_metrics.csv").exists() and not (report / "charts").exists()


def test_demo_refuses_to_delete_a_directory_it_did_not_make(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    (tmp_path / "precious.txt").write_text("keep me")
    assert main(["demo", "--workdir", str(tmp_path)]) != 0
    assert (tmp_path / "precious.txt").exists()
    assert "is not a demo directory" in capsys.readouterr().err


def test_demo_never_writes_into_the_users_real_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Same model names as real trees: with default ids and project, a demo run with a W&B key set
    # would append sample metrics to the researchers' real runs.
    from remote.contract.manifest import default_run_id, infer_cb_setting, infer_dataset, load_manifest

    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    workdir = tmp_path / "demo"
    assert main(["demo", "--workdir", str(workdir)]) == 0
    models = load_manifest(str(workdir / "local" / "results" / ".wandb_eval_manifest.json")).models
    real_ids = {
        default_run_id("eval", m.model_dir, infer_dataset(m.model_dir), infer_cb_setting(m.model_dir), "test")
        for m in models
    }
    assert all(m.wandb_project == "wandb-eval-pipeline-demo" for m in models)
    assert all(m.wandb_run_id.startswith("demo-") and m.wandb_run_id not in real_ids for m in models)


def test_demo_never_deletes_the_compose_demos_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # `make demo` once deleted .demo/compose (the compose demo's keys, mounted into its running
    # containers): the walkthrough now works in .demo/walkthrough and deletes only its own folders.
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("DEMO_WORKDIR", raising=False)
    monkeypatch.chdir(tmp_path)
    keys = tmp_path / ".demo" / "compose"
    keys.mkdir(parents=True)
    (keys / "known_hosts").write_text("[127.0.0.1]:2222 ssh-ed25519 AAAA\n")
    assert main(["demo"]) == 0  # the default work directory, as `make demo` uses it
    assert main(["demo"]) == 0  # and again: the reset deletes only the demo's own folders
    assert (tmp_path / ".demo" / "walkthrough" / "local" / "results").is_dir()
    assert main(["demo", "--workdir", ".demo"]) == 2  # the parent folder: refused, nothing deleted
    assert (keys / "known_hosts").read_text().startswith("[127.0.0.1]:2222")


def test_demo_work_directories_of_the_two_demos_are_apart() -> None:
    makefile = (REPO_ROOT / "Makefile").read_text()
    walkthrough = re.search(r"^DEMO_WORKDIR \?= (\S+)$", makefile, re.MULTILINE)
    assert walkthrough and walkthrough.group(1) == TABLE["workdir"].default == ".demo/walkthrough"
    compose_keys = re.search(
        r"^keys=\$\{DEMO_KEYS_DIR:-(\S+)\}$",
        (REPO_ROOT / "docker" / "demo-compose.sh").read_text(),
        re.MULTILINE,
    )
    assert compose_keys and compose_keys.group(1) == ".demo/compose"
    assert "./.demo/compose/" in (REPO_ROOT / "docker" / "demo.env").read_text()


def test_make_status_after_make_demo_shows_the_demos_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The README's first hour: `make demo`, then `make status` (no results of one's own yet).
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("DEMO_WORKDIR", raising=False)
    monkeypatch.chdir(tmp_path)
    assert main(["demo"]) == 0  # what `make demo` runs, from the folder `make` runs in
    venv = Path(sys.executable).parent.parent
    env = {k: v for k, v in os.environ.items() if k not in ("RESULTS_ROOT", "STATE_DIR", "MAKEFLAGS")}
    env["PYTHONPATH"] = str(REPO_ROOT)
    make = [
        "make",
        "-s",
        "-f",
        str(REPO_ROOT / "Makefile"),
        "status",
        f"VENV={venv}",
        "-o",
        f"{venv}/.installed",
    ]
    done = subprocess.run(make, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "No results in ./results yet; showing the demo's (.demo/walkthrough/local):"
    assert lines[1].startswith("W&B offline mode: local run files, not in W&B")
    first, steps = SAMPLE_MODELS[0]
    assert next(line for line in lines if line.startswith(first)).split()[2] == str(len(steps) + 1)

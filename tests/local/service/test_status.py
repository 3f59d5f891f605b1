"""status: per-model upload state readable at a glance, and as JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from local.cli.main import main
from local.upload.state import ModelState, save_state, state_path
from remote.cli import main as remote_main
from remote.contract.names import MANIFEST_NAME, PULL_STATE_NAME
from remote.prepare import ManifestOptions, prepare_manifest
from tests.fixtures.sshd import SshServer
from tests.fixtures.trees import make_results_tree, write_checkpoint


@pytest.fixture
def uploaded(tmp_path: Path) -> Path:
    """A results tree with a manifest, and state saying two steps of ModelA were uploaded."""
    root = make_results_tree(tmp_path / "results", ["ModelA-sft-x", "ModelB-sft-y"], [100, 200])
    report = prepare_manifest(ManifestOptions(str(root), str(root / MANIFEST_NAME)))
    run_id = report.models[0]["wandb_run_id"]
    state = ModelState(model_dir="ModelA-sft-x", wandb_run_id=run_id, processed_steps=[100, 200])
    state.table_rows = [
        {"checkpoint_step": 100, "revision": 0, "metrics": {"HR@10": 0.2}},
        {"checkpoint_step": 200, "revision": 0, "metrics": {"HR@10": 0.1}},
    ]
    state.failed_steps = {300: {"reason": "metrics.json is empty", "time": "t"}}
    save_state(state_path(str(tmp_path / "state"), "ModelA-sft-x", run_id), state)
    return tmp_path


def test_status_table_shows_counts_best_and_failures(uploaded: Path, capsys: pytest.CaptureFixture) -> None:
    code = main(
        ["status", "--results-root", str(uploaded / "results"), "--state-dir", str(uploaded / "state")]
    )
    out = capsys.readouterr().out.splitlines()
    assert code == 1  # a failed checkpoint is something to look at
    assert out[0] == "W&B online uploads (state: {})".format(uploaded / "state")
    model_a = next(line for line in out if line.startswith("ModelA-sft-x"))
    assert model_a.split()[2:8] == ["2", "200", "0.2000", "@100", "0", "200"]
    assert "    failed checkpoint-300: metrics.json is empty" in out
    assert next(line for line in out if line.startswith("ModelB-sft-y")).split()[2:4] == ["0", "-"]


def test_status_shows_the_loops_last_cycle_and_error(uploaded: Path, capsys: pytest.CaptureFixture) -> None:
    from local.service.heartbeat import LoopRecord, write_heartbeat

    record = LoopRecord(cycle=7, failed_cycles=1)
    record.finished(3, ["pull: cannot reach gpu01:22"], failed=True)
    write_heartbeat(str(uploaded / "state" / "heartbeat.json"), "idle", record)
    main(["status", "--results-root", str(uploaded / "results"), "--state-dir", str(uploaded / "state")])
    out = capsys.readouterr().out
    assert "last cycle: #7 at " in out
    assert "exit 3, 2 failed in a row; errors: pull: cannot reach gpu01:22" in out
    assert "service: healthy" in out  # 2 of the 3 failed cycles allowed by default


def _status_json(uploaded: Path) -> None:
    roots = ["--results-root", str(uploaded / "results"), "--state-dir", str(uploaded / "state")]
    main(["status", "--json", *roots])


def test_status_json_lists_every_model(uploaded: Path, capsys: pytest.CaptureFixture) -> None:
    _status_json(uploaded)
    document = json.loads(capsys.readouterr().out)
    by_dir = {m["model_dir"]: m for m in document["models"]}
    assert by_dir["ModelA-sft-x"]["uploaded"] == 2 and by_dir["ModelA-sft-x"]["best_step"] == 100
    assert by_dir["ModelB-sft-y"]["uploaded"] == 0


def test_status_before_the_first_pull_says_nothing_pulled_yet(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    # A fresh install is not an error: no manifest until the training machine's first bundle.
    assert main(["status", "--results-root", str(tmp_path), "--state-dir", str(tmp_path / "state")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Nothing pulled yet: no manifest at {}".format(tmp_path / MANIFEST_NAME))
    assert "error" not in out.lower()


def test_status_unreadable_manifest_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    (tmp_path / MANIFEST_NAME).write_text("{half")
    assert main(["status", "--results-root", str(tmp_path), "--state-dir", str(tmp_path / "state")]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines()[0].startswith("Error: manifest ") and "Hint: " in captured.err


def test_status_corrupt_state_file_is_reported_for_that_model_only(
    uploaded: Path, capsys: pytest.CaptureFixture
) -> None:
    state_file = next((uploaded / "state").glob("ModelA-sft-x-*.json"))
    state_file.write_text("{half-written")
    code = main(
        ["status", "--results-root", str(uploaded / "results"), "--state-dir", str(uploaded / "state")]
    )
    out = capsys.readouterr().out.splitlines()
    assert code == 1
    error_line = out[out.index(next(line for line in out if line.startswith("ModelA-sft-x"))) + 1]
    assert error_line.startswith("    error: ")
    assert next(line for line in out if line.startswith("ModelB-sft-y")).split()[2] == "0"


def test_status_shows_offline_runs_apart_and_labelled(uploaded: Path, capsys: pytest.CaptureFixture) -> None:
    # `make demo` uploads in offline mode, whose state lives in <state-dir>/offline/: status must
    # not say "0 uploaded" for it just because it reads the online side by default.
    online = next((uploaded / "state").glob("ModelA-sft-x-*.json"))
    (uploaded / "state" / "offline").mkdir()
    online.rename(uploaded / "state" / "offline" / online.name)
    main(["status", "--results-root", str(uploaded / "results"), "--state-dir", str(uploaded / "state")])
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("W&B offline mode: local run files, not in W&B (state: ")
    assert next(line for line in out if line.startswith("ModelA-sft-x")).split()[2] == "2"
    assert not any(line.startswith("W&B online uploads") for line in out)
    # With both sides holding state, both are shown, each under its label.
    save_state(
        state_path(str(uploaded / "state"), "ModelB-sft-y", _run_id(uploaded, "ModelB-sft-y")),
        ModelState(model_dir="ModelB-sft-y", wandb_run_id=_run_id(uploaded, "ModelB-sft-y")),
    )
    main(["status", "--results-root", str(uploaded / "results"), "--state-dir", str(uploaded / "state")])
    labels = [
        line.split(" (state")[0] for line in capsys.readouterr().out.splitlines() if line.startswith("W&B")
    ]
    assert labels == ["W&B online uploads", "W&B offline mode: local run files, not in W&B"]


def _run_id(root: Path, model_dir: str) -> str:
    manifest = json.loads((root / "results" / MANIFEST_NAME).read_text())
    return next(m["wandb_run_id"] for m in manifest["models"] if m["model_dir"] == model_dir)


def test_status_cuts_long_names_visibly(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    long_name = "Instruments-grec-sft-qwen4B-4-64-dsz0-with-a-very-long-experiment-suffix-v2"
    root = make_results_tree(tmp_path / "results", [long_name], [100])
    prepare_manifest(ManifestOptions(str(root), str(root / MANIFEST_NAME)))
    main(["status", "--results-root", str(root), "--state-dir", str(tmp_path / "state")])
    row = capsys.readouterr().out.splitlines()[2]
    shown = row.split()[0]
    assert len(shown) == 56 and long_name not in row
    assert shown == long_name[:35] + "..." + long_name[-18:]  # both ends readable, the cut visible


def test_status_shows_checkpoints_waiting_for_eval_and_the_newest(
    uploaded: Path, capsys: pytest.CaptureFixture
) -> None:
    for step in (300, 400):  # the checkpoint folders arrived, their eval has not written metrics yet
        (uploaded / "results" / "ModelB-sft-y" / "checkpoint-{}".format(step)).mkdir()
    main(["status", "--results-root", str(uploaded / "results"), "--state-dir", str(uploaded / "state")])
    out = capsys.readouterr().out.splitlines()
    index = out.index(next(line for line in out if line.startswith("ModelB-sft-y")))
    assert out[index].split()[2:8] == ["0", "-", "-", "2", "400", "at"] and out[index].endswith(" UTC")
    assert out[index + 1] == "    waiting for eval (no metrics yet): checkpoint-300, checkpoint-400"
    _status_json(uploaded)
    by_dir = {m["model_dir"]: m for m in json.loads(capsys.readouterr().out)["models"]}
    assert by_dir["ModelB-sft-y"]["waiting"] == [300, 400] and by_dir["ModelB-sft-y"]["newest_step"] == 400
    assert by_dir["ModelA-sft-x"]["waiting"] == [] and by_dir["ModelA-sft-x"]["newest_step"] == 200


def test_status_last_pull_reads_what_pull_writes(
    tmp_path: Path, sshd: SshServer, capsys: pytest.CaptureFixture
) -> None:
    root = make_results_tree(tmp_path / "remote", ["ModelA-sft-x"], [100])
    assert remote_main(["pack", "--results-root", str(root), "--outbox", str(tmp_path / "outbox")]) == 0
    write_checkpoint(root, "ModelA-sft-x", 200)
    assert remote_main(["pack", "--results-root", str(root), "--outbox", str(tmp_path / "outbox")]) == 0
    inbox = tmp_path / "inbox"
    pull = [
        "pull", "--host", sshd.host, "--port", str(sshd.port), "--user", sshd.user,
        "--identity", str(sshd.user_key), "--known-hosts", str(sshd.write_known_hosts(tmp_path / "kh")),
        "--remote-outbox", str(tmp_path / "outbox"), "--inbox", str(inbox),
        "--results-root", str(tmp_path / "absent"), "--consumer", "laptop",
    ]  # fmt: skip
    assert main(pull) == 0
    written = json.loads((inbox / PULL_STATE_NAME).read_text())["bundles"]["bundle-00000002-delta.tar.gz"]
    capsys.readouterr()
    args = [
        "--results-root",
        str(tmp_path / "absent"),
        "--state-dir",
        str(tmp_path / "state"),
        "--inbox",
        str(inbox),
    ]
    main(["status", *args])
    line = "last pull: bundle-00000002-delta.tar.gz (seq 2), verified {}".format(written["verified_at"])
    assert line in capsys.readouterr().out.splitlines() and written["verified_at"]
    main(["status", "--json", *args])
    assert json.loads(capsys.readouterr().out)["last_pull"] == {
        "name": "bundle-00000002-delta.tar.gz",
        "seq": 2,
        "verified_at": written["verified_at"],
    }


def test_status_says_in_one_line_why_a_model_has_no_epoch(
    uploaded: Path, capsys: pytest.CaptureFixture
) -> None:
    # ModelA's rows carry no epoch_progress and its manifest entry declares no training length.
    main(["status", "--results-root", str(uploaded / "results"), "--state-dir", str(uploaded / "state")])
    out = capsys.readouterr().out.splitlines()
    notes = [line for line in out if line.strip().startswith("epoch unknown")]
    assert len(notes) == 1 and "set them in the overrides file" in notes[0]
    assert notes[0].endswith("(1 model(s): ModelA-sft-x)")  # one line for all such models
    manifest = uploaded / "results" / MANIFEST_NAME
    document = json.loads(manifest.read_text())
    document["models"][0].update(num_train_epochs=3, max_steps=600)  # a stable source from now on
    manifest.write_text(json.dumps(document))
    main(["status", "--results-root", str(uploaded / "results"), "--state-dir", str(uploaded / "state")])
    assert "epoch unknown" not in capsys.readouterr().out

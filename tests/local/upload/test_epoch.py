"""The epoch run and the stable epoch: a logged epoch value never changes when checkpoints arrive."""

from __future__ import annotations

import json

from local.upload.epoch import manifest_epoch, stable_epoch
from local.upload.uploader import upload_pass
from remote.contract.exit_codes import EXIT_OK
from remote.contract.manifest import ModelEntry
from tests.fixtures.trees import write_checkpoint
from tests.fixtures.upload import model_entry, options, write_manifest

BOTH = ("ckpt_step", "epoch")


def _entry(**fields) -> ModelEntry:
    base = dict(model_entry("m"), **fields)
    known = {
        k: base[k] for k in ModelEntry.__dataclass_fields__ if k in base and k not in ("extra", "variants")
    }
    return ModelEntry(**known)


def test_epoch_rule_prefers_metrics_then_trainer_state_then_the_declared_length() -> None:
    entry = _entry(num_train_epochs=10.0, max_steps=320)
    assert stable_epoch(260, {"epoch": 7.5}, 8.0, entry) == 7.5
    assert stable_epoch(260, {}, 8.0, entry) == 8.0
    assert stable_epoch(260, {}, None, entry) == 8.125  # 260 / 320 * 10, whatever arrives later
    assert manifest_epoch(64, _entry(steps_per_epoch=32.0)) == 2.0
    assert stable_epoch(260, {}, None, _entry(num_train_epochs=10.0)) is None  # no length: unknown


def test_epoch_value_logged_never_changes_when_later_checkpoints_arrive(wandb_server, tmp_path) -> None:
    results = tmp_path / "results"
    write_checkpoint(results, "m", 260)
    write_checkpoint(results, "n", 260)
    write_manifest(
        results,
        [
            model_entry("m", num_train_epochs=10, max_steps=320),
            model_entry("n", num_train_epochs=10),  # the original would have said 10.0 for 260
        ],
    )
    opts = options(results, tmp_path / "state", variants=BOTH)
    assert upload_pass(opts).exit_code() == EXIT_OK
    write_checkpoint(results, "m", 320)
    write_checkpoint(results, "n", 320)
    assert upload_pass(opts).exit_code() == EXIT_OK
    for run_id in ("eval-m", "eval-m-epoch"):
        rows = wandb_server.run(run_id).history
        assert [(r["checkpoint_step"], r["epoch_progress"], r["checkpoint_index"]) for r in rows] == [
            (260, 8.125, 1),
            (320, 10.0, 2),
        ]
    epoch_run = wandb_server.run("eval-n-epoch")
    assert epoch_run.group == "epoch" and epoch_run.name == "n-eval-epoch"
    assert epoch_run.config["upload_variant"] == "epoch" and epoch_run.config["model_name"] == "n"
    assert all("epoch_progress" not in row for row in epoch_run.history)  # never guessed


def test_epoch_from_trainer_state_beside_the_metrics(wandb_server, tmp_path) -> None:
    results = tmp_path / "results"
    folder = write_checkpoint(results, "m", 500)
    (folder / "trainer_state.json").write_text(json.dumps({"epoch": 1.5, "global_step": 500}))
    write_manifest(results, [model_entry("m")])
    assert upload_pass(options(results, tmp_path / "state")).exit_code() == EXIT_OK
    assert wandb_server.run("eval-m").history[0]["epoch_progress"] == 1.5

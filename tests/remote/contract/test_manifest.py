"""The manifest contract as the uploader reads it: bad entries are reported, never fatal to others."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from remote.contract.manifest import (
    ManifestError,
    infer_cb_setting,
    infer_dataset,
    load_manifest,
    parse_manifest,
)
from tests.fixtures.trees import require_samples


@pytest.fixture
def original() -> dict:
    return json.loads((require_samples() / ".wandb_eval_manifest.json").read_text())


def test_manifest_original_tool_manifest_parses_with_extra_fields(original: dict) -> None:
    original["models"][0]["variants"] = {"epoch": {"wandb_group": "epoch"}}
    manifest = parse_manifest(original)
    assert manifest.problems == []
    assert len(manifest.models) == 6
    first = manifest.models[0]
    assert first.wandb_entity is None and first.num_train_epochs is None
    assert first.extra == {} and first.variants == {"epoch": {"wandb_group": "epoch"}}
    assert first.cb_setting == "none"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"model_dir": "../escape"}, "plain directory name"),
        ({"model_dir": "a/b"}, "plain directory name"),
        ({"model_dir": ".hidden"}, "plain directory name"),
        ({"wandb_run_id": "bad/id"}, "not a valid W&B run id"),
        ({"seed": "forty-two"}, "seed must be an integer, not 'forty-two'"),
        ({"wandb_project": ""}, "wandb_project must be non-empty text"),
    ],
)
def test_manifest_bad_entry_is_reported_and_others_kept(original: dict, change: dict, expected: str) -> None:
    original["models"][2].update(change)
    manifest = parse_manifest(original)
    assert len(manifest.models) == 5
    assert len(manifest.problems) == 1 and expected in manifest.problems[0]


def test_manifest_missing_fields_and_duplicates_are_reported(original: dict) -> None:
    del original["models"][1]["wandb_run_id"]
    original["models"].append(copy.deepcopy(original["models"][0]))
    manifest = parse_manifest(original)
    assert [m.model_dir for m in manifest.models] == [
        original["models"][i]["model_dir"] for i in (0, 2, 3, 4, 5)
    ]
    assert "missing fields wandb_run_id" in manifest.problems[0]
    assert "listed twice" in manifest.problems[1]


@pytest.mark.parametrize(
    ("content", "expected"),
    [("{half", "unreadable"), ('{"version": 2, "models": []}', "version 2"), ("[]", "not a JSON object")],
)
def test_manifest_unusable_file_raises_one_line_error(tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "manifest.json"
    path.write_text(content)
    with pytest.raises(ManifestError) as info:
        load_manifest(str(path))
    assert expected in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("model_dir", "dataset", "cb_setting"),
    [
        ("Games-grec-grpo-rule-only-fixedhint-taskfix-b16-sft896", "Games_grec", "none"),
        ("Instruments-mimionerec-sft-qwen4B-4-256-dsz0-backup", "Instruments_mimionerec", "cb256"),
        ("Beauty-CB512-rl-run", "Beauty_CB512", "CB512"),
        ("plainname", "plainname", "none"),
    ],
)
def test_manifest_inference_follows_the_original_rules(model_dir: str, dataset: str, cb_setting: str) -> None:
    assert infer_dataset(model_dir) == dataset
    assert infer_cb_setting(model_dir) == cb_setting

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


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"seed": True}, "seed must be an integer, not True"),  # JSON true is not 1
        ({"num_beams": 50.0}, "num_beams must be an integer"),
        ({"num_train_epochs": float("inf")}, "num_train_epochs must be a positive finite number, not inf"),
        ({"num_train_epochs": "ten"}, "num_train_epochs must be a positive finite number, not 'ten'"),
        ({"wandb_entity": {"team": "x"}}, "wandb_entity must be text or null"),
        ({"wandb_group": ["a"]}, "wandb_group must be text or null"),
        ({"variants": {"epoch": {"wandb_run_id": 7}}}, "variants.epoch must map"),
        ({"variants": {"epoch": {"wandb_run_id": "bad/id"}}}, "variants.epoch.wandb_run_id 'bad/id'"),
    ],
)
def test_manifest_hand_built_field_is_one_line_naming_model_and_field(
    original: dict, change: dict, expected: str
) -> None:
    original["models"][3].update(change)
    manifest = parse_manifest(original)
    assert len(manifest.models) == 5  # the others are unaffected
    problem = manifest.problems[0]
    assert expected in problem and original["models"][3]["model_dir"] in problem and "\n" not in problem


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ('{"version": 1, "models": [' + '{"a": ' * 50_000 + "1" + "}" * 50_000 + "]}", "nested too deeply"),
        (b"\xff\xfe{}", "not UTF-8"),
    ],
)
def test_manifest_pathological_file_is_one_line_error(tmp_path: Path, text, expected: str) -> None:
    path = tmp_path / "manifest.json"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(ManifestError) as info:
        load_manifest(str(path))
    assert expected in str(info.value) and "\n" not in str(info.value)


def test_manifest_infinity_and_overflow_in_the_file_are_reported_per_field(
    tmp_path: Path, original: dict
) -> None:
    original["models"][1]["num_train_epochs"] = "HUGE"
    original["models"][4]["seed"] = "INFINITE"
    text = json.dumps(original).replace('"HUGE"', "1e999").replace('"INFINITE"', "Infinity")
    path = tmp_path / "manifest.json"
    path.write_text(text)
    manifest = load_manifest(str(path))
    assert len(manifest.models) == 4 and len(manifest.problems) == 2
    assert "num_train_epochs must be a positive finite number, not inf" in manifest.problems[0]
    assert "seed must be an integer, not inf" in manifest.problems[1]


def test_manifest_overrides_with_wrong_types_are_warnings_naming_the_field(
    tmp_path: Path, original: dict
) -> None:
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(original))
    name = original["models"][0]["model_dir"]
    overrides = {name: {"seed": "7", "wandb_entity": {"x": 1}, "num_train_epochs": 3, "max_steps": True}}
    manifest = load_manifest(str(path), overrides)
    assert len(manifest.models) == 6
    first = manifest.models[0]
    assert (first.seed, first.wandb_entity, first.num_train_epochs, first.max_steps) == (42, None, 3.0, None)
    assert [p.split(" ignored")[0] for p in manifest.problems] == [
        f"override {name}.seed='7'",
        f"override {name}.wandb_entity={{'x': 1}}",
        f"override {name}.max_steps=True",
    ]

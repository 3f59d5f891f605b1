"""prepare-manifest: the original tool's ids on the real sample, stickiness, overrides, messy trees."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from remote.cli import main
from remote.contract.manifest import default_run_id, parse_manifest
from remote.contract.names import MANIFEST_NAME
from remote.prepare import ManifestOptions, prepare_manifest
from remote.scan import discover_models
from tests.fixtures.trees import SAMPLE_MANIFEST, SAMPLE_OVERRIDES, make_results_tree, write_checkpoint


def _prepare(root: Path, *extra: str) -> dict:
    manifest = root / MANIFEST_NAME
    assert (
        main(["prepare-manifest", "--results-root", str(root), "--output-manifest", str(manifest), *extra])
        == 0
    )
    return json.loads(manifest.read_text())


def _by_dir(document: dict) -> dict:
    return {m["model_dir"]: m for m in document["models"]}


def test_prepare_sample_matches_original_tool(sample_results: Path) -> None:
    (sample_results / MANIFEST_NAME).unlink()  # fresh, not sticky
    fresh = _by_dir(_prepare(sample_results))
    original = _by_dir(json.loads(SAMPLE_MANIFEST.read_text()))
    assert set(fresh) == set(original)
    for model_dir, entry in original.items():
        for key in ("dataset", "cb_setting", "wandb_run_id", "wandb_run_name", "eval_split", "seed"):
            assert fresh[model_dir][key] == entry[key], (model_dir, key)
    assert fresh["Instruments-grec-sft-qwen4B-4-64-dsz0"]["dataset"] == "Instruments_grec"
    assert fresh["Instruments-grec-sft-qwen4B-4-64-dsz0"]["cb_setting"] == "cb64"


def test_prepare_default_run_id_is_a_fixed_function_of_the_fields() -> None:
    # Pinned value: if this changes, every user's W&B runs would split in two.
    assert default_run_id(
        "eval", "Instruments-grec-sft-qwen4B-4-64-dsz0", "Instruments_grec", "cb64", "test"
    ) == ("eval-088839ca53b688776ef3")


def test_prepare_run_ids_are_sticky_across_regeneration(tmp_path: Path) -> None:
    root = make_results_tree(tmp_path / "results", ["ModelA-sft-x", "ModelB-sft-y"], [100])
    first = _by_dir(_prepare(root))
    document = json.loads((root / MANIFEST_NAME).read_text())
    document["models"][0]["wandb_run_id"] = "eval-kept-by-user"
    document["models"][0]["wandb_run_name"] = "kept-name"
    (root / MANIFEST_NAME).write_text(json.dumps(document))
    second = _by_dir(_prepare(root, "--run-id-prefix", "other", "--default-eval-split", "valid"))
    assert second["ModelA-sft-x"]["wandb_run_id"] == "eval-kept-by-user"
    assert second["ModelA-sft-x"]["wandb_run_name"] == "kept-name"
    assert second["ModelB-sft-y"]["wandb_run_id"] == first["ModelB-sft-y"]["wandb_run_id"]


def test_prepare_overrides_example_replaces_fields_and_warns_on_unknown_model(
    sample_results: Path, caplog: pytest.LogCaptureFixture
) -> None:
    models = _by_dir(_prepare(sample_results, "--overrides", str(SAMPLE_OVERRIDES)))
    industrial = models["Industrial_and_Scientific-sft-dsz0-4gpu-eq8"]
    assert industrial["wandb_run_id"] == "eval-industrial-sft"
    assert industrial["wandb_run_name"] == "industrial-sft-eval"
    assert industrial["num_train_epochs"] == 10
    assert industrial["variants"]["epoch"]["wandb_run_id"] == "eval-industrial-sft-epoch"
    assert "Instruments-grec-sft-qwen4B-4-256-dsz0" not in models
    assert "no such model" in caplog.text and "Instruments-grec-sft-qwen4B-4-256-dsz0" in caplog.text
    assert parse_manifest(json.loads((sample_results / MANIFEST_NAME).read_text())).problems == []


@pytest.mark.parametrize(
    "overrides",
    [
        {"models": [{"model_dir": "ModelA-sft-x", "wandb_run_id": "eval-list"}]},
        {"ModelA-sft-x": {"wandb_run_id": "eval-list"}},
    ],
)
def test_prepare_overrides_accept_list_and_flat_shapes(tmp_path: Path, overrides: dict) -> None:
    root = make_results_tree(tmp_path / "results", ["ModelA-sft-x"], [1])
    path = tmp_path / "overrides.json"
    path.write_text(json.dumps(overrides))
    assert _by_dir(_prepare(root, "--overrides", str(path)))["ModelA-sft-x"]["wandb_run_id"] == "eval-list"


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        "[1, 2]",
        '{"models": 5}',
        '{"models": {"A": 3}}',
        '{"models": ' + "[" * 200_000 + "]" * 200_000 + "}",
    ],
    ids=["half", "list", "number", "entry", "nested-deep"],
)
def test_prepare_malformed_overrides_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture, content: str
) -> None:
    root = make_results_tree(tmp_path / "results", ["ModelA-sft-x"], [1])
    path = tmp_path / "overrides.json"
    path.write_text(content)
    code = main(
        [
            "prepare-manifest",
            "--results-root",
            str(root),
            "--overrides",
            str(path),
            "--output-manifest",
            str(root / MANIFEST_NAME),
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[0].startswith("Error: overrides file") and str(path) in err[0]
    assert err[1].startswith("Hint:")
    assert not (root / MANIFEST_NAME).exists()


def test_prepare_override_of_wrong_type_is_ignored_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = make_results_tree(tmp_path / "results", ["ModelA-sft-x"], [1])
    path = tmp_path / "overrides.json"
    path.write_text(json.dumps({"ModelA-sft-x": {"seed": "abc", "num_beams": 20}}))
    entry = _by_dir(_prepare(root, "--overrides", str(path)))["ModelA-sft-x"]
    assert entry["seed"] == 42 and entry["num_beams"] == 20
    assert "ModelA-sft-x.seed" in caplog.text


def test_prepare_overrides_variants_and_training_length_reach_the_manifest(tmp_path: Path) -> None:
    root = make_results_tree(tmp_path / "results", ["ModelA-sft-x"], [1])
    path = tmp_path / "overrides.json"
    fields = {"max_steps": 320, "wandb_run_id": "eval-a-epoch", "wandb_group": "epoch"}  # legacy epoch keys
    path.write_text(json.dumps({"models": {"ModelA-sft-x": fields}}))
    entry = _by_dir(_prepare(root, "--overrides", str(path), "--default-num-train-epochs", "10"))[
        "ModelA-sft-x"
    ]
    assert entry["num_train_epochs"] == 10 and entry["max_steps"] == 320
    # The original's rule: top-level keys that look like an epoch run move to variants.epoch.
    assert entry["variants"] == {"epoch": {"wandb_run_id": "eval-a-epoch", "wandb_group": "epoch"}}
    assert entry["wandb_run_id"].startswith("eval-") and entry["wandb_group"] is None


def test_prepare_unchanged_tree_does_not_rewrite_the_manifest(tmp_path: Path) -> None:
    root = make_results_tree(tmp_path / "results", ["ModelA-sft-x"], [1, 2])
    options = ManifestOptions(str(root), str(root / MANIFEST_NAME))
    assert prepare_manifest(options).written
    before = (root / MANIFEST_NAME).stat().st_mtime_ns
    write_checkpoint(root, "ModelA-sft-x", 3)  # a new checkpoint does not change the manifest
    assert not prepare_manifest(options).written
    assert (root / MANIFEST_NAME).stat().st_mtime_ns == before


def test_prepare_messy_tree_keeps_every_model_and_says_what_it_skipped(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    root = make_results_tree(tmp_path / "results", ["Good-sft-a"], [10])
    write_checkpoint(root, ".hidden-sft-b", 10)
    (root / "OnlyBest-sft-c" / "checkpoint-best").mkdir(parents=True)
    write_checkpoint(root, "Mixed-sft-d", 20)
    (root / "Mixed-sft-d" / "checkpoint-final").mkdir()
    tsv_only = root / "TsvOnly-sft-e" / "checkpoint-30"
    tsv_only.mkdir(parents=True)
    (tsv_only / "metrics.tsv").write_text("path\tHR@10\nx\t0.1\n")
    outside = tmp_path / "outside"
    make_results_tree(outside, ["Elsewhere-sft-f"], [40])
    os.symlink(outside / "Elsewhere-sft-f", root / "Elsewhere-sft-f")
    os.symlink(outside / "Elsewhere-sft-f" / "checkpoint-40", root / "Mixed-sft-d" / "checkpoint-40")
    (root / "stray-file.txt").write_text("not a model")
    models = _by_dir(_prepare(root))
    assert sorted(models) == ["Good-sft-a", "Mixed-sft-d", "TsvOnly-sft-e"]
    out = capsys.readouterr().out
    assert "skipped Elsewhere-sft-f: symlink (not followed)" in out
    assert "skipped Mixed-sft-d/checkpoint-40: symlink (not followed)" in out
    assert "skipped Mixed-sft-d/checkpoint-final: not a numeric checkpoint-<step> folder" in out
    assert "skipped OnlyBest-sft-c" in out


def test_prepare_unreadable_model_dir_is_reported_not_fatal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    root = make_results_tree(tmp_path / "results", ["Good-sft-a", "Locked-sft-b"], [10])
    real_scandir = os.scandir

    def scandir(path):  # root can read anything, so the permission error is simulated
        if str(path).endswith("Locked-sft-b"):
            raise PermissionError(13, "Permission denied")
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    assert sorted(_by_dir(_prepare(root))) == ["Good-sft-a"]
    assert "skipped Locked-sft-b: unreadable directory (Permission denied)" in capsys.readouterr().out


def test_prepare_missing_results_root_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert main(["prepare-manifest", "--results-root", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    # The flag was passed: the hint is to check the path, not to pass the flag.
    assert err.startswith("Error: results root not found:") and "Hint: check the path" in err


def test_prepare_quick_scan_inside_pack_finds_the_same_models(tmp_path: Path) -> None:
    root = make_results_tree(tmp_path / "results", ["Good-sft-a"], [10])
    (root / "OnlyBest-sft-c" / "checkpoint-best").mkdir(parents=True)
    (root / "OnlyFile-sft-d").mkdir()
    (root / "OnlyFile-sft-d" / "checkpoint-5").write_text("a file, not a folder")
    outside = make_results_tree(tmp_path / "outside", ["Elsewhere-sft-f"], [40])
    (root / "OnlyLink-sft-e").mkdir()
    os.symlink(outside / "Elsewhere-sft-f" / "checkpoint-40", root / "OnlyLink-sft-e" / "checkpoint-40")
    write_checkpoint(root, "Mixed-sft-g", 20)
    (root / "Mixed-sft-g" / "checkpoint-final").mkdir()
    complete, skipped = discover_models(str(root))
    quick, _ = discover_models(str(root), list_skipped=False)
    assert quick == complete == ["Good-sft-a", "Mixed-sft-g"]
    assert {s.path for s in skipped} >= {"OnlyBest-sft-c/checkpoint-best", "OnlyLink-sft-e/checkpoint-40"}

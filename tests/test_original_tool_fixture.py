"""The original-tool fixture against the real wandb SDK (0.31) and the W&B test server: what it leaves behind.

These pin the ORIGINAL tool's artefacts (WncFht/GenRec eval_wandb_sidecar.py / sync_results_from_remote.sh),
including its known losses, so tests of the new tool can start from exactly what researchers have.
"""

from __future__ import annotations

import fcntl
import gzip
import io
import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest
import wandb

from tests.fixtures.original_tool import (
    TABLE_COLUMNS,
    failed_entry,
    make_original_tarball,
    original_state_file,
    replay_original_upload,
    write_original_state,
)
from tests.fixtures.trees import SAMPLE_OVERRIDES, write_checkpoint

INDUSTRIAL = "Industrial_and_Scientific-sft-dsz0-4gpu-eq8"  # sample overrides: own ids, 10 epochs
MIMI = "Instruments-mimionerec-sft-qwen4B-4-256-dsz0-backup"  # manifest defaults; steps 50, 100, 550
SUMMARY_KEYS = ("last_step", "last_hr@10", "last_ndcg@10", "best_hr@10", "best_step_for_hr@10")
SUMMARY_KEYS = (*SUMMARY_KEYS, "best_ndcg@10", "best_step_for_ndcg@10")
# (run id, name, group, variant, num_train_epochs) of the four runs the sample yields for two models.
SAMPLE_RUNS = [
    ("eval-industrial-sft", "industrial-sft-eval", "ckpt_step", "ckpt_step", 10.0),
    ("eval-industrial-sft-epoch", "industrial-sft-eval-epoch", "epoch", "epoch", 10.0),
    ("eval-e0c4b19588f0c0baed16", MIMI + "-eval", "ckpt_step", "ckpt_step", None),
    ("eval-e0c4b19588f0c0baed16-epoch", MIMI + "-eval-epoch", "epoch", "epoch", None),
]
MANIFEST = ".wandb_eval_manifest.json"
SETTINGS = dict(init_timeout=30, finish_timeout=60)  # bounded waits: a broken server fails, never hangs


def replay(results: Path, state: Path, models=(INDUSTRIAL, MIMI), **kwargs):
    """Given a sample copy, replay the original's `upload --once` for some models, sample overrides on."""
    kwargs.setdefault("overrides_path", SAMPLE_OVERRIDES)
    kwargs.setdefault("settings", wandb.Settings(**SETTINGS))
    manifest = results / ".wandb_eval_manifest.json"
    return replay_original_upload(results, manifest, state, model_filter=[",".join(models)], **kwargs)


def metrics_of(results: Path, model: str, step: int) -> dict:
    return json.loads((results / model / "checkpoint-{}".format(step) / "metrics.json").read_text())


def last_table(record) -> dict:
    """Given a run record, return the table JSON its last history row points to."""
    return json.loads(record.files[record.history[-1]["eval/checkpoint_table"]["path"]])


def test_sample_replay_makes_main_and_epoch_run_per_model_with_original_identity(
    sample_results, tmp_path, wandb_server
):
    report = replay(sample_results, tmp_path / "state")

    assert [(r.run_id, r.run_name, r.group, r.variant) for r in report.runs] == [s[:4] for s in SAMPLE_RUNS]
    for run_id, name, group, variant, epochs in SAMPLE_RUNS:
        record = wandb_server.run(run_id)
        assert (record.project, record.entity, record.name, record.group) == (
            "MIMIGenRec-Eval",
            "test-entity",  # entity null in manifest and overrides: the API key's default entity
            name,
            group,
        )
        assert record.job_type == "eval" and record.state == "finished"
        model = INDUSTRIAL if run_id.startswith("eval-industrial") else MIMI
        assert record.config == {
            "model_name": model,
            "upload_variant": variant,
            "dataset": "Industrial_and_Scientific" if model == INDUSTRIAL else "Instruments_mimionerec",
            "cb_setting": "none" if model == INDUSTRIAL else "cb256",
            "seed": 42,
            "num_beams": 50,
            "sid_levels": -1,
            "num_train_epochs": epochs,
            "eval_split": "test",
        }
        # define_metric("checkpoint_step") and define_metric("eval/*", step_metric="checkpoint_step").
        metric_defs = record.raw_config["_wandb"]["value"]["m"]
        assert [d.get("1") or d.get("2") for d in metric_defs] == ["checkpoint_step", "eval/*"]
    assert len(wandb_server.runs()) == 4


def test_sample_replay_logs_one_row_per_checkpoint_at_its_step_with_original_keys(
    sample_results, tmp_path, wandb_server
):
    replay(sample_results, tmp_path / "state")

    for run_id, model, steps in [
        ("eval-industrial-sft-epoch", INDUSTRIAL, [260, 320]),
        ("eval-e0c4b19588f0c0baed16", MIMI, [50, 100, 550]),  # numeric order, not 100 < 50
    ]:
        history = wandb_server.run(run_id).history
        assert [row["_step"] for row in history] == steps
        assert [row["checkpoint_step"] for row in history] == steps
        assert [row["checkpoint_index"] for row in history] == list(range(1, len(steps) + 1))
        for row, step in zip(history, steps):
            metrics = metrics_of(sample_results, model, step)
            path = sample_results.resolve() / model / "checkpoint-{}".format(step) / "metrics.json"
            assert row["eval/metrics_path"] == str(path)  # absolute, as the uploader saw it
            assert row["eval/checkpoint_name"] == "checkpoint-{}".format(step)
            # Every numeric metric of metrics.json, @20 and @50 included (the table keeps only @1..@10).
            assert {key[5:]: value for key, value in row.items() if key[5:] in metrics} == metrics
            expected = {"_step", "_runtime", "_timestamp", "checkpoint_step", "checkpoint_index"}
            expected |= {"eval/checkpoint_name", "eval/metrics_path", "eval/checkpoint_table"}
            expected |= {"eval/" + key for key in metrics} | (
                {"epoch_progress"} if model == INDUSTRIAL else set()
            )
            assert set(row) == expected  # the table, logged separately at the same step, merged in
    industrial = wandb_server.run("eval-industrial-sft").history
    assert [row["epoch_progress"] for row in industrial] == [260 / 320 * 10, 10]


def test_sample_replay_table_and_summary_follow_the_original(sample_results, tmp_path, wandb_server):
    report = replay(sample_results, tmp_path / "state", models=(MIMI,), variants=("ckpt_step",))

    record = wandb_server.run("eval-e0c4b19588f0c0baed16")
    table = last_table(record)
    assert table["columns"] == list(TABLE_COLUMNS)
    assert [row[0] for row in table["data"]] == [50, 100, 550]
    rows = [metrics_of(sample_results, MIMI, step) for step in (50, 100, 550)]
    assert [row[4:12] for row in table["data"]] == [[m[k] for k in TABLE_COLUMNS[4:12]] for m in rows]
    assert all(row[2] is None for row in table["data"])  # no num_train_epochs: no epoch_progress
    best_hr = max(range(3), key=lambda i: rows[i]["HR@10"])
    best_ndcg = max(range(3), key=lambda i: rows[i]["NDCG@10"])
    assert {key: record.summary[key] for key in SUMMARY_KEYS} == {
        "last_step": 550,
        "last_hr@10": rows[2]["HR@10"],
        "last_ndcg@10": rows[2]["NDCG@10"],
        "best_hr@10": rows[best_hr]["HR@10"],
        "best_step_for_hr@10": (50, 100, 550)[best_hr],
        "best_ndcg@10": rows[best_ndcg]["NDCG@10"],
        "best_step_for_ndcg@10": (50, 100, 550)[best_ndcg],
    }
    assert report.run("eval-e0c4b19588f0c0baed16").summary == {k: record.summary[k] for k in SUMMARY_KEYS}
    # One table file per logged step: the table grows by one row each time.
    assert sorted(name.split("_")[-2] for name in record.files if name.endswith(".table.json")) == [
        "100",
        "50",
        "550",
    ]


def test_sample_replay_writes_original_state_files_and_lock(sample_results, tmp_path, wandb_server):
    state_dir = tmp_path / "state"
    report = replay(sample_results, state_dir)

    # Names checked against the original tool's own output: <sanitized model_dir>_<sha1[:12]>.json.
    names = {
        "eval-industrial-sft": INDUSTRIAL + "_fb347c34e5e5.json",
        "eval-industrial-sft-epoch": INDUSTRIAL + "_9f4ac012e797.json",
    }
    assert {p.name for p in state_dir.iterdir()} == {
        ".upload.lock",
        *(r.state_file.name for r in report.runs),
    }
    for run in report.runs:
        assert run.state_file == original_state_file(state_dir, run.model_dir, run.run_id)
        assert run.state_file.name == names.get(run.run_id, run.state_file.name)
        text = run.state_file.read_text(encoding="utf-8")
        state = json.loads(text)
        assert text.startswith('{\n  "version": 1,\n') and not text.endswith("\n")  # indent 2, no newline
        assert list(state) == ["version", "model_dir", "variant", "wandb_group", "run_id", "run_name"] + [
            "processed_steps",
            "failed_steps",
            "last_seen_step",
            "last_update_time",
            "table_rows",
        ]
        assert (state["model_dir"], state["variant"], state["wandb_group"]) == (
            run.model_dir,
            run.variant,
            run.group,
        )
        assert (state["run_id"], state["run_name"], state["failed_steps"]) == (run.run_id, run.run_name, {})
        assert (
            state["processed_steps"]
            == list(run.processed_steps)
            == [r["checkpoint_step"] for r in state["table_rows"]]
        )
        assert state["last_seen_step"] == run.processed_steps[-1]
        assert state["last_update_time"].endswith("+00:00") and "." not in state["last_update_time"]
        assert list(state["table_rows"][0]) == list(TABLE_COLUMNS[:4]) + ["metrics_path"] + list(
            TABLE_COLUMNS[4:12]
        )
    assert report.lock_file.read_text() == str(os.getpid())


def test_second_replay_with_one_new_checkpoint_adds_exactly_one_row_per_run(
    sample_results, tmp_path, wandb_server
):
    state_dir = tmp_path / "state"
    replay(sample_results, state_dir)
    write_checkpoint(sample_results, INDUSTRIAL, 400)

    report = replay(sample_results, state_dir)

    assert report.steps == {
        "eval-industrial-sft": (400,),
        "eval-industrial-sft-epoch": (400,),
        "eval-e0c4b19588f0c0baed16": (),
        "eval-e0c4b19588f0c0baed16-epoch": (),
    }
    assert [r.initialized for r in report.runs] == [True, True, False, False]  # no init when nothing pending
    for run_id, steps in [
        ("eval-industrial-sft", [260, 320, 400]),
        ("eval-e0c4b19588f0c0baed16", [50, 100, 550]),
    ]:
        for rid in (run_id, run_id + "-epoch"):
            record = wandb_server.run(rid)
            assert [row["_step"] for row in record.history] == steps
            assert [row[0] for row in last_table(record)["data"]] == steps
    history = wandb_server.run("eval-industrial-sft").history
    # epoch_progress is frozen at upload time: 320 was "epoch 10" then, and 400 is "epoch 10" now.
    assert [(row["checkpoint_index"], row["epoch_progress"]) for row in history] == [
        (1, 8.125),
        (2, 10),
        (3, 10),
    ]
    assert wandb_server.run("eval-industrial-sft").summary["last_step"] == 400


def test_lower_checkpoint_after_a_resume_is_lost_in_wandb_but_marked_processed(
    sample_results, tmp_path, wandb_server
):
    state_dir = tmp_path / "state"
    replay(sample_results, state_dir, models=(INDUSTRIAL,))
    write_checkpoint(sample_results, INDUSTRIAL, 100, {"HR@10": 0.9, "NDCG@10": 0.9})

    report = replay(sample_results, state_dir, models=(INDUSTRIAL,))

    assert report.steps == {"eval-industrial-sft": (100,), "eval-industrial-sft-epoch": (100,)}
    for run in report.runs:
        record = wandb_server.run(run.run_id)
        # wandb 0.31 drops a log whose step is below the resumed run's step: no row, no table row.
        assert [row["_step"] for row in record.history] == [260, 320]
        assert [row[0] for row in last_table(record)["data"]] == [260, 320]
        # ...yet the summary was set directly: it names a best step that has no history row.
        assert (record.summary["best_step_for_hr@10"], record.summary["last_step"]) == (100, 320)
        # The table of step 100 was still uploaded, as a file that no history row points to.
        orphans = [json.loads(data) for name, data in record.files.items() if name.endswith(".table.json")]
        assert [t["data"][0][0] for t in orphans if len(t["data"]) == 3] == [100]
        state = json.loads(run.state_file.read_text())
        assert state["processed_steps"] == [100, 260, 320] and state["failed_steps"] == {}
    again = replay(sample_results, state_dir, models=(INDUSTRIAL,))
    assert [r.initialized for r in again.runs] == [False, False]  # never retried


def test_crafted_state_with_a_failed_step_is_continued_like_the_original(
    sample_results, tmp_path, wandb_server
):
    state_dir = tmp_path / "state"
    crafted = write_original_state(
        state_dir,
        model_dir=INDUSTRIAL,
        variant="ckpt_step",
        wandb_group="ckpt_step",
        run_id="eval-industrial-sft",
        run_name="industrial-sft-eval",
        processed_steps=[260],
        failed_steps={"320": failed_entry("checkpoint-320", "boom", "2026-04-01T00:00:00+00:00")},
        last_seen_step=320,
        table_rows=[
            {"checkpoint_step": 260, "checkpoint_name": "checkpoint-260", "HR@10": 0.5, "NDCG@10": 0.5}
        ],
    )
    assert json.loads(crafted.read_text())["failed_steps"] == {
        "320": {"checkpoint": "checkpoint-320", "error": "boom", "time": "2026-04-01T00:00:00+00:00"}
    }

    report = replay(sample_results, state_dir, models=(INDUSTRIAL,), variants=("ckpt_step",))

    assert report.runs[0].state_file == crafted and report.steps == {"eval-industrial-sft": (320,)}
    record = wandb_server.run("eval-industrial-sft")
    assert [row["_step"] for row in record.history] == [320]  # 260 was "processed": skipped
    assert [row[0] for row in last_table(record)["data"]] == [260, 320]  # crafted row rides along
    assert (record.summary["best_hr@10"], record.summary["best_step_for_hr@10"]) == (0.5, 260)
    state = json.loads(crafted.read_text())
    assert (state["processed_steps"], state["failed_steps"]) == ([260, 320], {})


def manifest_item(model_dir: str, **fields) -> dict:
    """Given a model dir, return a manifest item shaped like the original's prepare-manifest output."""
    item = dict(
        model_dir=model_dir, dataset="ds", cb_setting="none", eval_split="test", seed=42, num_beams=50
    )
    item.update(sid_levels=-1, num_train_epochs=None, wandb_group=None, wandb_project="proj")
    item.update(wandb_entity=None, wandb_run_id="eval-" + model_dir, wandb_run_name=model_dir + "-eval")
    item.update(fields)
    return item


def write_manifest(results: Path, *items: dict) -> Path:
    path = results / ".wandb_eval_manifest.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps({"version": 1, "generated_at": "t", "results_root": "r", "models": list(items)})
    )
    return path


def test_unreadable_metrics_become_failed_steps_and_land_when_fixed(tmp_path, wandb_server):
    results = tmp_path / "results"
    manifest = write_manifest(results, manifest_item("m"))
    write_checkpoint(results, "m", 100, {"HR@10": 0.5, "NDCG@10": 0.4})
    write_checkpoint(results, "m", 200).joinpath("metrics.json").write_text("[]")
    write_checkpoint(results, "m", 300).joinpath("metrics.json").write_text('{"note": "no numbers"}')
    (results / "m" / "checkpoint-400").mkdir()  # no metrics.json yet: not pending, but counted
    kwargs = dict(variants=("ckpt_step",), settings=wandb.Settings(**SETTINGS))

    first = replay_original_upload(results, manifest, tmp_path / "state", **kwargs)
    state = json.loads(first.runs[0].state_file.read_text())
    assert (first.runs[0].processed_steps, first.runs[0].failed_steps) == ((100,), (200, 300))
    assert (state["processed_steps"], state["last_seen_step"]) == ([100], 400)
    assert {k: (v["checkpoint"], v["error"].split(":")[0]) for k, v in state["failed_steps"].items()} == {
        "200": ("checkpoint-200", "JSON root must be an object"),
        "300": (
            "checkpoint-300",
            "No numeric metrics found in {}/m/checkpoint-300/metrics.json".format(results),
        ),
    }
    write_checkpoint(results, "m", 200, {"HR@10": 0.5, "NDCG@10": 0.1})  # ties with 100 on HR@10

    second = replay_original_upload(results, manifest, tmp_path / "state", **kwargs)

    assert second.steps == {"eval-m": (200,)}  # 300 failed again: failures are retried every pass
    record = wandb_server.run("eval-m")
    assert [(row["_step"], row["checkpoint_index"]) for row in record.history] == [(100, 1), (200, 2)]
    assert record.summary["best_step_for_hr@10"] == 100  # tie: the lower step keeps "best"
    assert list(json.loads(second.runs[0].state_file.read_text())["failed_steps"]) == ["300"]


def test_overrides_variants_and_the_epoch_lookalike_rule(tmp_path):
    results = tmp_path / "results"
    items = [manifest_item(name) for name in ("b-legacy", "c-cohort", "d-nogroup", "a-epochs")]
    items[1]["wandb_group"] = "cohort"
    manifest = write_manifest(results, *items)
    for name in ("a-epochs", "b-legacy", "c-cohort", "d-nogroup"):
        write_checkpoint(results, name, 10)
    overrides = tmp_path / "overrides.json"
    overrides.write_text(
        json.dumps(
            {
                # Legacy: no variants.epoch and a run id that looks like the epoch variant -> ALL of
                # group/run id/run name move to the epoch run; the ckpt_step run keeps the manifest's.
                "b-legacy": {"wandb_run_id": "b-rerun-epoch", "wandb_run_name": "plain-name"},
                "d-nogroup": {"variants": {"ckpt_step": {"wandb_group": ""}}},
                "a-epochs": {
                    "num_train_epochs": "4",
                    "wandb_entity": "",
                    "variants": {"epoch": {"wandb_group": ""}},
                },
            }
        )
    )

    report = replay_original_upload(
        results,
        manifest,
        tmp_path / "state",
        variants=("epoch", "ckpt_step"),
        overrides_path=overrides,
        disable_wandb=True,
    )

    assert [(r.model_dir, r.variant, r.run_id, r.run_name, r.group) for r in report.runs] == [
        ("a-epochs", "ckpt_step", "eval-a-epochs", "a-epochs-eval", "ckpt_step"),
        ("a-epochs", "epoch", "eval-a-epochs-epoch", "a-epochs-eval-epoch", "epoch"),  # "" -> "epoch"
        ("b-legacy", "ckpt_step", "eval-b-legacy", "b-legacy-eval", "ckpt_step"),
        ("b-legacy", "epoch", "b-rerun-epoch", "plain-name", "epoch"),
        ("c-cohort", "ckpt_step", "eval-c-cohort", "c-cohort-eval", "cohort"),
        ("c-cohort", "epoch", "eval-c-cohort-epoch", "c-cohort-eval-epoch", "epoch"),  # base group ignored
        ("d-nogroup", "ckpt_step", "eval-d-nogroup", "d-nogroup-eval", None),  # explicit "" -> no group
        ("d-nogroup", "epoch", "eval-d-nogroup-epoch", "d-nogroup-eval-epoch", "epoch"),
    ]
    assert report.runs[0].config["num_train_epochs"] == 4.0
    # --disable-wandb still marks steps processed: a later real upload would skip them.
    assert not any(r.initialized for r in report.runs)
    assert json.loads(report.runs[0].state_file.read_text())["processed_steps"] == [10]


def test_model_filter_is_an_exact_match_and_the_lock_is_exclusive(tmp_path):
    results = tmp_path / "results"
    manifest = write_manifest(results, manifest_item("m-1"), manifest_item("m-10"), manifest_item("m-2"))
    for name in ("m-1", "m-10", "m-2"):
        write_checkpoint(results, name, 5)
    state_dir = tmp_path / "state"
    kwargs = dict(variants=("ckpt_step",), disable_wandb=True)

    picked = replay_original_upload(results, manifest, state_dir, model_filter=["m-1, m-2", "m-"], **kwargs)
    assert [r.model_dir for r in picked.runs] == ["m-1", "m-2"]
    with picked.lock_file.open("w") as holder:
        fcntl.flock(holder.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(RuntimeError, match="Another uploader process holds lock"):
            replay_original_upload(results, manifest, state_dir, **kwargs)
    assert sorted(p.name for p in state_dir.iterdir())[0] == ".upload.lock"


def tar_members(parts) -> list:
    """Given an archive or its parts, concatenate them; return (name, is regular file, bytes) per member."""
    data = b"".join(Path(part).read_bytes() for part in parts)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return [(m.name, m.isreg(), tar.extractfile(m).read()) for m in tar.getmembers()]


@pytest.fixture
def pack_tree(sample_results):
    """The sample copy plus what pack filtered: excluded names, a too-large file, a symlink."""
    games = sample_results / "Games-grec-sft-qwen4B-4-256-dsz0"
    (games / "checkpoint-128" / "rollout.json").write_text("{}")
    (games / "checkpoint-128" / "final_result.json").write_text("{}")
    (games / "big.bin").write_bytes(b"x" * (1024 * 1024 + 1))  # > MAX_FILE_MB=1: skipped
    (games / "exact.bin").write_bytes(b"y" * (1024 * 1024))  # == limit: kept
    (sample_results / "link.json").symlink_to(games / "checkpoint-128" / "metrics.json")  # find -type f: no
    return sample_results


def test_single_tarball_holds_home_relative_members_in_c_order_with_filters(pack_tree, tmp_path):
    archives = make_original_tarball(
        pack_tree, tmp_path / "out", max_file_mb=1, exclude=("rollout.json", "final_result.json", MANIFEST)
    )

    assert archives == [tmp_path / "out" / "results_sync_latest.tar.gz"]
    members = tar_members(archives)
    names = [name for name, _, _ in members]
    sources = [p for p in pack_tree.rglob("*") if p.is_file() and not p.is_symlink()]
    kept = [p for p in sources if p.name not in ("rollout.json", "final_result.json", "big.bin")]
    assert names == sorted("GenRec/results/" + p.relative_to(pack_tree).as_posix() for p in kept)
    assert names[0] == "GenRec/results/" + MANIFEST  # kept although its name was excluded; '.' sorts first
    assert all(regular and data == (pack_tree / name[15:]).read_bytes() for name, regular, data in members)
    raw = archives[0].read_bytes()
    assert raw[4:8] == b"\0\0\0\0"  # gzip header mtime 0, as tar's gzip pipe writes it
    assert b"././@LongLink" in gzip.decompress(raw)  # GNU tar format: names over 100 bytes


def test_split_tarball_parts_concatenate_to_the_single_archive(sample_results, tmp_path):
    single = make_original_tarball(sample_results, tmp_path / "one", archive_name="r.tar.gz")[0]
    size = single.stat().st_size
    stale = tmp_path / "two" / "r.tar.gz.part.009"
    stale.parent.mkdir()
    stale.write_bytes(b"old")

    same = make_original_tarball(sample_results, tmp_path / "same", archive_name="r", chunk_size=size)
    parts = make_original_tarball(sample_results, tmp_path / "two", archive_name="r", chunk_size=4096)

    assert [p.name for p in same] == ["r.tar.gz"]  # split only when strictly larger than CHUNK_SIZE
    count = -(-size // 4096)
    assert [p.name for p in parts] == ["r.tar.gz.part.{:03d}".format(i) for i in range(count)]
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == [
        p.name for p in parts
    ]  # no archive, no stale
    assert [p.stat().st_size for p in parts[:-1]] == [4096] * (count - 1)
    assert b"".join(p.read_bytes() for p in parts) == single.read_bytes()
    assert tar_members(parts) == tar_members([single])
    coreutils = tmp_path / "split"
    coreutils.mkdir()
    subprocess.run(
        ["split", "-b", "4096", "-d", "-a", "3", str(single), str(coreutils / "r.tar.gz.part.")], check=True
    )
    assert [(p.name, p.read_bytes()) for p in sorted(coreutils.iterdir())] == [
        (p.name, p.read_bytes()) for p in parts
    ]


def test_python_tarfile_fallback_has_the_same_members_in_gnu_format(pack_tree, tmp_path):
    by_tar = make_original_tarball(pack_tree, tmp_path / "tar", max_file_mb=1)
    by_python = make_original_tarball(pack_tree, tmp_path / "py", max_file_mb=1, tar_binary=None)

    assert tar_members(by_python) == tar_members(by_tar)
    assert b"././@LongLink" in gzip.decompress(by_python[0].read_bytes())


def test_lost_state_reuploads_into_the_same_run_without_duplicate_rows(tmp_path, wandb_server):
    results = tmp_path / "results"
    manifest = write_manifest(results, manifest_item("m"))
    for step in (100, 200):
        write_checkpoint(results, "m", step)
    kwargs = dict(variants=("ckpt_step",), settings=wandb.Settings(**SETTINGS))
    first = replay_original_upload(results, manifest, tmp_path / "state", **kwargs)
    first.runs[0].state_file.unlink()
    write_checkpoint(results, "m", 300)

    again = replay_original_upload(results, manifest, tmp_path / "state", **kwargs)

    assert again.steps == {"eval-m": (100, 200, 300)}  # the original re-sent everything...
    record = wandb_server.run("eval-m")
    assert [row["_step"] for row in record.history] == [100, 200, 300]  # ...but 100, 200 were dropped
    assert [row[0] for row in last_table(record)["data"]] == [100, 200, 300]

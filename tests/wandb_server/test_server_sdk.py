"""The W&B test server, driven by the real wandb SDK (0.31.0) in online mode: the happy paths."""

from __future__ import annotations

import json
import threading
import urllib.request

import wandb

# Bounded waits: a broken server must fail a test, never hang it.
SETTINGS = dict(init_timeout=30, finish_timeout=60)


def start_run(run_id, **kwargs):
    """Given a run id, start (or resume) it against the fixture's server with bounded timeouts."""
    kwargs.setdefault("project", "proj")
    return wandb.init(id=run_id, resume="allow", settings=wandb.Settings(**SETTINGS), **kwargs)


def steps(record):
    return [row["_step"] for row in record.history]


def test_server_init_log_finish_lands_config_name_history_summary(wandb_server):
    run = start_run("r-basic", name="nice name", group="grp", job_type="eval", config={"lr": 0.1, "seed": 3})
    for step in range(3):
        run.log({"eval/hr": step / 10, "checkpoint_step": step * 100})
    run.finish()

    record = wandb_server.run("r-basic")
    assert record is not None
    assert (record.entity, record.project) == ("test-entity", "proj")
    assert (record.name, record.group, record.job_type) == ("nice name", "grp", "eval")
    assert record.config == {"lr": 0.1, "seed": 3}
    assert [row["checkpoint_step"] for row in record.history] == [0, 100, 200]
    assert steps(record) == [0, 1, 2]
    assert record.summary["eval/hr"] == 0.2
    assert record.state == "finished" and record.exitcode == 0


def test_server_resume_continues_at_last_step_and_appends(wandb_server):
    run = start_run("r-resume", config={"a": 1})
    run.log({"x": 1})
    run.log({"x": 2})
    run.finish()

    run = start_run("r-resume")
    # The SDK learnt the step and the config from RunResumeStatus. (Quirk: in 0.31 `run.step`
    # reads 0 until the first log after a resume; `starting_step` holds the resumed step.)
    assert run.starting_step == 2
    assert run.config["a"] == 1
    run.log({"x": 3})
    run.finish()

    record = wandb_server.run("r-resume")
    assert [row["x"] for row in record.history] == [1, 2, 3]
    assert steps(record) == [0, 1, 2]
    assert record.summary["x"] == 3
    assert record.config == {"a": 1}


def test_server_table_logged_lands_as_committed_artifact(wandb_server):
    run = start_run("r-table")
    run.log({"table": wandb.Table(columns=["step", "hr"], data=[[1, 0.5], [2, 0.6]])})
    run.finish()

    record = wandb_server.run("r-table")
    assert record.tables == ["run-r-table-table"]
    assert record.history[0]["table"]["_type"] == "table-file"
    table_file = record.history[0]["table"]["path"]
    assert json.loads(record.files[table_file])["data"] == [[1, 0.5], [2, 0.6]]


def test_server_default_entity_and_request_log(wandb_server):
    wandb_server.reset_requests()
    assert wandb_server.request_count() == 0
    run = start_run("r-log", project="other")
    run.finish()

    assert wandb_server.run("r-log", project="other", entity="test-entity") is not None
    assert wandb_server.run("r-log", project="nope") is None
    operations = [op for _, _, op in wandb_server.requests]
    assert "UpsertBucket" in operations and "RunResumeStatus" in operations
    assert wandb_server.request_count("file_stream") >= 1
    assert [r.run_id for r in wandb_server.runs()] == ["r-log"]


def test_server_test_endpoints_serve_runs_and_health(wandb_server):
    run = start_run("r-http", config={"k": "v"})
    run.log({"m": 1.5})
    run.finish()

    with urllib.request.urlopen(wandb_server.url + "/_test/health", timeout=10) as response:
        assert json.load(response)["ok"] is True
    with urllib.request.urlopen(wandb_server.url + "/_test/runs", timeout=10) as response:
        runs = json.load(response)["runs"]
    assert [(r["run_id"], r["config"], r["history"][0]["m"]) for r in runs] == [("r-http", {"k": "v"}, 1.5)]


def log_checkpoints(run_id, checkpoints):
    """Given checkpoint steps, log them the uploader's way: `checkpoint_step` as the step metric."""
    run = start_run(run_id)
    run.define_metric("checkpoint_step")
    run.define_metric("eval/*", step_metric="checkpoint_step")
    for step in checkpoints:
        run.log({"checkpoint_step": step, "eval/hr": step / 1000})
    run.summary["last_step"] = checkpoints[-1]
    return run


def test_server_resume_keeps_summary_and_lands_late_checkpoint(wandb_server):
    run = log_checkpoints("r-late", [200, 300])
    run.summary["best_hr"] = 0.3
    run.finish()
    log_checkpoints("r-late", [100]).finish()

    record = wandb_server.run("r-late")
    assert [(row["_step"], row["checkpoint_step"]) for row in record.history] == [
        (0, 200),
        (1, 300),
        (2, 100),
    ]
    # The resumed SDK started from the server's summary, so keys of the first session survive.
    assert record.summary["best_hr"] == 0.3 and record.summary["last_step"] == 100


def test_server_parallel_runs_in_threads_stay_separate(wandb_server):
    def worker(index):
        run = wandb.init(
            project="proj",
            id="r-par-{}".format(index),
            reinit="create_new",
            settings=wandb.Settings(**SETTINGS),
        )
        for value in range(5):
            run.log({"v": value * index})
        run.finish()

    threads = [threading.Thread(target=worker, args=(index,)) for index in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=240)
    for index in range(4):
        assert [row["v"] for row in wandb_server.run("r-par-{}".format(index)).history] == [
            value * index for value in range(5)
        ]

"""The W&B test server's fault injection, seen through the real wandb SDK (0.31.0) in online mode.

Measured SDK behaviour these tests pin down (quirks: tests/wandb_server/README.md):
- 5xx/429 and reset connections are retried (GraphQL and file_stream), 429 honours Retry-After;
- 401 is not retried: init fails at once;
- 409 on UpsertBucket IS retried until init_timeout, then init raises CommError with the message;
- finish_timeout alone returns normally; finish_timeout_raises=True raises TimeoutError.
"""

from __future__ import annotations

import threading

import pytest
import wandb
from wandb.errors import CommError

from .store import HISTORY_FILE

SETTINGS = dict(init_timeout=60, finish_timeout=90)


def log_rows(run_id, count=3):
    """Given a run id, start (or resume) it, log `count` rows {"x": i} and finish it."""
    run = wandb.init(project="proj", id=run_id, resume="allow", settings=wandb.Settings(**SETTINGS))
    for index in range(count):
        run.log({"x": index})
    run.finish()


def xs(server, run_id):
    return [row["x"] for row in server.run(run_id).history]


@pytest.mark.parametrize("status", [500, 429])
def test_faults_file_stream_burst_retried_without_duplicate_rows(wandb_server, status):
    run = wandb.init(project="proj", id="r-burst", settings=wandb.Settings(**SETTINGS))
    # The server applies each request, then answers it with the error: the SDK re-sends the same
    # lines, and only writing at the given offset keeps them from becoming duplicate rows.
    wandb_server.inject(
        status,
        count=2,
        match="file_stream",
        body_match="wandb-history.jsonl",
        retry_after=0.5,
        after_processing=True,
    )
    for index in range(3):
        run.log({"x": index})
    run.finish()

    record = wandb_server.run("r-burst")
    assert xs(wandb_server, "r-burst") == [0, 1, 2]
    assert record.lines_received[HISTORY_FILE] > 3, "the fault did not hit a request carrying history"
    assert wandb_server.faults.pending() == []


def test_faults_upsert_bucket_5xx_retried(wandb_server):
    wandb_server.inject(503, count=2, match="UpsertBucket")
    log_rows("r-upsert")
    assert xs(wandb_server, "r-upsert") == [0, 1, 2]
    assert wandb_server.request_count("UpsertBucket") >= 3


def test_faults_dropped_connections_retried(wandb_server):
    wandb_server.drop_connections(count=2, match="UpsertBucket")
    wandb_server.drop_connections(count=1, match="file_stream", after_processing=True)
    log_rows("r-drop")
    assert xs(wandb_server, "r-drop") == [0, 1, 2]
    assert wandb_server.faults.pending() == []


def test_faults_down_then_up_init_waits_and_succeeds(wandb_server):
    wandb_server.set_down(True)
    timer = threading.Timer(3.0, wandb_server.set_down, args=(False,))
    timer.start()
    try:
        log_rows("r-down")
    finally:
        timer.cancel()
    assert xs(wandb_server, "r-down") == [0, 1, 2]


def test_faults_down_whole_init_fails_within_init_timeout(wandb_server):
    wandb_server.set_down(True)
    with pytest.raises(CommError):
        wandb.init(project="proj", id="r-never", settings=wandb.Settings(init_timeout=5))
    wandb_server.set_down(False)
    assert wandb_server.run("r-never") is None
    assert wandb_server.request_count() == 0


def test_faults_latency_slows_but_succeeds(wandb_server):
    wandb_server.set_latency(0.2)
    log_rows("r-slow")
    assert xs(wandb_server, "r-slow") == [0, 1, 2]


def test_faults_deleted_run_init_raises_409_message(wandb_server):
    log_rows("r-gone", count=1)
    wandb_server.delete_run(None, "proj", "r-gone")
    # Like real W&B: RunResumeStatus no longer finds the run, UpsertBucket answers 409, and the SDK
    # retries 409 until init_timeout -- so a small init_timeout is what makes this fail promptly.
    with pytest.raises(CommError, match="previously created and deleted; try a new run id"):
        wandb.init(project="proj", id="r-gone", resume="allow", settings=wandb.Settings(init_timeout=5))
    assert wandb_server.run("r-gone") is None
    assert len(wandb_server.store.runs(include_deleted=True)) == 1


def test_faults_wrong_api_key_init_fails_with_401(wandb_server):
    wandb_server.api_key = "wrong_" + "0" * 40
    with pytest.raises(CommError, match="401"):
        wandb.init(project="proj", id="r-auth", resume="allow", settings=wandb.Settings(init_timeout=30))
    assert wandb_server.run("r-auth") is None


def test_faults_finish_timeout_while_down_loses_unsent_rows_unless_raised(wandb_server):
    # Quirk: finish_timeout alone makes finish() return normally after the timeout (data stays on
    # local disk only); finish_timeout_raises=True is needed to learn that the upload failed.
    settings = wandb.Settings(init_timeout=30, finish_timeout=3, finish_timeout_raises=True)
    run = wandb.init(project="proj", id="r-fin", resume="allow", settings=settings)
    wandb_server.set_down(True)
    for index in range(3):
        run.log({"x": index})
    with pytest.raises(TimeoutError):
        run.finish()
    wandb_server.set_down(False)
    assert wandb_server.run("r-fin").history == []
    assert wandb_server.run("r-fin").state == "running"

    # The unsent rows are not re-sent by a resumed run: it starts where the server's history ends.
    run = wandb.init(project="proj", id="r-fin", resume="allow", settings=wandb.Settings(**SETTINGS))
    assert run.starting_step == 0
    run.log({"x": 99})
    run.finish()
    assert xs(wandb_server, "r-fin") == [99]


def test_faults_failed_init_blocks_same_run_id_until_teardown(wandb_server):
    # Quirk: a timed-out wandb.init leaves its stream registered in wandb-core, so a retry with the
    # same id in the same process fails at once ("run ID ... is in use") until wandb.teardown().
    wandb_server.set_down(True)
    with pytest.raises(CommError):
        wandb.init(project="proj", id="r-again", resume="allow", settings=wandb.Settings(init_timeout=3))
    wandb_server.set_down(False)
    # ServerResponseError (wandb.sdk.mailbox) is a plain Exception, not a wandb.Error.
    with pytest.raises(Exception, match="is in use"):
        wandb.init(project="proj", id="r-again", resume="allow", settings=wandb.Settings(**SETTINGS))
    wandb.teardown()
    log_rows("r-again", count=1)
    assert xs(wandb_server, "r-again") == [0]


def test_faults_upload_and_artifact_errors_retried_table_lands(wandb_server):
    run = wandb.init(project="proj", id="r-upl", settings=wandb.Settings(**SETTINGS))
    wandb_server.inject(500, count=2, match="/_storage/")
    wandb_server.inject(502, count=1, match="CreateArtifact")
    run.log({"x": 0, "table": wandb.Table(columns=["a"], data=[[1]])})
    run.finish()
    record = wandb_server.run("r-upl")
    assert record.tables == ["run-r-upl-table"]
    assert xs(wandb_server, "r-upl") == [0]
    assert wandb_server.faults.pending() == []

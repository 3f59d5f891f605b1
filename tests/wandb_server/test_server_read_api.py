"""The W&B test server's read side, driven by the real public API (`wandb.Api()`, wandb 0.31.0).

Runs are written with the real SDK, then read back the way the product reconciles its cache:
`Api.run()` fields, `scan_history` (wandb-core pages of `_step` ranges), `history` (sampled), with
faults on the read queries and a simulated stale history page. Measured quirks: README.md.
"""

from __future__ import annotations

import math

import pytest
import wandb
from wandb.apis.public.runs import RunNotFoundError
from wandb.errors import CommError
from wandb.sdk.lib.service.service_connection import WandbApiFailedError

SETTINGS = dict(init_timeout=30, finish_timeout=60)
PATH = "test-entity/proj/"
# Checkpoint steps as the uploader logs them: `_step` = checkpoint step, gaps between them.
CHECKPOINTS = [100, 250, 400, 1000, 1500]


def write_run(run_id, rows, steps=None, **init_kwargs):
    """Given rows (and optionally their steps), log them to a new or resumed run and finish it."""
    run = wandb.init(
        project="proj", id=run_id, resume="allow", settings=wandb.Settings(**SETTINGS), **init_kwargs
    )
    for index, row in enumerate(rows):
        if steps is None:
            run.log(row)
        else:
            run.log(row, step=steps[index])
    run.finish()


def write_checkpoints(run_id, **init_kwargs):
    """Given a run id, log CHECKPOINTS with step=checkpoint; "loss" only on every other checkpoint."""
    rows = [
        dict({"eval/hr": step / 10000}, **({"loss": step / 100} if index % 2 == 0 else {}))
        for index, step in enumerate(CHECKPOINTS)
    ]
    write_run(run_id, rows, steps=CHECKPOINTS, **init_kwargs)


def operations(server, name):
    """Given an operation name, count the requests for exactly that GraphQL operation."""
    return [op for _, _, op in server.requests].count(name)


def test_read_api_run_exposes_fields_config_summary_and_history_counts(wandb_server):
    write_checkpoints("r-fields", name="model-a", group="grp", job_type="eval", config={"lr": 0.1, "seed": 3})

    run = wandb.Api().run(PATH + "r-fields")

    assert (run.id, run.name, run.state) == ("r-fields", "model-a", "finished")
    assert (run.entity, run.project, run.group, run.job_type) == ("test-entity", "proj", "grp", "eval")
    assert run.config == {"lr": 0.1, "seed": 3}
    assert run.summary["eval/hr"] == 0.15 and run.summary["_step"] == 1500
    # lastHistoryStep is the last `_step` (a checkpoint), historyLineCount the number of rows.
    assert run.lastHistoryStep == 1500
    assert run._attrs["historyLineCount"] == 5
    assert operations(wandb_server, "Run") == 1


def test_read_scan_history_by_keys_returns_rows_holding_all_keys_with_step(wandb_server):
    write_checkpoints("r-keys")
    run = wandb.Api().run(PATH + "r-keys")

    # Only rows that hold every requested key, projected to those keys plus `_step`.
    assert list(run.scan_history(keys=["eval/hr"])) == [
        {"_step": step, "eval/hr": step / 10000} for step in CHECKPOINTS
    ]
    both = [{"_step": s, "eval/hr": s / 10000, "loss": s / 100} for s in (100, 400, 1500)]
    assert list(run.scan_history(keys=["eval/hr", "loss"])) == both
    assert list(run.scan_history(keys=["never-logged"])) == []
    # history(keys=...) sends one RunSampledHistory query: same filtering, rows ordered by `_step`.
    assert run.history(keys=["eval/hr", "loss"], pandas=False) == both
    assert operations(wandb_server, "SampledHistoryPage") >= 3
    assert operations(wandb_server, "RunSampledHistory") == 1


def test_read_full_scan_returns_whole_rows_paged_by_step_range(wandb_server):
    write_checkpoints("r-full")
    run = wandb.Api().run(PATH + "r-full")
    wandb_server.reset_requests()

    rows = list(run.scan_history())

    assert [row["_step"] for row in rows] == CHECKPOINTS
    assert [row["eval/hr"] for row in rows] == [step / 10000 for step in CHECKPOINTS]
    assert "loss" in rows[0] and "loss" not in rows[1]
    assert {"_runtime", "_timestamp"} <= set(rows[0])
    # Pages are `_step` ranges of page_size (1000), not row counts: steps 0..1500 take 2 pages.
    assert operations(wandb_server, "RunParquetHistory") == 1
    assert operations(wandb_server, "HistoryPage") == 2
    assert run.history(pandas=False) == rows


def test_read_run_logged_without_step_has_line_index_steps(wandb_server):
    write_run("r-nostep", [{"x": value} for value in (5, 6, 7)])
    run = wandb.Api().run(PATH + "r-nostep")

    assert [(row["_step"], row["x"]) for row in run.scan_history()] == [(0, 5), (1, 6), (2, 7)]
    assert list(run.scan_history(keys=["x"])) == [
        {"_step": 0, "x": 5},
        {"_step": 1, "x": 6},
        {"_step": 2, "x": 7},
    ]
    assert (run.lastHistoryStep, run._attrs["historyLineCount"]) == (2, 3)


def test_read_nan_is_a_float_in_full_rows_but_the_string_nan_in_keyed_reads(wandb_server):
    write_run("r-nan", [{"hr": float("nan")}, {"hr": 0.5}])
    run = wandb.Api().run(PATH + "r-nan")

    full = list(run.scan_history())
    assert math.isnan(full[0]["hr"]) and full[1]["hr"] == 0.5
    # Keyed reads are objects inside the JSON response, where NaN cannot be a number.
    assert list(run.scan_history(keys=["hr"])) == [{"_step": 0, "hr": "NaN"}, {"_step": 1, "hr": 0.5}]
    assert run.history(keys=["hr"], pandas=False) == [{"_step": 0, "hr": "NaN"}, {"_step": 1, "hr": 0.5}]


def test_read_paging_past_one_page_of_1200_rows(wandb_server):
    write_run("r-big", [{"x": index, "y": index * 2} for index in range(1200)])
    run = wandb.Api().run(PATH + "r-big")
    assert run._attrs["historyLineCount"] == 1200
    wandb_server.reset_requests()

    assert [row["x"] for row in run.scan_history()] == list(range(1200))
    assert operations(wandb_server, "HistoryPage") == 2
    assert list(run.scan_history(keys=["y"], page_size=500)) == [
        {"_step": index, "y": index * 2} for index in range(1200)
    ]
    assert operations(wandb_server, "SampledHistoryPage") == 3
    # history() is sampled: 500 rows by default, never more than asked for.
    sampled = run.history(keys=["y"], pandas=False)
    assert len(sampled) == 500 and all(row["y"] == row["_step"] * 2 for row in sampled)
    assert len(run.history(samples=2000, pandas=False)) == 1200


def test_read_absent_run_or_project_raises_comm_error_not_found(wandb_server):
    write_run("r-here", [{"x": 1}])
    api = wandb.Api()
    for path in (PATH + "r-absent", "test-entity/no-such-project/r-here"):
        with pytest.raises(CommError, match="Could not find run") as error:
            api.run(path)
        # normalize_exceptions wraps the SDK's RunNotFoundError (a ValueError) in CommError.
        assert isinstance(error.value.exc, RunNotFoundError)


def test_read_deleted_run_is_not_found_even_through_an_old_run_object(wandb_server):
    write_run("r-del", [{"x": 1}, {"x": 2}])
    api = wandb.Api()
    old = api.run(PATH + "r-del")
    wandb_server.delete_run(None, "proj", "r-del")

    with pytest.raises(CommError, match="Could not find run"):
        wandb.Api().run(PATH + "r-del")
    # A Run object read before the deletion: lastHistoryStep quietly reads -1, a scan fails.
    assert old.lastHistoryStep == -1
    with pytest.raises(CommError, match="no parquet history found for run r-del"):
        old.scan_history()


def test_read_api_caches_run_objects_until_flush(wandb_server):
    write_run("r-cache", [{"x": 1}])
    api = wandb.Api()
    first = api.run(PATH + "r-cache")
    write_run("r-cache", [{"x": 2}])

    # Api.run() returns the cached object (fields as first read); lastHistoryStep asks again.
    assert api.run(PATH + "r-cache") is first
    assert first._attrs["historyLineCount"] == 1 and first.lastHistoryStep == 1
    api.flush()
    assert api.run(PATH + "r-cache")._attrs["historyLineCount"] == 2


def scan(api, keys=None):
    return [row["x"] for row in api.run(PATH + "r-retry").scan_history(keys=keys)]


READS = {
    "Run": lambda api: api.run(PATH + "r-retry").id,
    "RunParquetHistory": scan,
    "HistoryPage": scan,
    "SampledHistoryPage": lambda api: scan(api, keys=["x"]),
    "RunSampledHistory": lambda api: [
        r["x"] for r in api.run(PATH + "r-retry").history(keys=["x"], pandas=False)
    ],
}


@pytest.mark.parametrize(
    "operation, fault",
    [
        ("Run", "500"),
        ("Run", "429"),
        ("Run", "drop"),
        ("RunParquetHistory", "500"),
        ("HistoryPage", "429"),
        ("HistoryPage", "drop"),
        ("SampledHistoryPage", "500"),
        ("RunSampledHistory", "drop"),
    ],
)
def test_read_transient_faults_are_retried_by_the_sdk(wandb_server, operation, fault):
    write_run("r-retry", [{"x": value} for value in (1, 2)])
    api = wandb.Api()
    api.run(PATH + "r-retry")  # now cached: the fault below hits the read under test
    if operation == "Run":
        api.flush()
    if fault == "drop":
        wandb_server.drop_connections(count=2, operation=operation)
    else:
        wandb_server.inject(int(fault), count=2, operation=operation, retry_after=0.5)
    wandb_server.reset_requests()

    assert READS[operation](api) in ("r-retry", [1, 2])
    assert operations(wandb_server, operation) == 3
    assert wandb_server.faults.pending() == []


def test_read_persistent_5xx_on_run_gives_up_at_the_api_timeout(wandb_server):
    write_run("r-down", [{"x": 1}])
    # wandb-core keeps retrying with a growing backoff; the Python side stops waiting after
    # Api(timeout=...) seconds (default WANDB_HTTP_TIMEOUT or 19) and raises CommError.
    api = wandb.Api(timeout=3)
    wandb_server.inject(503, count=1000, operation="Run")
    with pytest.raises(CommError, match="did not respond in time"):
        api.run(PATH + "r-down")
    assert 1 <= operations(wandb_server, "Run") < 1000


def test_read_4xx_on_a_scan_page_is_not_retried_and_escapes_as_wandb_api_failed_error(wandb_server):
    write_run("r-400", [{"x": 1}])
    run = wandb.Api().run(PATH + "r-400")
    wandb_server.inject(400, count=1, operation="HistoryPage")
    rows = run.scan_history()  # RunParquetHistory: errors here would be CommError
    # Page reads happen while iterating, outside the SDK's normalize_exceptions: the raw
    # WandbApiFailedError comes out, which is not a wandb.Error.
    with pytest.raises(WandbApiFailedError, match="returned error 400") as error:
        list(rows)
    assert not isinstance(error.value, wandb.Error)
    assert operations(wandb_server, "HistoryPage") == 1


def test_read_graphql_retry_max_bounds_a_scan_that_has_no_timeout(wandb_server, monkeypatch):
    # scan_history's page reads wait on wandb-core without a timeout, and wandb-core retries a
    # persistent 5xx for many minutes. WANDB__GRAPHQL_RETRY_MAX (x_graphql_retry_max, read when
    # the SDK's settings singleton is created) bounds it: 1 retry, then the page read fails.
    monkeypatch.setenv("WANDB__GRAPHQL_RETRY_MAX", "1")
    write_run("r-bounded", [{"x": 1}])
    run = wandb.Api().run(PATH + "r-bounded")
    wandb_server.inject(503, count=1000, operation="HistoryPage")
    rows = run.scan_history()
    with pytest.raises(WandbApiFailedError, match="giving up after 2 attempt"):
        list(rows)
    assert operations(wandb_server, "HistoryPage") == 2


def steps(rows):
    return [row["_step"] for row in rows]


def test_read_history_lag_hides_trailing_rows_but_history_line_count_tells_the_truth(wandb_server):
    write_checkpoints("r-lag")
    wandb_server.set_history_lag("r-lag", 2)
    run = wandb.Api().run(PATH + "r-lag")

    # Every history read misses the last 2 rows, lastHistoryStep included...
    assert steps(run.scan_history()) == CHECKPOINTS[:3]
    assert steps(run.scan_history(keys=["eval/hr"])) == CHECKPOINTS[:3]
    assert steps(run.history(keys=["eval/hr"], pandas=False)) == CHECKPOINTS[:3]
    assert run.lastHistoryStep == 400
    # ...but historyLineCount counts all 5: fewer rows read than that means "stale, read again".
    assert run._attrs["historyLineCount"] == 5
    assert len(wandb_server.run("r-lag").history) == 5

    # RunResumeStatus is not lagged: a resumed run continues after the true last step. The lag
    # is a moving window, so the newly streamed row is hidden in its turn.
    resumed = wandb.init(project="proj", id="r-lag", resume="allow", settings=wandb.Settings(**SETTINGS))
    assert resumed.starting_step == 1501
    resumed.log({"eval/hr": 0.2}, step=2000)
    resumed.finish()
    api = wandb.Api()
    run = api.run(PATH + "r-lag")
    assert run._attrs["historyLineCount"] == 6
    assert steps(run.scan_history()) == CHECKPOINTS[:4]

    wandb_server.set_history_lag("r-lag", 0)
    api.flush()
    run = api.run(PATH + "r-lag")
    assert steps(run.scan_history()) == CHECKPOINTS + [2000]
    assert run.lastHistoryStep == 2000


def test_read_history_lag_is_per_run_and_cleared_with_faults(wandb_server):
    write_run("r-lag-a", [{"x": 1}, {"x": 2}])
    write_run("r-lag-b", [{"x": 1}, {"x": 2}])
    wandb_server.set_history_lag("r-lag-a", 5)  # more than the run has: nothing readable yet
    api = wandb.Api()

    assert list(api.run(PATH + "r-lag-a").scan_history()) == []
    assert api.run(PATH + "r-lag-a").lastHistoryStep == -1
    assert steps(api.run(PATH + "r-lag-b").scan_history()) == [0, 1]
    wandb_server.clear_faults()
    assert steps(api.run(PATH + "r-lag-a").scan_history()) == [0, 1]

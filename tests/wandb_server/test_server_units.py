"""Unit tests of the W&B test server's parts (no SDK): store offsets, fault rules, raw HTTP."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request

import pytest

from .faults import Faults
from .history_view import HistoryLag, history_keys, in_range, readable_rows, sample, with_keys
from .server import DEFAULT_API_KEY, WandbTestServer
from .store import HISTORY_FILE, SUMMARY_FILE, DeletedRunError, Store

KEY = ("e", "p", "r")


def chunk(offset, *rows):
    return {HISTORY_FILE: {"offset": offset, "content": [json.dumps(row) for row in rows]}}


def test_store_stream_writes_at_offset_so_resends_do_not_duplicate():
    store = Store()
    store.upsert(KEY, {})
    store.stream(KEY, chunk(0, {"_step": 0}, {"_step": 1}), None, None)
    store.stream(KEY, chunk(1, {"_step": 1}, {"_step": 2}), None, None)  # a retry overlapping line 1
    store.stream(KEY, chunk(0, {"_step": 0}), None, None)  # a full re-send of line 0
    run = store.get(KEY)
    assert [row["_step"] for row in run.history] == [0, 1, 2]
    assert run.lines_received[HISTORY_FILE] == 5


def test_store_stream_summary_is_replaced_and_complete_sets_state():
    store = Store()
    store.upsert(KEY, {})
    store.stream(KEY, {SUMMARY_FILE: {"offset": 0, "content": [json.dumps({"a": 1})]}}, None, None)
    store.stream(KEY, {SUMMARY_FILE: {"offset": 0, "content": [json.dumps({"b": 2})]}}, True, 0)
    run = store.get(KEY)
    assert run.summary == {"b": 2}
    assert (run.state, run.exitcode) == ("finished", 0)


def test_store_stream_gap_is_left_until_filled():
    store = Store()
    store.upsert(KEY, {})
    store.stream(KEY, chunk(2, {"_step": 2}), None, None)
    assert [row["_step"] for row in store.get(KEY).history] == [2]
    store.stream(KEY, chunk(0, {"_step": 0}, {"_step": 1}), None, None)
    assert [row["_step"] for row in store.get(KEY).history] == [0, 1, 2]


def test_store_deleted_run_refuses_upsert_and_stream():
    store = Store()
    store.upsert(KEY, {"name": "n"})
    store.delete(KEY)
    with pytest.raises(DeletedRunError, match="previously created and deleted; try a new run id"):
        store.upsert(KEY, {})
    with pytest.raises(DeletedRunError):
        store.stream(KEY, chunk(0, {"_step": 0}), None, None)
    assert store.find("r") is None and store.runs() == []


def test_store_config_unwraps_values_and_hides_wandb_key():
    store = Store()
    run, inserted = store.upsert(KEY, {"raw_config": {"a": {"value": 1}, "_wandb": {"value": {"t": {}}}}})
    assert inserted and run.config == {"a": 1}
    assert store.upsert(KEY, {})[1] is False


def test_faults_rules_fire_count_times_on_matching_requests_only():
    faults = Faults()
    faults.inject(500, count=2, match="UpsertBucket")
    faults.drop_connections(count=1, match="file_stream", body_match="history")
    assert faults.take("/graphql Viewer") is None
    assert faults.take("/files/e/p/r/file_stream", b'{"summary"}') is None
    assert faults.take("/files/e/p/r/file_stream", b'{"history"}').status is None
    assert faults.take("/graphql UpsertBucket").status == 500
    assert faults.take("/graphql UpsertBucket").status == 500
    assert faults.take("/graphql UpsertBucket") is None
    assert faults.pending() == []


def test_faults_reject_unbounded_or_invalid_settings():
    faults = Faults()
    with pytest.raises(ValueError):
        faults.set_latency(3600)
    with pytest.raises(ValueError):
        faults.inject(200 * 10)
    with pytest.raises(ValueError):
        faults.drop_connections(count=0)


def test_history_view_selects_by_step_filters_keys_and_samples():
    store = Store()
    store.upsert(KEY, {})
    store.stream(
        KEY, chunk(0, {"_step": 10, "a": 1, "b": 1}, {"_step": 20, "b": 2}, {"_step": 30, "a": 3}), None, None
    )
    rows = readable_rows(store.get(KEY), 0)
    assert [step for step, _, _ in in_range(rows, 10, 30)] == [10, 20]
    # Rows must hold every key; the Go reader's repeated "_step" is harmless.
    assert with_keys(rows, ["a", "_step", "_step"]) == [{"a": 1, "_step": 10}, {"a": 3, "_step": 30}]
    assert [step for step, _, _ in readable_rows(store.get(KEY), 1)] == [10, 20]
    assert sample(list(range(10)), 4) == [0, 3, 6, 9]
    assert sample(list(range(3)), None) == [0, 1, 2] and sample(list(range(3)), 1) == [2]
    keys = history_keys(rows)
    assert keys["lastStep"] == 30 and keys["keys"]["a"]["typeCounts"] == [{"type": "number", "count": 2}]
    assert history_keys([])["lastStep"] == -1


def test_history_lag_matches_run_id_optionally_narrowed_latest_setting_wins():
    lag = HistoryLag()
    lag.set("r", 2, project="p")
    assert (lag.hidden(("e", "p", "r")), lag.hidden(("e", "other", "r")), lag.hidden(("e", "p", "x"))) == (
        2,
        0,
        0,
    )
    lag.set("r", 3)
    assert (lag.hidden(("e", "p", "r")), lag.hidden(("e", "other", "r"))) == (3, 3)
    lag.set("r", 0)  # ends only the rule set without a project
    assert (lag.hidden(("e", "p", "r")), lag.hidden(("e", "other", "r"))) == (2, 0)
    with pytest.raises(ValueError):
        lag.set("r", -1)


def post_graphql(server, operation, key=DEFAULT_API_KEY, variables=None):
    """Given an operation name (and variables), POST it like the SDK does; return (status, JSON body)."""
    auth = base64.b64encode("api:{}".format(key).encode()).decode()
    body = {"operationName": operation, "query": "query {}".format(operation), "variables": variables or {}}
    request = urllib.request.Request(
        server.url + "/graphql",
        data=json.dumps(body).encode(),
        headers={"Authorization": "Basic " + auth, "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def test_http_auth_fault_and_retry_after():
    with WandbTestServer() as server:
        assert post_graphql(server, "Viewer")[1]["data"]["viewer"]["entity"] == "test-entity"
        assert post_graphql(server, "Viewer", key="x" * 40)[0] == 401
        server.inject(429, count=1, match="Viewer", retry_after=2)
        status, body = post_graphql(server, "Viewer")
        assert status == 429 and "injected" in body["errors"][0]["message"]
        assert post_graphql(server, "Viewer")[0] == 200
        assert [op for _, _, op in server.requests] == ["Viewer"] * 4


def test_http_down_refuses_then_comes_back_on_same_port():
    with WandbTestServer() as server:
        port = server.port
        server.set_down(True)
        with pytest.raises(urllib.error.URLError):
            post_graphql(server, "Viewer")
        server.set_down(False)
        assert server.port == port
        assert post_graphql(server, "Viewer")[0] == 200


def test_http_read_queries_not_found_inclusive_spec_max_step_exact_operation_faults_and_lag():
    with WandbTestServer() as server:
        key = ("test-entity", "p", "r")
        server.store.upsert(key, {})
        server.store.stream(key, chunk(0, *({"_step": step, "x": step} for step in (0, 5, 10))), None, None)
        run = {"entity": "test-entity", "project": "p", "run": "r"}
        assert post_graphql(server, "Run", variables=dict(run, project="nope"))[1]["data"] == {
            "project": None
        }
        assert post_graphql(server, "Run", variables=dict(run, run="x"))[1]["data"] == {
            "project": {"run": None}
        }

        def page_steps(**extra):
            page = dict(run, minStep=0, maxStep=10, pageSize=10, **extra)
            lines = post_graphql(server, "HistoryPage", variables=page)[1]["data"]["project"]["run"][
                "history"
            ]
            return [json.loads(line)["_step"] for line in lines]

        assert page_steps() == [0, 5]  # HistoryPage: maxStep exclusive
        spec = json.dumps({"keys": ["x", "_step"], "minStep": 0, "maxStep": 10, "samples": 11})
        sampled = post_graphql(server, "SampledHistoryPage", variables=dict(run, spec=spec))[1]
        assert [row["_step"] for row in sampled["data"]["project"]["run"]["sampledHistory"][0]] == [0, 5, 10]

        server.inject(500, count=1, operation="Run")
        assert post_graphql(server, "RunHistoryKeys", variables=run)[0] == 200
        assert post_graphql(server, "Run", variables=run)[0] == 500

        request = urllib.request.Request(
            server.url + "/_test/faults",
            data=json.dumps({"history_lag": {"run_id": "r", "rows": 2}}).encode(),
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert json.load(response)["history_lag"] == [
                {"run_id": "r", "project": None, "entity": None, "rows": 2}
            ]
        assert page_steps() == [0]
        server.clear_faults()
        assert page_steps() == [0, 5]

"""Pure planning: what to read, what a read means, recovery split, table and summary."""

from __future__ import annotations

from local.upload import plan
from local.upload.metrics import MetricsResult
from local.upload.state import ModelState


def _state_with(step: int, metrics: dict, sig: tuple = ("metrics.json", 10, 1)) -> ModelState:
    state = ModelState("m", "r")
    item = plan.Item(step, 0, plan.metrics_digest(metrics), sig, metrics)
    plan.mark_processed(state, [item])
    return state


def test_plan_reads_only_new_or_changed_files() -> None:
    state = _state_with(10, {"HR@10": 0.1})
    scan = {10: ("metrics.json", 10, 1), 20: ("metrics.json", 10, 1), 30: None, 40: ("metrics.json", 9, 9)}
    state.files[40] = ["metrics.json", 9, 9]  # failed before: not processed, so read again
    assert plan.steps_to_read(scan, state) == [20, 40]
    scan[10] = ("metrics.json", 11, 2)
    assert plan.steps_to_read(scan, state) == [10, 20, 40]


def test_plan_skips_steps_in_flight() -> None:
    state = ModelState("m", "r", in_flight={"start_step": 0, "items": [{"step": 20}]})
    assert plan.steps_to_read({20: ("metrics.json", 1, 1)}, state) == []


def test_plan_classify_sorts_new_revised_touched_and_failed() -> None:
    state = _state_with(10, {"HR@10": 0.1})
    plan.mark_processed(
        state, [plan.Item(20, 0, plan.metrics_digest({"HR@10": 0.2}), ("metrics.json", 1, 1), {"HR@10": 0.2})]
    )
    sig = ("metrics.json", 99, 99)
    reads = {
        10: (sig, MetricsResult(metrics={"HR@10": 0.1})),  # touched, same numbers
        20: (sig, MetricsResult(metrics={"HR@10": 0.25})),  # corrected
        30: (sig, MetricsResult(metrics={"HR@10": 0.3})),  # new
        40: (sig, MetricsResult(reason="metrics.json is empty")),
    }
    result = plan.classify(reads, state)
    assert [(i.step, i.revision) for i in result.items] == [(20, 1), (30, 0)]
    assert result.touched == {10: sig} and result.failures == {40: "metrics.json is empty"}


def test_plan_history_row_has_the_original_keys_and_revision_only_when_corrected() -> None:
    first = plan.history_row(plan.Item(10, 0, "d", ("metrics.json", 1, 1), {"HR@10": 0.5}, 1, 0.25), "m")
    assert first == {
        "checkpoint_step": 10,
        "checkpoint_index": 1,
        "epoch_progress": 0.25,
        "eval/checkpoint_name": "checkpoint-10",
        "eval/metrics_path": "m/checkpoint-10/metrics.json",
        "eval/HR@10": 0.5,
    }
    again = plan.history_row(plan.Item(10, 2, "d", ("metrics.tsv", 1, 1), {"HR@10": 0.6}, 1), "m")
    assert again["eval/revision"] == 2 and again["checkpoint_step"] == 10
    assert "epoch_progress" not in again and again["eval/metrics_path"] == "m/checkpoint-10/metrics.tsv"


def test_plan_recover_splits_at_rows_the_server_holds() -> None:
    items = [plan.Item(s, 0, "d", ("f", 1, 1), {"x": 1}).to_json() for s in (10, 20, 30)]
    record = {"start_step": 5, "items": items}
    landed, leftover, surplus = plan.recover(record, 7)
    assert [i.step for i in landed] == [10, 20] and [i.step for i in leftover] == [30] and surplus == 0
    landed, leftover, surplus = plan.recover(record, 5)
    assert landed == [] and len(leftover) == 3
    landed, leftover, surplus = plan.recover(record, 10)
    assert len(landed) == 3 and leftover == [] and surplus == 2
    assert plan.recover(record, 2)[0] == []


def test_plan_summary_gives_best_and_last_with_steps() -> None:
    rows = [
        {"checkpoint_step": 30, "revision": 0, "metrics": {"HR@10": 0.2, "NDCG@10": 0.1}},
        {"checkpoint_step": 10, "revision": 0, "metrics": {"HR@10": 0.4, "NDCG@10": 0.05}},
        {"checkpoint_step": 20, "revision": 0, "metrics": {"HR@10": 0.3, "NDCG@10": 0.2}},
    ]
    summary = plan.summary(rows)
    assert summary["best_hr@10"] == 0.4 and summary["best_step_for_hr@10"] == 10
    assert summary["best_ndcg@10"] == 0.2 and summary["best_step_for_ndcg@10"] == 20
    assert summary["last_hr@10"] == 0.2 and summary["last_ndcg@10"] == 0.1 and summary["last_step"] == 30
    assert summary["eval/HR@10"] == 0.2 and summary["checkpoint_step"] == 30
    assert plan.summary([]) == {}


def test_plan_table_has_one_row_per_checkpoint_in_step_order() -> None:
    state = ModelState("m", "r")
    metrics = {"HR@10": 0.1, "HR@50": 0.3}
    plan.mark_processed(state, [plan.Item(s, 0, "d", ("metrics.json", 1, 1), metrics) for s in (30, 10, 20)])
    columns, data = plan.table_data(state.table_rows, "m")
    # The original tool's columns in its order, then the metrics it did not list, then ours.
    assert columns == [
        "checkpoint_step",
        "checkpoint_index",
        "epoch_progress",
        "checkpoint_name",
        *("HR@1", "HR@3", "HR@5", "HR@10", "NDCG@1", "NDCG@3", "NDCG@5", "NDCG@10"),
        "metrics_path",
        "HR@50",
        "revision",
    ]
    assert [row[0] for row in data] == [10, 20, 30]
    assert data[0][:4] == [10, 1, None, "checkpoint-10"] and data[0][-3:] == [
        "m/checkpoint-10/metrics.json",
        0.3,
        0,
    ]


def test_plan_failures_keep_first_time_of_same_reason() -> None:
    state = ModelState("m", "r")
    assert plan.record_failures(state, {5: "empty"}, "t1")
    assert not plan.record_failures(state, {5: "empty"}, "t2")
    assert state.failed_steps[5]["time"] == "t1"
    assert plan.record_failures(state, {5: "not valid JSON"}, "t3")

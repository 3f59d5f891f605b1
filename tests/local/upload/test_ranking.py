"""The one ranking rule (best checkpoint by an ordered list of metrics) and the run summary it feeds."""

from __future__ import annotations

import math

from local.upload import plan
from local.upload.ranking import DEFAULT_RANK_BY, best_step, metric_value, peak
from remote.contract.options import TABLE


def test_ranking_first_metric_decides_then_each_next_metric_breaks_a_tie() -> None:
    checkpoints = {
        100: {"NDCG@10": 0.05, "HR@10": 0.90, "NDCG@50": 0.9, "HR@50": 0.9},
        200: {"NDCG@10": 0.07, "HR@10": 0.10, "NDCG@50": 0.1, "HR@50": 0.1},
        300: {"NDCG@10": 0.07, "HR@10": 0.20, "NDCG@50": 0.1, "HR@50": 0.1},
        400: {"NDCG@10": 0.07, "HR@10": 0.20, "NDCG@50": 0.3, "HR@50": 0.1},
        500: {"NDCG@10": 0.07, "HR@10": 0.20, "NDCG@50": 0.3, "HR@50": 0.2},
    }
    assert best_step(checkpoints) == 500  # NDCG@10, HR@10, NDCG@50 tie between 400 and 500; HR@50 decides
    del checkpoints[500]
    assert best_step(checkpoints) == 400  # NDCG@50 decides between 300 and 400
    assert best_step(checkpoints, ["HR@10"]) == 100


def test_ranking_a_full_tie_keeps_the_lower_step() -> None:
    same = {"NDCG@10": 0.1, "HR@10": 0.2, "NDCG@50": 0.3, "HR@50": 0.4}
    assert best_step({900: dict(same), 300: dict(same), 600: dict(same)}) == 300


def test_ranking_a_missing_or_unusable_metric_ranks_below_any_value() -> None:
    checkpoints = {
        10: {"HR@10": 0.9},  # no NDCG@10 at all
        20: {"NDCG@10": -0.5, "HR@10": 0.1},
        30: {"NDCG@10": math.nan, "HR@10": 0.95},
    }
    assert best_step(checkpoints) == 20
    assert best_step({10: {"loss": 1.0}}) is None  # none of the order's metrics: no best
    assert best_step({}) is None


def test_ranking_names_match_exactly_else_ignoring_case() -> None:
    assert metric_value({"hr@10": 0.3}, "HR@10") == 0.3
    assert metric_value({"HR@10": 0.3, "hr@10": 0.1}, "HR@10") == 0.3
    assert metric_value({"HR@10": True}, "HR@10") is None
    assert best_step({1: {"ndcg@10": 0.1}, 2: {"ndcg@10": 0.2}}) == 2


def test_ranking_peak_is_the_highest_value_at_the_first_step_reaching_it() -> None:
    checkpoints = {100: {"HR@50": 0.2}, 200: {"HR@50": 0.3}, 300: {"HR@50": 0.3}, 400: {"X": 1.0}}
    assert peak(checkpoints, "HR@50") == (0.3, 200)
    assert peak(checkpoints, "NDCG@50") is None


def test_ranking_default_order_is_the_report_commands_default() -> None:
    assert TABLE["rank_by"].default == list(DEFAULT_RANK_BY)


def test_plan_summary_adds_best_by_ranking_and_keeps_the_original_keys() -> None:
    def row(step: int, ndcg: float, hr: float) -> dict:
        return {"checkpoint_step": step, "metrics": {"NDCG@10": ndcg, "HR@10": hr, "HR@50": hr * 2}}

    rows = [row(10, 0.20, 0.30), row(20, 0.20, 0.35), row(30, 0.10, 0.50)]
    summary = plan.summary(rows)
    # The original keys, each its own metric's maximum, unchanged.
    assert summary["best_hr@10"] == 0.50 and summary["best_step_for_hr@10"] == 30
    assert summary["best_ndcg@10"] == 0.20 and summary["best_step_for_ndcg@10"] == 10
    # The shared ranking: NDCG@10 ties at 10 and 20, HR@10 picks 20; every metric there.
    assert summary["best/step"] == 20
    assert {k: v for k, v in summary.items() if k.startswith("best/")} == {
        "best/step": 20,
        "best/NDCG@10": 0.20,
        "best/HR@10": 0.35,
        "best/HR@50": 0.70,
    }
    assert not [k for k in plan.summary([row(1, math.nan, math.nan)]) if k.startswith("best/")]

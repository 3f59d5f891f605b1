"""The charts: drawn from the figure objects (a line per model, a dashed line per baseline, a point per
best checkpoint), the x-axis epoch only where every point has one, and PNG files that hold a picture."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, List

import matplotlib.image
import pytest

from local.report import charts
from local.report.build import ReportOptions, gather
from local.report.summary import best_rows, group_of
from remote.contract.exit_codes import EXIT_OK
from tests.local.report.test_best_summary import BASELINE, raw_checkpoints
from tests.local.report.test_collect import epoch_tree

# The sample tree's models per dataset, and their checkpoint counts, counted by hand.
GROUPS = {
    "Games_grec": [10, 8],
    "Industrial_and_Scientific": [2],
    "Instruments_grec": [10, 2],
    "Instruments_mimionerec": [3],
}


def sample_groups(results: Path) -> tuple:
    models, refs = gather(ReportOptions(str(results), "unused", baselines=[f"{BASELINE[0]}:{BASELINE[1]}"]))
    groups: Dict[str, List] = {}
    for model in models:
        groups.setdefault(group_of(model, "dataset"), []).append(model)
    return models, refs, groups


@pytest.mark.parametrize("metric", ["HR@10", "NDCG@50"])
def test_charts_one_line_per_model_and_a_dashed_one_per_baseline(sample_results: Path, metric: str) -> None:
    charts.use_agg()
    _, refs, groups = sample_groups(sample_results)
    assert {name: [len(m.checkpoints) for m in models] for name, models in groups.items()} == GROUPS
    for group, models in groups.items():
        x_name, series = charts.curves(models, metric)
        group_refs = [ref for ref in refs if ref.group == group]
        axes = charts.curve_figure(group, metric, x_name, series, group_refs).axes[0]
        lines = axes.get_lines()
        assert len(lines) == len(GROUPS[group]) + (1 if group == "Instruments_grec" else 0), group
        assert [len(line.get_xdata()) for line in lines[: len(models)]] == GROUPS[group]
        assert axes.get_xlabel() == "step" and axes.get_ylabel() == metric
        if group == "Instruments_grec":
            dashed = lines[-1]
            expected = raw_checkpoints(sample_results, BASELINE[0])[BASELINE[1]][metric]
            assert dashed.get_linestyle() == "--" and set(dashed.get_ydata()) == {expected}
            assert dashed.get_label() == f"baseline {BASELINE[0]}:checkpoint-{BASELINE[1]}"


def test_charts_scatter_has_a_point_per_best_checkpoint_and_baseline(sample_results: Path) -> None:
    charts.use_agg()
    models, refs, _ = sample_groups(sample_results)
    rows = best_rows(models, "dataset", ("NDCG@10", "HR@10", "NDCG@50", "HR@50"), ("HR@50",), refs)
    axes = charts.scatter_figure(rows, refs).axes[0]
    points = [tuple(c.get_offsets()[0]) for c in axes.collections]
    assert len(points) == 6 + 1
    for row, point in zip(rows, points):
        best = raw_checkpoints(sample_results, row.model.entry.model_dir)[row.best.step]
        assert point == (best["HR@50"], best["NDCG@10"])
    assert points[-1] == (0.1565, 0.0614)  # the baseline, a star


def test_charts_x_axis_is_the_epoch_only_when_every_point_has_one(tmp_path: Path) -> None:
    charts.use_agg()
    results = epoch_tree(tmp_path / "results")
    models, _ = gather(ReportOptions(str(results), "unused", models=["declared", "trainer"]))
    x_name, series = charts.curves(models, "HR@10")
    assert x_name == "epoch"
    assert [s.xs for s in series] == [[0.5, 1.0, 2.0], [0.1, 0.2, 0.4]]
    models, _ = gather(ReportOptions(str(results), "unused"))  # + 'unknown', which has no epoch
    x_name, series = charts.curves(models, "HR@10")
    assert x_name == "step" and series[0].xs == [100.0, 200.0, 400.0]


def test_charts_written_as_png_files_the_page_shows(sample_results: Path, run_report) -> None:
    ran = run_report(sample_results)
    assert ran.code == EXIT_OK, ran.err
    files = sorted((ran.output_dir / "charts").glob("*.png"))
    assert len(files) == len(GROUPS) * 4 + 1  # 4 default metrics per dataset, and the scatter
    for path in files:
        pixels = matplotlib.image.imread(path)
        height, width = pixels.shape[:2]
        assert width == 750 and height >= 420, path.name
        drawn = (pixels[:, :, :3] < 0.9).any(axis=2).mean()
        assert drawn > 0.02, f"{path.name}: {drawn:.3f} of its pixels are not white"
    page = (ran.output_dir / "index.html").read_text()
    sources = re.findall(r'<img src="([^"]+)"', page)
    assert sorted(sources) == sorted(f"charts/{p.name}" for p in files)

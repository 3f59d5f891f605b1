"""Property: whatever a hand-built manifest or overrides file holds, reading it gives usable models
and one-line problems (or one ManifestError), never a traceback, and a bad entry never hides a good one.

Documents are generated: entries whose fields take any JSON value (wrong types, booleans for numbers,
NaN and Infinity, nested objects, non-UTF-8 text as a lone surrogate), mixed with good entries, and
overrides of the same shapes. 200 examples, derandomized (a failure reproduces by running it again).
"""

from __future__ import annotations

import math
from typing import Any, Dict

from hypothesis import given
from hypothesis import strategies as st

from remote.contract.manifest import REQUIRED_MODEL_FIELDS, ManifestError, parse_manifest
from remote.contract.overrides import apply_overrides
from tests.fixtures.hostile import PROPERTY_SETTINGS

ODD_VALUES = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(10**30), max_value=10**30),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=12),
        st.sampled_from(["Caf\udce9", "a/b", "..", "", "ok-name", "x" * 300]),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)


def good_entry(name: str) -> Dict[str, Any]:
    return {
        "model_dir": name,
        "dataset": "Games",
        "cb_setting": "none",
        "eval_split": "test",
        "seed": 42,
        "num_beams": 50,
        "sid_levels": -1,
        "wandb_project": "p",
        "wandb_entity": None,
        "wandb_run_id": f"eval-{name}",
        "wandb_run_name": f"{name}-eval",
    }


@st.composite
def odd_entry(draw: Any) -> Any:
    if draw(st.booleans()):
        return draw(ODD_VALUES)
    entry = good_entry(draw(st.sampled_from(["m1", "m2", "m3"])))
    for key in draw(
        st.lists(
            st.sampled_from(REQUIRED_MODEL_FIELDS + ("num_train_epochs", "max_steps", "variants")), max_size=4
        )
    ):
        entry[key] = draw(ODD_VALUES)
    return entry


@PROPERTY_SETTINGS
@given(
    odd=st.lists(odd_entry(), max_size=5),
    overrides=st.dictionaries(
        st.sampled_from(["good", "m1", "m2"]),
        st.dictionaries(st.text(max_size=8), ODD_VALUES, max_size=4),
        max_size=3,
    ),
)
def test_manifest_property_any_document_reads_to_models_and_one_line_problems(
    odd: list, overrides: dict
) -> None:
    models = [good_entry("good")] + odd
    warnings: list = []
    merged = apply_overrides(models, {k: v for k, v in overrides.items() if isinstance(v, dict)}, warnings)
    try:
        manifest = parse_manifest({"version": 1, "models": merged})
    except ManifestError as exc:  # pragma: no cover - the document itself is well formed here
        raise AssertionError(f"a well-formed document raised {exc}") from exc
    assert all("\n" not in line for line in manifest.problems + warnings)
    assert len(manifest.models) + len(manifest.problems) == len(merged)
    names = [m.model_dir for m in manifest.models]
    assert "good" in names or any("good" in line for line in manifest.problems + warnings)
    for model in manifest.models:
        assert isinstance(model.seed, int) and not isinstance(model.seed, bool)
        for number in (model.num_train_epochs, model.max_steps, model.steps_per_epoch):
            assert number is None or (math.isfinite(number) and number > 0)
        for text in (model.model_dir, model.dataset, model.wandb_run_id, model.wandb_project):
            text.encode("utf-8")  # never a lone surrogate: it could not be stored or sent

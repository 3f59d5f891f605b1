"""How a results tree is laid out: ``<model_dir>/checkpoint-<step>/metrics.json`` (or ``.tsv``).

The remote role scans this layout to build the manifest and the bundles; the local role scans it
again to find new checkpoints. Both use these rules, so a folder is a checkpoint on both sides or
on neither.
"""

from __future__ import annotations

import re
from typing import Optional

# Only ``checkpoint-<digits>`` is a step; ``checkpoint-best`` or ``checkpoint-final`` never are.
CHECKPOINT_PREFIX = "checkpoint-"
CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
# The eval writes one of these per checkpoint; the first that exists is read.
METRIC_FILES = ("metrics.json", "metrics.tsv")
# The original tool's transfer filters, which both roles apply: larger files and these basenames
# never travel (pack) and are never accepted (unpack).
DEFAULT_MAX_FILE_MB = 10.0
DEFAULT_EXCLUDES = ("final_result.json", "rollout.json")


def checkpoint_step(name: str) -> Optional[int]:
    """Given a folder name, return its step for ``checkpoint-<digits>``, else None."""
    match = CHECKPOINT_RE.match(name)
    return int(match.group(1)) if match else None


def checkpoint_dir_name(step: int) -> str:
    """Given a step, return the name of its checkpoint folder."""
    return f"{CHECKPOINT_PREFIX}{step}"

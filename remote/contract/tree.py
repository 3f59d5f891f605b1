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
# What one bundle may expand to on the uploader (unpack ``--max-bytes``). Measured on the real
# sample tree (../shared/samples/genrec-results): 35 checkpoints hold 16,384 bytes of metrics.json
# + metrics.tsv, about 470 bytes per checkpoint, plus about 530 bytes of manifest per model. A full
# bundle of a large lab (5,000 models x 200 checkpoints) thus declares about 0.47 GB; 2 GiB is four
# times that, and still stops a bundle that would fill the uploader's disk.
DEFAULT_MAX_BUNDLE_BYTES = 2 * 1024**3


def checkpoint_step(name: str) -> Optional[int]:
    """Given a folder name, return its step for ``checkpoint-<digits>``, else None."""
    match = CHECKPOINT_RE.match(name)
    return int(match.group(1)) if match else None


def checkpoint_dir_name(step: int) -> str:
    """Given a step, return the name of its checkpoint folder."""
    return f"{CHECKPOINT_PREFIX}{step}"

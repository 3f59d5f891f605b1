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
# ASCII digits without leading zeros: ``checkpoint-007`` would be read back as ``checkpoint-7``.
CHECKPOINT_RE = re.compile(r"^checkpoint-(0|[1-9][0-9]*)$")
# The eval writes one of these per checkpoint; the first that exists is read.
METRIC_FILES = ("metrics.json", "metrics.tsv")
# The original tool's transfer filters: larger files and these basenames never travel (pack), and
# unpack refuses a bundle member over the size limit.
DEFAULT_MAX_FILE_MB = 10.0
DEFAULT_EXCLUDES = ("final_result.json", "rollout.json")
# What one bundle may expand to on the uploader (unpack ``--max-bytes``). Measured on the real
# sample tree (../shared/samples/genrec-results): 35 checkpoints hold 16,384 bytes of metrics.json
# + metrics.tsv, about 470 bytes per checkpoint, plus about 530 bytes of manifest per model. A full
# bundle of a large lab (5,000 models x 200 checkpoints) thus declares about 0.47 GB; 2 GiB is four
# times that, and still stops a bundle that would fill the uploader's disk.
DEFAULT_MAX_BUNDLE_BYTES = 2 * 1024**3
# The same lab's full bundle has about 2,000,001 members (two files per checkpoint, the manifest);
# the bound keeps validation's memory in check (a few hundred MB at the limit).
DEFAULT_MAX_MEMBERS = 3_000_000


def checkpoint_step(name: str) -> Optional[int]:
    """Given a folder name, return its step for ``checkpoint-<digits>``, else None."""
    match = CHECKPOINT_RE.match(name)
    return int(match.group(1)) if match else None


def checkpoint_dir_name(step: int) -> str:
    """Given a step, return the name of its checkpoint folder."""
    return f"{CHECKPOINT_PREFIX}{step}"


# A lone surrogate \udcNN in a str is the byte 0xNN of a file name that was not valid UTF-8
# (Python's surrogateescape); not preceded by an odd number of backslashes (a real backslash).
_SURROGATE_RE = re.compile(r"(?<!\\)((?:\\\\)*)\\udc([89a-f][0-9a-f])")


def is_utf8(name: str) -> bool:
    """Given a name as Python decoded it from the file system or a tar header, tell whether its
    bytes were valid UTF-8 (only such names can go into a manifest, a bundle, a ledger or W&B)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def shown_name(name: str) -> str:
    """Given a file name, return it quoted on one line, each byte that is not UTF-8 as ``\\xNN``."""
    return _SURROGATE_RE.sub(r"\1\\x\2", repr(name))

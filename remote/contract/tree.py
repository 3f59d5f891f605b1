"""How a results tree is laid out: ``<model_dir>/checkpoint-<step>/metrics.json`` (or ``.tsv``).

The remote role scans this layout to build the manifest and the bundles; the local role scans it
again to find new checkpoints. Both use these rules, so a folder is a checkpoint on both sides or
on neither.
"""

from __future__ import annotations

import os
import re
from typing import Optional

# Only ``checkpoint-<digits>`` is a step; ``checkpoint-best`` or ``checkpoint-final`` never are.
CHECKPOINT_PREFIX = "checkpoint-"
# ASCII digits without leading zeros: ``checkpoint-007`` would be read back as ``checkpoint-7``.
CHECKPOINT_RE = re.compile(r"\Acheckpoint-(0|[1-9][0-9]*)\Z")  # \Z: "checkpoint-5\n" is not step 5
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


# Shown as \xNN so that one name is always one line on any terminal.
_CONTROL_CHARS = {code: f"\\x{code:02x}" for code in [*range(0x20), 0x7F]}


def is_utf8(name: str) -> bool:
    """Given a name as Python decoded it from the file system or a tar header, tell whether its
    bytes are valid UTF-8: only such a name can be a bundle member, a manifest ``model_dir``, a
    ledger entry or text sent to W&B, so only such names travel.

    Undecodable bytes come back as surrogate escapes (or, under a non-UTF-8 locale, as other
    characters): the name counts only when its bytes decode as UTF-8 to this very text.
    """
    if name.isascii():  # the common case, decided without encoding anything
        return True
    try:
        return os.fsencode(name).decode("utf-8") == name
    except (UnicodeDecodeError, UnicodeEncodeError):
        return False


def printable(name: str) -> str:
    """Given a name or path as ``os`` or ``tarfile`` return it, return it printable on one line.

    Bytes that are not UTF-8 (kept by Python as lone surrogates) and control characters (a newline
    in a name) become ``\\xNN``, so printing never fails on a strict terminal and never spans lines.
    Both roles name odd files this way.
    """
    return os.fsencode(name).decode("utf-8", "backslashreplace").translate(_CONTROL_CHARS)


def shown_name(name: str) -> str:
    """Given a name, return it :func:`printable` and quoted, for messages that name one item."""
    return f"'{printable(name)}'"

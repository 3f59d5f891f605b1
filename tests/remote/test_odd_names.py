"""Names that are not valid UTF-8 (issue 12, class 1): skipped with one line, never a traceback.

The commands run as subprocesses under a strict UTF-8 locale (``LC_ALL=C.UTF-8``, where Python
prints with ``errors="strict"``), with ``-S`` as on the training machine, because that is where
an undecodable name used to crash ``print`` and ``json``.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Dict, List, Tuple

import pytest

from remote.contract.manifest import is_plain_dir_name
from remote.contract.names import MANIFEST_NAME
from remote.contract.outbox import parse_index
from remote.contract.tree import is_utf8, printable
from remote.scan import NOT_UTF8
from tests.fixtures.trees import REPO_ROOT, make_results_tree

GOOD_FILES = [
    "ModelA-sft-x/checkpoint-100/metrics.json",
    "ModelA-sft-x/checkpoint-200/metrics.json",
    "ModelB-sft-y/checkpoint-100/metrics.json",
    "ModelB-sft-y/checkpoint-200/metrics.json",
]
# case -> (the odd entry as bytes, relative to the root; how the warning shows it)
CASES: Dict[str, Tuple[bytes, str]] = {
    "file": (b"ModelA-sft-x/checkpoint-100/m\xff.json", "ModelA-sft-x/checkpoint-100/m\\xff.json"),
    "root-file": (b"notes-\xe9t\xe9.txt", "notes-\\xe9t\\xe9.txt"),
    "checkpoint-dir": (b"ModelA-sft-x/checkpoint-300\xff", "ModelA-sft-x/checkpoint-300\\xff"),
    "model-dir": (b"Odd\xfe-sft-z", "Odd\\xfe-sft-z"),
}


def _make_odd(root: Path, case: str) -> str:
    """Given a good tree, add the case's odd entry (a directory holds a metrics file); return its display."""
    relative, display = CASES[case]
    target = os.path.join(os.fsencode(root), relative)
    if case.endswith("dir"):
        checkpoint = os.path.join(target, b"checkpoint-100") if case == "model-dir" else target
        os.makedirs(checkpoint)
        target = os.path.join(checkpoint, b"metrics.json")
    with open(target, "wb") as handle:
        handle.write(b'{"HR@10": 0.5}')
    return display


def _run(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, LC_ALL="C.UTF-8", PYTHONIOENCODING="")
    env.pop("PYTHONUTF8", None)
    command = [sys.executable, "-S", "-m", "remote", *args]
    return subprocess.run(command, cwd=REPO_ROOT, capture_output=True, env=env)


def _lines_naming(output: bytes, display: str) -> List[str]:
    return [line for line in output.decode("utf-8").splitlines() if display in line]


def _members(bundle: Path) -> List[str]:
    with tarfile.open(bundle) as tar:
        return [member.name for member in tar.getmembers()]


def _records(outbox: Path) -> List:
    return parse_index(json.loads((outbox / "index.json").read_text()))


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return make_results_tree(tmp_path / "results", ["ModelA-sft-x", "ModelB-sft-y"], [100, 200])


def test_odd_names_is_utf8_name_and_shown_form() -> None:
    undecodable = os.fsdecode(b"bad\xff\nname")
    assert not is_utf8(undecodable)
    assert is_utf8("caf\u00e9") and is_utf8("plain")
    assert printable(undecodable) == "bad\\xff\\x0aname"
    assert printable("caf\u00e9/m.json") == "caf\u00e9/m.json"


@pytest.mark.parametrize("case", ["checkpoint-dir", "model-dir"])
def test_odd_names_prepare_manifest_skips_the_entry_with_one_line(tree: Path, case: str) -> None:
    display = _make_odd(tree, case)
    result = _run("prepare-manifest", "--results-root", str(tree))
    assert result.returncode == 0, result.stderr
    assert b"Traceback" not in result.stderr
    assert _lines_naming(result.stdout, display) == [f"  skipped {display}: {NOT_UTF8}"]
    models = json.loads((tree / MANIFEST_NAME).read_text(encoding="utf-8"))["models"]
    assert [m["model_dir"] for m in models] == ["ModelA-sft-x", "ModelB-sft-y"]
    assert all(is_plain_dir_name(m["model_dir"]) and is_utf8(m["model_dir"]) for m in models)


@pytest.mark.parametrize("case", sorted(CASES))
def test_odd_names_pack_skips_the_entry_publishes_the_rest_and_stays_idle_next_time(
    tree: Path, tmp_path: Path, case: str
) -> None:
    display = _make_odd(tree, case)
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    (outbox / ".tmp-left-by-a-crash").write_bytes(b"x")  # prune must still run after publishing
    first = _run("pack", "--results-root", str(tree), "--outbox", str(outbox))
    assert first.returncode == 0, first.stderr
    assert b"Traceback" not in first.stderr
    assert _lines_naming(first.stdout, display) == [f"  skipped {display}: {NOT_UTF8}"]
    (record,) = _records(outbox)
    bundle = outbox / record.name
    assert sorted(_members(bundle)) == [MANIFEST_NAME, *GOOD_FILES]
    assert record.size == bundle.stat().st_size
    assert record.sha256 == hashlib.sha256(bundle.read_bytes()).hexdigest()
    assert not (outbox / ".tmp-left-by-a-crash").exists()
    index_before = (outbox / "index.json").read_bytes()
    second = _run("pack", "--results-root", str(tree), "--outbox", str(outbox))
    assert second.returncode == 0, second.stderr
    assert b"Nothing new to pack" in second.stdout
    assert (outbox / "index.json").read_bytes() == index_before
    assert sorted(n for n in os.listdir(outbox) if n.startswith("bundle-")) == [record.name]

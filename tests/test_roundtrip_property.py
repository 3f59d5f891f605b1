"""Property, across both roles: whatever a results tree holds, prepare-manifest + pack on the training
machine, then unpack and a dry-run upload pass on the uploader, end with an exit code and one-line
messages, never a traceback; every well-formed checkpoint reaches the other side intact, and no
half-written metrics file is ever taken for a checkpoint to upload.

Trees are generated: model and file names with bytes that are not UTF-8, spaces, dots and unicode,
``checkpoint-007`` and ``checkpoint-best`` folders, deep folders, metrics files cut anywhere, empty,
or of the wrong type, and files the filters keep back. 100 examples, derandomized (a failure
reproduces by running the test again); each example runs the real commands in this process.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Dict, List, Tuple

from hypothesis import given, settings
from hypothesis import strategies as st

import remote.cli
from local.unpack.apply import unpack_bundles
from local.upload.report import UploadOptions, WriterOptions
from local.upload.uploader import upload_pass
from remote.contract.exit_codes import EXIT_FAILED, EXIT_OK
from remote.contract.names import INDEX_NAME
from tests.fixtures.hostile import PROPERTY_SETTINGS

NAME_PARTS = st.sampled_from(["Games", "sft", "qwen4B", "4-256", "a b", "ünï", ".hidden", "x" * 40])
ODD_BYTES = st.sampled_from([b"", b"", b"\xe9", b"\xff\xfe", b"\x80"])
GOOD_METRICS = json.dumps({"HR@10": 0.25, "NDCG@10": 0.125}).encode()


@st.composite
def model_names(draw: st.DrawFn) -> bytes:
    parts = draw(st.lists(NAME_PARTS, min_size=1, max_size=3))
    return "-".join(parts).encode("utf-8") + draw(ODD_BYTES)


@st.composite
def checkpoint_files(draw: st.DrawFn) -> Tuple[bytes, bytes, bytes]:
    folder = draw(
        st.sampled_from(
            [b"checkpoint-%d" % draw(st.integers(0, 5000)), b"checkpoint-007", b"checkpoint-best"]
        )
    )
    name = draw(st.sampled_from([b"metrics.json", b"metrics.tsv", b"notes.txt", b"rollout.json"])) + draw(
        ODD_BYTES
    )
    content = draw(
        st.one_of(
            st.just(GOOD_METRICS),
            st.binary(max_size=60),
            st.builds(lambda cut: GOOD_METRICS[:cut], st.integers(0, len(GOOD_METRICS))),
            st.just(b"path\tHR@10\nm/checkpoint-1\t0.5678"),  # a TSV cut before its newline
        )
    )
    return folder + draw(ODD_BYTES), name, content


@st.composite
def trees(draw: st.DrawFn) -> Dict[bytes, List[Tuple[bytes, bytes, bytes]]]:
    models = draw(st.lists(model_names(), min_size=1, max_size=3, unique=True))
    return {model: draw(st.lists(checkpoint_files(), min_size=1, max_size=4)) for model in models}


def write_tree(root: Path, tree: Dict[bytes, List[Tuple[bytes, bytes, bytes]]]) -> Dict[str, bytes]:
    """Write the tree with byte names; return the files that must arrive (plain names, good metrics)."""
    arriving: Dict[str, bytes] = {}
    for model, files in tree.items():
        for folder, name, content in files:
            directory = os.path.join(os.fsencode(root), model, folder)
            os.makedirs(directory, exist_ok=True)
            with open(os.path.join(directory, name), "wb") as handle:
                handle.write(content)
            parts = (model, folder, name)
            if all(_plain(part) for part in parts) and name != b"rollout.json" and not model.startswith(b"."):
                arriving[b"/".join(parts).decode()] = content
    return arriving


def _plain(part: bytes) -> bool:
    try:
        part.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@settings(PROPERTY_SETTINGS, max_examples=100)
@given(tree=trees())
def test_roundtrip_any_tree_packs_unpacks_and_plans_without_a_traceback(tree) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        base = Path(scratch)
        remote_root, outbox, local_root = base / "remote", base / "outbox", base / "local"
        arriving = write_tree(remote_root, tree)
        assert (
            remote.cli.main(["pack", "--results-root", str(remote_root), "--outbox", str(outbox)]) == EXIT_OK
        )
        index = json.loads((outbox / INDEX_NAME).read_text())
        unpack_bundles(str(local_root), [str(outbox / bundle["name"]) for bundle in index["bundles"]])
        for relative, content in arriving.items():
            assert (local_root / relative).read_bytes() == content, relative  # intact, never cut
        writer = WriterOptions(mode="online")
        options = UploadOptions(results_root=str(local_root), state_dir=str(base / "state"), writer=writer)
        options.disable_wandb, options.no_network = True, True
        report = upload_pass(options)
        assert report.exit_code() in (EXIT_OK, EXIT_FAILED)
        assert all("\n" not in line for line in report.problems)
        for outcome in report.models:
            for step in outcome.would_upload:  # only complete metrics become checkpoints to upload
                files = [
                    f for f in arriving if f.startswith(f"{outcome.model_dir}/checkpoint-{step}/metrics.")
                ]
                assert any(arriving[f] == GOOD_METRICS or arriving[f].endswith(b"\n") for f in files), files

"""The original tool's transfer archives (single and split) unpack like bundles, with the same checks."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from typing import Dict

import pytest

from local.cli.main import main
from local.unpack.ledger import load_ledger
from remote.contract.exit_codes import EXIT_OK, EXIT_USAGE
from tests.fixtures.original_tool import make_original_tarball


def _tree(root: Path) -> Dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and not p.name.startswith(".unpack")
    }


@pytest.mark.parametrize("chunk_size", [None, 4096], ids=["single", "split"])
def test_original_archive_unpacks_its_results_folder_into_the_results_root(
    sample_results: Path, tmp_path: Path, chunk_size
) -> None:
    (sample_results / "Games-grec-sft-qwen4B-4-256-dsz0" / "rollout.json").write_text("{}")  # never travels
    archives = make_original_tarball(sample_results, tmp_path / "downloads", chunk_size=chunk_size)
    assert (len(archives) > 1) == (chunk_size is not None)
    local = tmp_path / "local-results"
    (local / "OlderModel" / "checkpoint-1").mkdir(parents=True)
    (local / "OlderModel" / "checkpoint-1" / "metrics.json").write_text('{"HR@10": 0.1}')
    assert main(["unpack", "--results-root", str(local), str(archives[-1])]) == EXIT_OK
    expected = {k: v for k, v in _tree(sample_results).items() if not k.endswith("rollout.json")}
    assert {k: v for k, v in _tree(local).items() if not k.startswith("OlderModel")} == expected
    assert (local / "OlderModel" / "checkpoint-1" / "metrics.json").exists()  # merged, nothing deleted
    assert load_ledger(str(local)).applied_seq == 0 and not (local / ".unpack-staging").exists()


def test_original_archive_with_a_member_outside_its_results_folder_is_refused_whole(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    archive = tmp_path / "results_sync_latest.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name, data in (("GenRec/results/.wandb_eval_manifest.json", b"{}"), ("GenRec/secrets.txt", b"x")):
            member = tarfile.TarInfo(name)
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
    local = tmp_path / "local"
    assert main(["unpack", "--results-root", str(local), str(archive)]) == EXIT_USAGE
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("Error: archive results_sync_latest.tar.gz refused, nothing written")
    assert "GenRec/secrets.txt" in err[0] and not (local / "GenRec").exists()
    assert [p.name for p in local.iterdir()] == [".unpack.lock"]  # no staging debris either


def test_original_archive_with_a_missing_part_is_refused(
    sample_results: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    parts = make_original_tarball(sample_results, tmp_path / "downloads", chunk_size=1024)
    assert len(parts) >= 3
    parts[1].unlink()
    assert main(["unpack", "--results-root", str(tmp_path / "local"), str(parts[0])]) == EXIT_USAGE
    assert "do not run from .part.000 without a gap" in capsys.readouterr().err
    parts[-1].unlink()  # a missing last part cannot be seen in the numbering: the archive is then cut
    parts[1].write_bytes(b"")
    assert main(["unpack", "--results-root", str(tmp_path / "local"), str(parts[0])]) == EXIT_USAGE
    assert "refused, nothing written" in capsys.readouterr().err
    assert not (tmp_path / "local" / "Games-grec-sft-qwen4B-4-256-dsz0").exists()


def test_original_archive_with_a_traversal_member_is_refused_before_writing(tmp_path: Path) -> None:
    archive = tmp_path / "results_sync_latest.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name in ("GenRec/results/.wandb_eval_manifest.json", "GenRec/results/../../escape.txt"):
            member = tarfile.TarInfo(name)
            member.size = 2
            tar.addfile(member, io.BytesIO(b"{}"))
    assert main(["unpack", "--results-root", str(tmp_path / "local"), str(archive)]) == EXIT_USAGE
    assert not (tmp_path / "escape.txt").exists() and not (tmp_path / "local" / "GenRec").exists()

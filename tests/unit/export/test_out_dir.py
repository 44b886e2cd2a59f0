"""The output directory of an export: claimed by one process at a time, replaced whole, refused on a full disk."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from conftest import tmpfs
from safetensors.torch import save_file

from bortnas.core.disk import check_free_space, is_disk_full
from bortnas.core.errors import UserInputError
from bortnas.export import out_dir, writer
from bortnas.export.out_dir import prepare_out_dir, release_out_dir

HOLD = """
import sys
from pathlib import Path
from bortnas.export.out_dir import prepare_out_dir
prepare_out_dir(Path(sys.argv[1]), overwrite=False)
print("held", flush=True)
sys.stdin.read()
"""


@pytest.fixture()
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    with tmpfs(tmp_path / "disk", "1m") as mount:
        yield mount


def test_a_directory_another_process_writes_is_refused_until_it_lets_go(tmp_path: Path) -> None:
    out = tmp_path / "model"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(out)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(UserInputError, match="is being written by another bortnas process"):
            prepare_out_dir(out, overwrite=True)
    finally:
        holder.kill()  # the kernel drops a dead process's lock; its lock file may stay behind
        holder.wait()
    prepare_out_dir(out, overwrite=False)
    prepare_out_dir(out, overwrite=False)  # this process holds it already: a retry in the same process is fine
    assert (tmp_path / ".model.bortnas-lock").exists()
    release_out_dir(out)
    assert not (tmp_path / ".model.bortnas-lock").exists() and out not in out_dir._WRITING


def test_a_replaced_directory_is_swapped_whole(tmp_path: Path) -> None:
    out, staging = tmp_path / "model", tmp_path / ".model.new"
    out.mkdir()
    (out / "old.txt").write_text("old")
    staging.mkdir()
    (staging / "new.txt").write_text("new")
    writer._replace(staging, out)
    assert sorted(p.name for p in out.iterdir()) == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_too_little_free_space_is_refused_with_the_path_and_the_sizes(tiny_disk: Path) -> None:
    check_free_space(tiny_disk, 2**19, "writing x")
    with pytest.raises(UserInputError, match=rf"writing x needs about 2 MiB in {tiny_disk}, which has 1 MiB free"):
        check_free_space(tiny_disk, 2 * 2**20, "writing x")


@pytest.mark.parametrize("write", ["open", "torch.save", "safetensors"])
def test_what_each_writer_raises_on_a_full_disk_is_recognised(tiny_disk: Path, write: str) -> None:
    big = {"w": torch.zeros(2**20)}  # 4 MiB on a 1 MiB disk
    with pytest.raises(BaseException) as raised:
        if write == "open":
            (tiny_disk / "f").write_bytes(b"\0" * 2**22)
        elif write == "torch.save":
            torch.save(big, tiny_disk / "f.pt")
        else:
            save_file(big, str(tiny_disk / "f.safetensors"))
    assert is_disk_full(raised.value), repr(raised.value)
    assert not is_disk_full(RuntimeError("shape mismatch")) and not is_disk_full(OSError(2, "No such file"))

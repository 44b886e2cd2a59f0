"""Claiming an output directory: refuse one that holds files, and lock it against a second writer.

Imports no torch, so `export` and `finetune` check their `--out` before the heavy imports and the
work. Checked before any work; released when the finished directory is renamed into place.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

from bortnas.core.disk import HEADROOM_BYTES, check_free_space
from bortnas.core.errors import UserInputError

_WRITING: dict[Path, IO[str]] = {}  # the output directories this process holds the lock of, and the lock files


def prepare_out_dir(out: Path, overwrite: bool) -> None:
    """Refuse to write over a non-empty directory unless `overwrite`, and claim `out` for this process
    (checked before any work).

    The claim is an exclusive lock on `.NAME.bortnas-lock` beside `out`, held until `write_trained`
    has renamed the finished directory into place (or the process ends): a second process writing
    the same `out` at the same time is refused at once instead of mixing its files in.

    Raises:
        UserInputError: `out` is not empty, its parent does not exist or is full, or another process is writing it.
    """
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise UserInputError(f"--out {out} exists and is not empty: choose another directory or pass --overwrite.")
    if not out.parent.exists():
        raise UserInputError(f"--out {out}: parent directory {out.parent} does not exist.")
    check_free_space(out.parent, HEADROOM_BYTES, f"writing {out}")  # a full disk is refused before the training too
    if out in _WRITING:
        return
    path = _lock_path(out)
    for _ in range(3):  # the holder unlinks the file when it is done: lock the file that is at the path now
        handle = path.open("a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise UserInputError(
                f"--out {out} is being written by another bortnas process: wait for it to end or choose another directory."
            ) from None
        if path.exists() and os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino:
            _WRITING[out] = handle
            return
        handle.close()
    raise UserInputError(f"--out {out}: its lock file {path} keeps being replaced; is another process writing it?")


def release_out_dir(out: Path) -> None:
    """Give up the claim `prepare_out_dir` took on `out` (nothing if this process holds none)."""
    handle = _WRITING.pop(out, None)
    if handle is not None:
        _lock_path(out).unlink(missing_ok=True)
        handle.close()


def _lock_path(out: Path) -> Path:
    return out.parent / f".{out.name}.bortnas-lock"

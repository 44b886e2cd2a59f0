"""Running out of disk: refuse before writing where the size is known, and name the path when it happens anyway.

Core layer, standard library only. Exports and the teacher cache write hundreds of MiB; a full
disk should end in one line that says where and how much, never in a traceback from deep inside
torch or safetensors (which wrap ENOSPC in errors of their own) or in a half-written directory.
"""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

from bortnas.core.errors import UserInputError

_FULL_DISK_MESSAGES = ("No space left", "Disk quota exceeded", "file write failed", "unexpected pos")
HEADROOM_BYTES = 64 * 2**20  # beyond the weights: tokenizer, configs, and the filesystem's own slack


def check_free_space(directory: Path, needed: int, what: str) -> None:
    """Refuse, before writing, when the filesystem of `directory` has less than `needed` bytes free.

    Raises:
        UserInputError: naming the path, the space needed and the space free.
    """
    free = shutil.disk_usage(directory).free
    if free < needed:
        raise UserInputError(
            f"{what} needs about {_mib(needed)} MiB in {directory}, which has {_mib(free)} MiB free: "
            "free some space or choose another directory."
        )


def is_disk_full(error: BaseException) -> bool:
    """Whether `error` is the filesystem running out of space, also as torch's and safetensors' writers report it:
    a SafetensorError quoting the OS's "No space left on device", torch.save's RuntimeError about a short
    write ("file write failed", or "unexpected pos N vs M" when the archive's end could not be written)."""
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return isinstance(error, Exception) and any(s in str(error) for s in _FULL_DISK_MESSAGES)


def disk_full_error(directory: Path, needed: int, what: str) -> UserInputError:
    """The one-line error of a write that filled the disk of `directory` (what it wrote was removed)."""
    return UserInputError(
        f"the disk of {directory} filled up while {what} (about {_mib(needed)} MiB needed): "
        "free some space or choose another directory; nothing was left half-written."
    )


def _mib(n: int) -> str:
    return f"{n / 2**20:.0f}"

"""Atomic file writes: write to a temporary name in the target's folder, then rename.

A reader never sees a half-written file and an interrupted write leaves nothing behind.
The result gets the permissions a plain ``open(path, "w")`` would give (0666 minus the
umask), not the owner-only 0600 of :func:`tempfile.mkstemp`.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from sdflow.errors import SDFlowError

#: Below this much free space a failed write is blamed on the full disk (libraries such
#: as PyTorch's zip writer report ENOSPC as their own internal errors).
LOW_SPACE = 64 * 2**20


#: In the name of every temporary file write_atomic makes (``.NAME~sd.XXXXXXXX.EXT``): what
#: a crashed writer (kill -9) leaves can be told from the user's own files and removed.
TEMP_MARK = "~sd."


def remove_stale_temporaries(folder: Path, recursive: bool = True) -> int:
    """Delete the temporary files a killed writer left in ``folder`` (only names made by
    :func:`write_atomic`); call it only while no writer can be active there (the folder is
    claimed). Returns how many were removed."""
    if not folder.is_dir():
        return 0
    pattern = f".*{TEMP_MARK}*"
    found = folder.rglob(pattern) if recursive else folder.glob(pattern)
    removed = 0
    for path in found:
        if path.is_file() and not path.is_symlink():
            path.unlink(missing_ok=True)
            removed += 1
    return removed


class DiskFullError(SDFlowError):
    """A write failed because the disk is full."""


def _disk_full(folder: Path, exc: BaseException, written: int) -> DiskFullError | None:
    """A one-line DiskFullError when ``exc`` looks like a full disk at ``folder``."""
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return None
    full = isinstance(exc, OSError) and exc.errno == errno.ENOSPC
    if not (full or (isinstance(exc, (OSError, RuntimeError)) and free < LOW_SPACE)):
        return None
    return DiskFullError(f"{folder}: no space left on the disk ({free / 2**20:.0f} MiB "
                         f"free; the write had reached {written / 2**20:.0f} MiB); free "
                         "some space and run the command again")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic(path: str | os.PathLike, write: Callable[[str], object]) -> Path:
    """Call ``write(tmp_path)`` and rename the temporary file to ``path``; on any error the
    temporary file is removed and ``path`` is untouched. A failure on a full disk becomes
    one :class:`DiskFullError` line, whatever the writer called it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}{TEMP_MARK}", suffix=path.suffix,
                               dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            written = os.path.getsize(tmp)
        except OSError:
            written = 0
        Path(tmp).unlink(missing_ok=True)
        full = _disk_full(path.parent, exc, written)
        if full is not None:
            raise full from None
        raise
    return path

"""The output folder of a batch command: checked to be writable before any work, claimed
by one job at a time, and never written over one of the command's own inputs."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from sdflow.atomic import remove_stale_temporaries
from sdflow.errors import OutputIsInputError, SDFlowError


def check_output_dir(outdir: Path) -> str | None:
    """None if ``outdir`` can be created and written to, else a one-line error."""
    try:
        outdir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".sdflow-write-test.", dir=outdir)
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        return (f"{outdir}: cannot write to the output folder ({exc.strerror or exc}); "
                "choose another -o or fix its permissions")
    return None


class FolderBusyError(SDFlowError):
    """Another sdflow job is writing into the same output folder."""


@contextlib.contextmanager
def claim_output_folder(outdir: Path, name: str = ".sdflow.lock"):
    """Hold ``outdir/name`` locked while a job writes there, so a second job into the same
    folder is refused in one line instead of redoing the work and mixing its samples with
    the first one's. An OS lock (``flock``: released when the process ends, even by
    kill -9); the file is removed, still locked, when the job ends. Where the OS has no
    ``fcntl`` (Windows) folders are not guarded."""
    outdir.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    path = outdir / name
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise FolderBusyError(f"{outdir}: another sdflow job is writing into this "
                                  "folder; wait for it to finish (then rerun: finished "
                                  "images are skipped) or use another -o") from None
        try:
            ours = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            ours = False
        if ours:
            break
        os.close(fd)  # the previous holder removed it as we opened it: lock the new one
    try:
        os.write(fd, f"{os.getpid()}\n".encode())
        remove_stale_temporaries(outdir)  # a killed job's half-written files; we hold it now
        yield
    finally:
        try:
            os.unlink(path)  # while still locked: a waiting opener sees another inode
        finally:
            os.close(fd)


def file_identity(path: str | os.PathLike) -> tuple[int, int] | None:
    """``(device, inode)`` of an existing file, following symlinks (None if it does not
    exist): two names with the same identity are the same file, however they are spelled
    (relative, absolute, symlink, hard link, another case on a case-insensitive disk)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def refuse_outputs_over_inputs(outputs, inputs, fix: str) -> None:
    """Raise :class:`OutputIsInputError` (one line) if any existing path of ``outputs`` is
    the same file as one of ``inputs``; ``fix`` says what to change."""
    sources = {ident: path for path in inputs if (ident := file_identity(path)) is not None}
    if not sources:
        return
    for out in outputs:
        ident = file_identity(out)
        if ident is not None and ident in sources:
            raise OutputIsInputError(f"{out} is the input {sources[ident]} itself: writing it "
                                     f"would destroy the original; {fix}")

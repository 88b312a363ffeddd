"""The demo's temporary work directory: the stack's configs, data and logs.

The demo removes it when it ends, however it ends, as long as it can still run code. A demo killed outright
(SIGKILL, the OOM killer) cannot, so the directory carries a lock its owner holds while it lives: the kernel
releases it when the owner dies, and the next demo removes every directory whose lock it can take.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

WORKDIR_PREFIX = "agent-otel-demo-"
_LOCK_FILE = "owner.lock"


def _abandoned(path: Path) -> bool:
    """Ours (same user, a real directory with our lock file) and its owner is gone (its lock is free)."""
    try:
        if path.is_symlink() or not path.is_dir() or path.stat().st_uid != os.getuid():
            return False
        fd = os.open(path / _LOCK_FILE, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # held: its demo is running
        return False
    finally:
        os.close(fd)
    return True


def remove_abandoned(parent: Path) -> list[Path]:
    """Remove the workdirs that killed demos left in ``parent``; returns them."""
    removed = [path for path in sorted(parent.glob(WORKDIR_PREFIX + "*")) if _abandoned(path)]
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
    return removed


@contextmanager
def temporary_workdir() -> Iterator[Path]:
    """A new directory in the temporary directory (TMPDIR), removed on exit; abandoned ones go first."""
    remove_abandoned(Path(tempfile.gettempdir()))
    path = Path(tempfile.mkdtemp(prefix=WORKDIR_PREFIX))
    try:
        # Locked before it gets the name another demo looks for, so that it is never seen unlocked while we live.
        fd = os.open(path / f".{_LOCK_FILE}", os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # a file nobody else has opened: never blocks
            os.rename(path / f".{_LOCK_FILE}", path / _LOCK_FILE)
            yield path
        finally:
            os.close(fd)
    finally:
        shutil.rmtree(path, ignore_errors=True)

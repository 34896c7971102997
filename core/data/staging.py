"""Hidden folders that files are made in before they move into place, named after the process that
owns them (host and pid), so that what a killed process left behind can be told from work still in
progress and removed by the next process that writes there."""
from __future__ import annotations

import os
import re
import shutil
import socket
import tempfile
from pathlib import Path

__all__ = ["remove_stale", "staging_dir"]


def _owner() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-"


def staging_dir(parent: Path, prefix: str) -> Path:
    """A new empty folder ``<prefix><host>-<pid>-<random>`` in ``parent``."""
    return Path(tempfile.mkdtemp(prefix=prefix + _owner(), dir=parent))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_stale(parent: Path, prefix: str) -> None:
    """Delete the staging folders in ``parent`` whose owner, a process on this host, is gone.
    Folders of live processes, of other hosts (a shared file system) and of unknown owners stay."""
    owned = re.compile(re.escape(prefix + socket.gethostname()) + r"-(\d+)-[^-]*")
    for entry in Path(parent).iterdir():
        match = owned.fullmatch(entry.name)
        if match and entry.is_dir() and not _alive(int(match[1])):
            shutil.rmtree(entry, ignore_errors=True)

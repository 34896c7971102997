"""Hidden folders that files are made in before they move into place, named after the process that
owns them (host and pid), so that what a killed process left behind can be told from work still in
progress and removed by the next process that writes there."""
from __future__ import annotations

import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

__all__ = ["publish", "remove_stale", "staged", "staging_dir"]


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


@contextmanager
def staged(parent: Path, prefix: str) -> Iterator[Path]:
    """A new staging folder in ``parent`` (after removing what killed processes left there), removed
    with whatever is still in it when the block ends, completed or not."""
    remove_stale(parent, prefix)
    staging = staging_dir(parent, prefix)
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def publish(members: Sequence[Path], out_dir: Path) -> None:
    """Move finished files into ``out_dir`` in the order given: the member that completes the set
    (the train file's sidecar, which the loader opens first) goes last."""
    for member in members:
        os.replace(member, Path(out_dir) / member.name)

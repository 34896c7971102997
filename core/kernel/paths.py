"""Folders the user names (run, sweep, dataset and cache folders), made with one-line errors: a
folder that cannot be made is the user's to fix, never a traceback."""
from __future__ import annotations

from pathlib import Path

from pivf.core.kernel.errors import PivfUserError

__all__ = ["make_dir"]


def make_dir(path: Path, option: str) -> Path:
    """``path`` (``~`` expanded) as an existing folder; ``option`` names the setting in errors."""
    path = Path(path).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise PivfUserError(f"{option}: {path} exists and is not a folder") from None
    except OSError as exc:
        raise PivfUserError(f"{option}: cannot create the folder {path} ({exc.strerror})") from None
    except ValueError:  # a NUL character, which no file system allows in a name
        raise PivfUserError(f"{option}: {str(path)!r} holds a NUL character, which no folder name may") from None
    return path

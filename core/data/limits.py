"""How large a dataset may be, checked before any work: generation would otherwise run until the
disk is full (``n_train: 1e26``) and loading would ask the allocator for petabytes (an .npz header
claiming 10^12 sequences). Every dataset is held in memory whole when it is loaded, so the limit is
on its uncompressed bytes; a user with the memory for more raises it."""
from __future__ import annotations

import os

from pivf.core.kernel.errors import DataError

__all__ = ["MAX_BYTES_ENV", "check_dataset_bytes", "format_bytes"]

#: the environment variable that sets the limit, in bytes
MAX_BYTES_ENV = "PIVF_MAX_DATASET_BYTES"
#: the limit when the variable is not set
DEFAULT_MAX_BYTES = 8 * 2**30


def max_dataset_bytes() -> int:
    text = os.environ.get(MAX_BYTES_ENV, "").strip()
    if not text:
        return DEFAULT_MAX_BYTES
    try:
        value = int(float(text))
    except ValueError:
        raise DataError(f"{MAX_BYTES_ENV}: expected a number of bytes, got '{text}'") from None
    if value <= 0:
        raise DataError(f"{MAX_BYTES_ENV}: expected a positive number of bytes, got '{text}'")
    return value


def format_bytes(n: int) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n} bytes"


def check_dataset_bytes(n_bytes: int, what: str, shrink: str | None = None) -> None:
    """``what`` (a phrase naming the data) would take ``n_bytes`` uncompressed: refused over the
    limit, saying how to ``shrink`` it (None: it is a file, to be trusted or not)."""
    limit = max_dataset_bytes()
    if n_bytes > limit:
        remedy = f"{shrink}, or raise" if shrink else "if it is genuine, raise"
        raise DataError(f"{what} would take {format_bytes(n_bytes)} uncompressed, over the limit of "
                        f"{format_bytes(limit)}; {remedy} the limit with {MAX_BYTES_ENV}=<bytes>")

"""Progress reporting: a live bar with ETA on a terminal, plain periodic lines otherwise (CI logs)."""
from __future__ import annotations

import sys
import time
from collections.abc import Callable

__all__ = ["Progress"]


class Progress:
    def __init__(self, total_steps: int, log: Callable[[str], None], interactive: bool | None = None,
                 enabled: bool = True) -> None:
        self.total = max(total_steps, 1)
        self.log = log
        self.enabled = enabled
        self.interactive = sys.stderr.isatty() if interactive is None else interactive
        self.started = time.perf_counter()
        self.first_step: int | None = None

    def update(self, step: int, epoch: int, values: dict[str, float]) -> None:
        """Called at logging intervals only (values are already on the host)."""
        if not self.enabled:
            return
        if self.first_step is None:
            self.first_step = step
            self.started = time.perf_counter()
        elapsed = time.perf_counter() - self.started
        done = step - self.first_step
        eta = elapsed / done * (self.total - step) if done > 0 else float("nan")
        shown = "  ".join(f"{k} {v:.3f}" for k, v in values.items())
        line = f"step {step}/{self.total} epoch {epoch}  {shown}  eta {_clock(eta)}"
        if self.interactive:
            filled = int(30 * step / self.total)
            sys.stderr.write(f"\r[{'#' * filled}{'.' * (30 - filled)}] {line}\033[K")
            sys.stderr.flush()
        else:
            self.log(line)

    def message(self, text: str) -> None:
        if self.interactive and self.enabled:
            sys.stderr.write("\n")
        self.log(text)


def _clock(seconds: float) -> str:
    if seconds != seconds:  # NaN: nothing measured yet
        return "--:--"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"

"""What a training run records as it goes: its losses averaged between read-backs, and TensorBoard's
scalars, figures and hyper-parameter summary (written by rank 0 when ``logging.tensorboard`` is on).

The losses stay on the device until a read-back, so no step waits for the host.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch import Tensor

from pivf.core.kernel.config import ExperimentConfig

__all__ = ["RunningMeans", "TensorBoard"]

if TYPE_CHECKING:
    from torch.utils.tensorboard import SummaryWriter


class RunningMeans:
    """Each loss summed on the device since the last read-back, read back as its mean."""

    def __init__(self) -> None:
        self._sums: dict[str, Tensor] = {}
        self._count = 0

    def add(self, losses: dict[str, Tensor]) -> None:
        for key, value in losses.items():
            self._sums[key] = self._sums.get(key, 0.0) + value.detach()
        self._count += 1

    def read(self) -> dict[str, float]:
        """The means (a host sync), and a fresh start."""
        means = {key: float(value) / self._count for key, value in self._sums.items()}
        self.reset()
        return means

    def reset(self) -> None:
        self._sums, self._count = {}, 0


class TensorBoard:
    """A run's TensorBoard events, or nothing when they are off; a resumed run drops the points logged
    after its checkpoint, keeping those at its step."""

    def __init__(self, run_dir: Path, step: int, enabled: bool) -> None:
        self.writer: SummaryWriter | None = None
        if enabled:
            from torch.utils.tensorboard import SummaryWriter  # slow import, only when logging

            self.writer = SummaryWriter(log_dir=str(run_dir), purge_step=step + 1 if step else None)

    def scalars(self, prefix: str, values: dict[str, float], step: int) -> None:
        if self.writer is not None:
            for key, value in values.items():
                self.writer.add_scalar(f"{prefix}/{key}", value, step)

    def close_with_summary(self, config: ExperimentConfig, metrics: dict[str, Any], truth: dict[str, float],
                           step: int) -> None:
        """The true parameters beside the learned ones, and the run's hyper-parameters with its final metrics."""
        if self.writer is None:
            return
        self.scalars("param_true", truth, step)
        hparams = {"task": config.data.task, "physics": config.physics.name, "integrator": config.integrator.name,
                   "substeps": config.integrator.params.get("substeps", 0), "seed": config.training.seed,
                   "lr": config.training.lr}
        final = {f"hparam/{k}": v for k, v in metrics["eval"].items() if isinstance(v, float)}
        final.update({f"hparam/{k}_rel_error": v["rel_error"]
                      for k, v in metrics["params"].items() if "rel_error" in v})
        self.writer.add_hparams(hparams, final, run_name=".", global_step=step)
        self.writer.close()

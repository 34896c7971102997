"""What a run reports besides its losses: learned against true parameters, and the figures
(rollouts, energy along rollouts, decoder templates) written to the run directory and TensorBoard."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from pivf.core.data.dataset import ImportedRecord
from pivf.core.data.frames import as_float
from pivf.core.kernel.images import energy_figure, frame_grid, save_figure, save_png
from pivf.core.kernel.inference import inference
from pivf.core.kernel.objective import Objective
from pivf.core.kernel.physics import PhysicsSystem
from pivf.core.kernel.pipeline import Pipeline, PipelineOutput
from pivf.core.kernel.units import physical_report

__all__ = ["parameter_report", "physical_line", "recording_report", "save_figures"]


def parameter_report(pipeline: Pipeline, truth: dict[str, float]) -> dict[str, dict[str, float]]:
    report = {}
    for name, learned in pipeline.physics.learned_parameters().items():
        entry = {"learned": learned}
        if name in truth:
            entry["true"] = truth[name]
            if truth[name] != 0:  # a parameter that is truly zero (no damping) has no relative error
                entry["rel_error"] = abs(learned - truth[name]) / abs(truth[name])
        report[name] = entry
    return report


def recording_report(pipeline: Pipeline, info: ImportedRecord) -> dict[str, dict[str, float | str]] | None:
    """The learned constants in physical units for a dataset that records a scale or known quantities
    (a recording: its dt is in seconds); None for any other. The local g is the known ``gravity``."""
    if info.scale_m_per_px is None and not info.known:
        return None
    return physical_report(pipeline.physics, info.scale_m_per_px, info.known, info.known.get("gravity"))


def physical_line(report: dict[str, dict[str, float | str]]) -> str:
    """``length_from_timing 0.897 m (known 0.9: 0.3 %)``, one entry per quantity."""
    def entry(name: str, value: dict[str, float | str]) -> str:
        known = f" (known {value['known']:g}: {100 * float(value['rel_error']):.1f} %)" if "rel_error" in value else ""
        return f"{name} {float(value['value']):.4g} {value['unit']}{known}"

    return ", ".join(entry(name, value) for name, value in report.items()) or "none"


def predict_examples(pipeline: Pipeline, objective: Objective, data: Tensor, examples: int,
                     controls: Tensor | None = None) -> tuple[Tensor, PipelineOutput]:
    """Frames and the model's output for the first test sequences (under their recorded ``controls``),
    in inference mode (means, not samples)."""
    frames = as_float(data[:examples])
    with inference(pipeline):
        return frames, pipeline(frames[:, : objective.train_length], steps=frames.shape[1] - objective.input_steps,
                                **objective.batch_controls(controls, slice(examples)))


def rollout_rows(frames: Tensor, out: PipelineOutput, input_steps: int, examples: int = 3) -> list[Tensor]:
    """Per example: prediction (inputs prepended), truth, reconstruction — each (T, C, H, W)."""
    frames = frames[:examples]
    rows = []
    for i in range(frames.shape[0]):
        rows.append(torch.cat([frames[i, :input_steps], out.frames[i, 1:]]))
        rows.append(frames[i])
        if out.recons is not None:
            rows.append(out.recons[i])
    return rows


@torch.no_grad()
def rollout_energy(physics: PhysicsSystem, out: PipelineOutput) -> Tensor | None:
    """The physics' energy (T, B) along predicted rollouts, or None for systems without one."""
    try:
        return physics.energy(out.q, out.p)
    except NotImplementedError:
        return None


def save_figures(pipeline: Pipeline, objective: Objective, data: Tensor, run_dir: Path, writer=None,  # noqa: ANN001
                 step: int = 0, controls: Tensor | None = None) -> None:
    """rollouts.png, energy.png (where the physics has an energy) and, for decoders with templates,
    templates.png; the first two also go to TensorBoard when a writer is given."""
    frames, out = predict_examples(pipeline, objective, data, examples=16, controls=controls)
    grid = frame_grid(rollout_rows(frames, out, objective.input_steps))
    save_png(grid, run_dir / "rollouts.png")
    energy = rollout_energy(pipeline.physics, out)
    if energy is not None:
        save_figure(energy_figure(energy, pipeline.dt), run_dir / "energy.png")
    if writer is not None:
        writer.add_image("rollouts", grid.clamp(0, 1), step)
        if energy is not None:
            writer.add_figure("energy", energy_figure(energy, pipeline.dt), step)
    templates = getattr(pipeline.decoder, "templates", None)
    if templates is not None:
        masks, contents = templates()
        save_png(frame_grid([masks.expand_as(contents), contents]), run_dir / "templates.png", scale=4)

"""The core pipeline: encoder → integrator(physics) → decoder. The encoder infers the whole state at
the last input frame, positions and velocities (PAIG's velocity estimator is part of its encoder).

One code path serves PAIG (object coordinates, per-frame positions for a reconstruction loss) and
HGN (latent maps inferred directly). Frames are (B, T, C, H, W) floats in [0, 1].

Data recorded under controls drive actuated physics: ``pipeline(frames, steps, controls=controls)``
rolls out under ``controls`` (B, ≥ steps, m), the actions applied after the frame the rollout starts
at, one per frame interval; they are passed on as arguments (``Integrator.rollout`` →
``PhysicsSystem.under``), never set on the model. The trainer and ``Objective.evaluate`` hand each
batch's controls to the objective (``Objective.batch_controls``).
"""
from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass, replace

import torch
from torch import Tensor, nn

from pivf.core.kernel.integrator import Integrator
from pivf.core.kernel.model import Decoder, Encoder, EncoderOutput
from pivf.core.kernel.physics import PhysicsSystem

__all__ = ["Pipeline", "PipelineOutput"]


@dataclass
class PipelineOutput:
    """``frames[:, 0]`` decodes the inferred state at the last input frame; ``frames[:, k]`` is k frames later."""

    frames: Tensor  # (B, 1 + steps, C, H, W)
    q: Tensor  # (1 + steps, B, *state)
    p: Tensor
    encoded: EncoderOutput
    recons: Tensor | None  # decoder applied to the encoder's per-frame positions, (B, T_enc, C, H, W)


class Pipeline(nn.Module):
    def __init__(self, encoder: Encoder, physics: PhysicsSystem, integrator: Integrator, decoder: Decoder,
                 dt: float) -> None:
        super().__init__()
        self.encoder = encoder
        self.physics = physics
        self.decoder = decoder
        self.integrator = integrator
        self.dt = dt
        self.bf16 = False  # vision under bfloat16 autocast; positions stay float32 (``training.bf16``)

    def compile_vision(self, mode: str = "default") -> None:
        """``torch.compile`` the encoder and decoder in place, in ``mode`` (their weights and
        checkpoints are unchanged); the rollout stays eager, as a learned Hamiltonian's double
        backward needs."""
        self.encoder.compile(mode=mode)
        self.decoder.compile(mode=mode)

    def prepare(self, frames: Tensor) -> None:
        """Data-dependent initialisation before a new run's first step: the encoder's
        (``Encoder.prepare``), then the physics' from the positions the prepared encoder finds
        (``PhysicsSystem.prepare``)."""
        self.encoder.prepare(frames)
        if self.physics.state != "objects":
            return
        with torch.no_grad():
            positions = self.encode(frames, refine=False).positions
        if positions is not None:
            self.physics.prepare(positions.float())

    def frame_times(self, steps: int, dt: float | None = None) -> Tensor:
        """Times 0, dt, …, steps·dt; a negative ``dt`` runs backwards and a scaled one changes speed."""
        return torch.arange(steps + 1, dtype=torch.float64) * (self.dt if dt is None else dt)

    def vision_precision(self, device: torch.device) -> AbstractContextManager[None]:
        """bfloat16 autocast for the encoder and decoder when ``bf16`` is on; the physics never runs under it."""
        return torch.autocast(device.type, dtype=torch.bfloat16, enabled=self.bf16)

    def encode(self, frames: Tensor, refine: bool = True) -> EncoderOutput:
        """The encoder's output, in float32 whatever precision it ran in, its velocity refined through
        the physics where the encoder does that and ``refine`` asks for it (not for frames recorded
        under controls: those before the last input frame are not known here)."""
        with self.vision_precision(frames.device):
            encoded = self.encoder(frames)
        if self.bf16:
            encoded = replace(encoded, q0=encoded.q0.float(), p0=encoded.p0.float(),
                              positions=None if encoded.positions is None else encoded.positions.float(),
                              kl=None if encoded.kl is None else encoded.kl.float())
        return self.encoder.refine_velocity(encoded, self.backward) if refine else encoded

    def backward(self, q: Tensor, p: Tensor, frames: int) -> Tensor:
        """States q at the ``frames`` frames before (q, p), latest first: (frames, B, *state)."""
        return self.integrator.rollout(self.physics, q, p, self.frame_times(frames, -self.dt))[0][1:]

    def decode(self, q: Tensor) -> Tensor:
        """States (T, B, *state) → frames (B, T, C, H, W), decoded as one batch."""
        with self.vision_precision(q.device):
            frames = self.decoder(q.flatten(0, 1))
        return frames.float().unflatten(0, q.shape[:2]).transpose(0, 1)

    def rollout(self, q0: Tensor, p0: Tensor, steps: int, dt: float | None = None,
                controls: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """States (1 + steps, B, *state); ``controls`` (B, ≥ steps, m) act over the frame intervals."""
        held = None if controls is None else controls[:, :steps].transpose(0, 1)
        return self.integrator.rollout(self.physics, q0, p0, self.frame_times(steps, dt), held)

    def forward(self, frames: Tensor, steps: int, dt: float | None = None,
                controls: Tensor | None = None) -> PipelineOutput:
        """Encode ``frames``, roll the inferred state ``steps`` frames forward (under ``controls``
        (B, ≥ steps, m), see the module docs) and decode every state."""
        encoded = self.encode(frames, refine=controls is None)
        q, p = self.rollout(encoded.q0, encoded.p0, steps, dt, controls)
        recons = None
        if encoded.positions is not None:
            recons = self.decode(encoded.positions.transpose(0, 1))
        return PipelineOutput(frames=self.decode(q), q=q, p=p, encoded=encoded, recons=recons)

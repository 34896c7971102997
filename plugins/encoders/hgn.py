"""HGN's inference network: frames → z (variational or not) → the initial latent state (q, p).

The first ``input_steps`` frames are stacked on channels and go through 3×3 ReLU convs at full
resolution (an input conv, then ``hidden_layers`` wider ones). Two linear heads give the mean and
log-variance of z; z is sampled by the reparametrisation trick while training and is the mean in
eval mode. The "transformer" halves the resolution k times (stride-2 convs) down to the latent
side and splits its channels into q and p. Its last conv is linear: a ReLU there (as in one public
re-implementation) would force q0, p0 ≥ 0 and confine the dynamics to one orthant. With ``latent:
vector`` (HGN++) the transformer's last conv keeps its width and a ReLU, and a linear layer takes the
flattened maps to the two vectors q and p; an angle of q (``angles``) is the direction of a point
in the plane that layer places.

The state is inferred at the last input frame. ``variational`` must agree with ``objective.variational``
(the HGN objective checks this on every step); a deterministic encoder returns no KL and has no
prior to sample from. ``variational_at: state`` (vector latents) moves the sampled variable from z to
the state itself: the transformer gives the mean and log-variance of (q, p) (of the points in the
plane, for angles), so the prior N(0, I) is over the phase space and a sample from it is a state.
"""
from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field, model_validator
from torch import Tensor, nn

from pivf.api import Encoder, EncoderOutput, hookimpl
from pivf.plugins.latent_image import LatentImageParams

__all__ = ["HgnEncoder", "pivf_encoders"]


class HgnEncoderParams(LatentImageParams):
    input_steps: int = Field(5, ge=1, description="frames stacked on channels; the state is inferred at the last")
    variational: bool = Field(True, description="sample z ~ N(mean, var) and report its KL from N(0, I)")
    first_channels: int = Field(32, ge=1, description="width of the input conv")
    hidden_channels: int = Field(64, ge=1, description="width of the hidden convs")
    hidden_layers: int = Field(6, ge=0, description="hidden 3×3 convs after the input conv")
    z_channels: int = Field(48, ge=1, description="channels of z (at full image resolution)")
    transformer_channels: int = Field(64, ge=1, description="width of the transformer's inner convs")
    variational_at: Literal["z", "state"] = Field(
        "z", description="z: sample HGN's z at full image resolution; state: sample the vector state itself "
                         "(latent: vector), so the prior N(0, I) is over (q, p)")

    @model_validator(mode="after")
    def _state_sampling_needs_a_vector(self) -> HgnEncoderParams:
        if self.variational_at == "state" and self.latent != "vector":
            raise ValueError("variational_at: state samples the vector (q, p); it needs latent: vector")
        return self

    @property
    def state_width(self) -> int:
        """Numbers the transformer gives per state: q and p, plus a second coordinate per angle."""
        return 2 * self.latent_channels + self.angles

    @property
    def samples_state(self) -> bool:
        return self.variational and self.variational_at == "state"


def _transformer(p: HgnEncoderParams) -> nn.Sequential:
    """z → the joined latent state: ``doublings`` stride-2 3×3 convs with ReLU between them; maps end
    in a linear conv to 2·latent_channels, vectors in a ReLU and a linear layer over the flattened maps."""
    width, vector = p.transformer_channels, p.latent == "vector"
    layers: list[nn.Module] = []
    fan_in = p.z_channels
    for i in range(p.doublings):
        last = i == p.doublings - 1
        layers.append(nn.Conv2d(fan_in, 2 * p.latent_channels if last and not vector else width, 3,
                                stride=2, padding=1))
        if not last or vector:
            layers.append(nn.ReLU())
        fan_in = width
    if vector:  # an angle takes two outputs: a point in the plane, whose direction it is
        outputs = p.state_width * (2 if p.samples_state else 1)  # a mean and a log-variance per entry
        layers += [nn.Flatten(), nn.Linear(width * p.latent_size**2, outputs)]
    return nn.Sequential(*layers)


class HgnEncoder(Encoder[HgnEncoderParams]):
    name = "hgn"
    description = "HGN: conv encoder over stacked input frames (variational z) + transformer to latent (q, p)"
    states = ("latent",)

    def __init__(self, params: HgnEncoderParams | None = None) -> None:
        super().__init__(params)
        p = self.params
        layers: list[nn.Module] = []
        fan_in = p.channels * p.input_steps
        for width in [p.first_channels] + [p.hidden_channels] * p.hidden_layers:
            layers += [nn.Conv2d(fan_in, width, 3, padding=1), nn.ReLU()]
            fan_in = width
        self.features = nn.Sequential(*layers)
        self.mean = nn.Conv2d(fan_in, p.z_channels, 3, padding=1)
        self.log_var = nn.Conv2d(fan_in, p.z_channels, 3, padding=1) if p.variational and not p.samples_state else None
        self.transformer = _transformer(p)

    def prior_shape(self) -> tuple[int, ...] | None:
        p = self.params
        if not p.variational:
            return None
        return (p.state_width,) if p.samples_state else (p.z_channels, p.image_size, p.image_size)

    def transform(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """A value of the sampled variable (z, or the state itself) → (q, p)."""
        return self._split(z if self.params.samples_state else self.transformer(z))

    def _split(self, state: Tensor) -> tuple[Tensor, Tensor]:
        """The transformer's output → (q, p), each angle the direction of its point."""
        angles = self.params.angles
        if not angles:
            q, p = state.chunk(2, dim=1)
            return q, p
        cosines, sines, rest = state.split([angles, angles, state.shape[1] - 2 * angles], dim=1)
        q, p = rest.split([self.params.latent_channels - angles, self.params.latent_channels], dim=1)
        return torch.cat((torch.atan2(sines, cosines), q), dim=1), p

    def forward(self, frames: Tensor) -> EncoderOutput:
        p = self.params
        h = self.features(frames[:, : p.input_steps].flatten(1, 2))
        mean = self.mean(h)
        if not p.variational:
            return EncoderOutput(*self.transform(mean))
        if self.log_var is None:  # the state is what is sampled
            mean, log_var = self.transformer(mean).chunk(2, dim=1)
        else:
            log_var = self.log_var(h)
        z = mean + torch.randn_like(mean) * (0.5 * log_var).exp() if self.training else mean
        kl = 0.5 * (mean.pow(2) + log_var.exp() - 1 - log_var).flatten(1).sum(1)  # per sample, summed over z
        return EncoderOutput(*self.transform(z), kl=kl)


@hookimpl
def pivf_encoders() -> list[type]:
    return [HgnEncoder]

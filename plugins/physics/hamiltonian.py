"""Learned Hamiltonians (HGN): a network gives the energy H(q, p); the motion follows from its gradients.

dq/dt = ∂H/∂p and dp/dt = −∂H/∂q come from autograd with ``create_graph`` while training (the base
class does this), so the loss on a rollout reaches the network's weights through second derivatives.
That is why the activations are smooth: with ReLU the second derivatives vanish and H never trains.

``separable`` (default) splits H = K(p) + V(q) into two networks. Leapfrog and Yoshida are explicit
*and* symplectic only for separable H; for a general H(q, p) they lose symplecticity and the energy
drifts. The output layers have no bias: a constant in H moves no derivative, so it could never learn.

Two plugins share this: ``hamiltonian`` (an MLP over object coordinates (B, N, D)) and
``hamiltonian_latent`` (a conv net over latent maps (B, C, H, W), summed over space as HGN does, or
with ``latent: vector`` an MLP over latent vectors (B, C), as HGN++ does).
"""
from __future__ import annotations

from typing import ClassVar, Literal, TypeVar

import torch
from pydantic import Field, model_validator
from torch import Tensor, nn

from pivf.api import ObjectParams, PhysicsSystem, PluginParams, StateKind, energy_gradient, floored_length, hookimpl
from pivf.plugins.latent_image import check_angles, circle_features

__all__ = ["ACTIVATIONS", "Hamiltonian", "LatentHamiltonian", "MLPEnergy", "PairPotential", "pivf_physics"]

ACTIVATIONS: dict[str, type[nn.Module]] = {"softplus": nn.Softplus, "tanh": nn.Tanh, "swish": nn.SiLU}


class LearnedHamiltonianParams(PluginParams):
    activation: Literal["softplus", "tanh", "swish"] = Field("softplus", description="smooth nonlinearity")
    separable: bool = Field(True, description="H = K(p) + V(q) with two networks (needed by leapfrog/yoshida)")
    kinetic: Literal["net", "quadratic"] = Field("net", description="K(p): a network, or fixed ½|p|² (needs separable)")

    @model_validator(mode="after")
    def _quadratic_kinetic_is_separable(self) -> LearnedHamiltonianParams:
        if self.kinetic == "quadratic" and not self.separable:
            raise ValueError("kinetic: quadratic splits H = ½|p|² + V(q); it needs separable: true")
        return self


LHP = TypeVar("LHP", bound=LearnedHamiltonianParams)


class LearnedHamiltonian(PhysicsSystem[LHP]):
    """H(q, p) from networks; subclasses say how one network turns a state into per-sample energies."""

    #: dimension along which q and p are joined for a non-separable network
    join_dim: int = -1

    def __init__(self, params: LHP | None = None) -> None:
        super().__init__(params)
        if self.params.separable:
            quadratic = self.params.kinetic == "quadratic"
            self.kinetic = _QuadraticEnergy(len(self.state_shape())) if quadratic else self._energy_net("p")
            self.potential = self._energy_net("q")
        else:
            self.joint = self._energy_net("qp")

    def _energy_net(self, reads: Literal["q", "p", "qp"]) -> nn.Module:
        """A network from q, p or both joined (q first) to energies of shape (...,)."""
        raise NotImplementedError

    def hamiltonian(self, q: Tensor, p: Tensor) -> Tensor:
        if self.params.separable:
            return self.kinetic(p) + self.potential(q)
        return self.joint(torch.cat((q, p), dim=self.join_dim))

    @property
    def separable(self) -> bool:
        return self.params.separable

    def physical_constants(self) -> list[nn.Parameter]:
        return []  # network weights only

    # A separable H's partial derivatives each need one of its two networks, not both.
    def dq_dt(self, q: Tensor, p: Tensor) -> Tensor:
        if self.params.kinetic == "quadratic":
            return p
        return energy_gradient(self.kinetic, p) if self.params.separable else super().dq_dt(q, p)

    def dp_dt(self, q: Tensor, p: Tensor) -> Tensor:
        return -energy_gradient(self.potential, q) if self.params.separable else super().dp_dt(q, p)


class _QuadraticEnergy(nn.Module):
    """(..., *state) → (...,): ½|x|² over the last ``state_dims`` dimensions."""

    def __init__(self, state_dims: int) -> None:
        super().__init__()
        self.state_dims = state_dims

    def forward(self, x: Tensor) -> Tensor:
        return 0.5 * x.pow(2).flatten(-self.state_dims).sum(-1)


# --- over object coordinates -------------------------------------------------------------------

class HamiltonianParams(ObjectParams, LearnedHamiltonianParams):
    hidden: list[int] = Field([128, 128], min_length=1, description="hidden layer widths of each MLP")
    potential: Literal["mlp", "pairwise"] = Field(
        "mlp", description="mlp: V(q) over every coordinate; pairwise: V = Σ_{i<j} φ(|q_i − q_j|), one learned "
                           "φ of a distance (needs separable)")

    @model_validator(mode="after")
    def _pairwise_is_separable(self) -> HamiltonianParams:
        if self.potential == "pairwise" and not self.separable:
            raise ValueError("potential: pairwise is V(q) alone, H = K(p) + V(q); it needs separable: true")
        return self


class MLPEnergy(nn.Module):
    """(..., *state) → (...,): an MLP over the flattened last ``state_dims`` dimensions, its first
    ``angles`` entries read as their cosines and sines (``circle_features``)."""

    def __init__(self, in_features: int, hidden: list[int], activation: type[nn.Module], state_dims: int,
                 angles: int = 0) -> None:
        super().__init__()
        self.state_dims = state_dims
        self.angles = angles
        layers: list[nn.Module] = []
        for width in hidden:
            layers += [nn.Linear(in_features, width), activation()]
            in_features = width
        layers.append(nn.Linear(in_features, 1, bias=False))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(circle_features(x.flatten(-self.state_dims), self.angles)).squeeze(-1)


class PairPotential(nn.Module):
    """(..., N, D) → (...,): Σ_{i<j} φ(|q_i − q_j|) with φ one MLP of a distance.

    Objects that push and pull each other along the line between them (springs, gravity, charges)
    have such a potential: it cannot depend on where the pair is or how it is turned, so the network
    learns a function of one number instead of finding that invariance among 2·N·D inputs.
    """

    first: Tensor  # the pairs (i, j), i < j, as two index buffers
    second: Tensor

    def __init__(self, n_objects: int, hidden: list[int], activation: type[nn.Module]) -> None:
        super().__init__()
        self.phi = MLPEnergy(1, hidden, activation, state_dims=1)
        first, second = torch.triu_indices(n_objects, n_objects, offset=1)
        self.register_buffer("first", first, persistent=False)
        self.register_buffer("second", second, persistent=False)

    def forward(self, q: Tensor) -> Tensor:
        offsets = q[..., self.first, :] - q[..., self.second, :]  # (..., pairs, D)
        return self.phi(floored_length(offsets)).sum(-1)


class Hamiltonian(LearnedHamiltonian[HamiltonianParams]):
    name = "hamiltonian"
    description = "learned Hamiltonian (MLP) over object coordinates; smooth activations, separable option"

    def _energy_net(self, reads: Literal["q", "p", "qp"]) -> nn.Module:
        p = self.params
        activation = ACTIVATIONS[p.activation]
        if reads == "q" and p.potential == "pairwise":
            return PairPotential(p.n_objects, p.hidden, activation)
        return MLPEnergy(p.n_objects * p.dim * len(reads), p.hidden, activation, state_dims=2)


# --- over latent maps --------------------------------------------------------------------------

class LatentHamiltonianParams(LearnedHamiltonianParams):
    #: one latent state for the encoder, the Hamiltonian and the decoder (core/kernel/config.py checks it)
    shared_fields: ClassVar[tuple[str, ...]] = ("latent_channels", "latent_size", "latent", "angles")
    latent_channels: int = Field(16, ge=1, description="channels of q (and of p); their length when latent is vector")
    latent_size: int = Field(4, ge=2, description="spatial side of the latent maps (for samplers; the net takes any ≥ "
                                                  "2)")
    latent: Literal["maps", "vector"] = Field("maps", description="maps: a conv net over (C, H, W) maps (HGN); "
                                                                  "vector: an MLP over (C,) vectors (HGN++)")
    conv_channels: list[int] = Field([32, 64, 64, 64], min_length=2,
                                     description="maps: widths of 3×3 conv, 2×2 stride-2 conv, then padded 2×2 convs")
    hidden: list[int] = Field([250] * 5, min_length=1, description="vector: hidden layer widths of each MLP")
    angles: int = Field(0, ge=0, description="vector: how many leading entries of q are angles (V reads their "
                                             "cosine and sine, so it is periodic there)")

    @model_validator(mode="after")
    def _angles_in_a_vector(self) -> LatentHamiltonianParams:
        check_angles(self.angles, self.latent, self.latent_channels)
        return self


class _ConvEnergy(nn.Module):
    """(..., C, H, W) → (...,): HGN's energy conv net, summed over space.

    HGN's layers are conv k3 s1 p1 → conv k2 s2 → 2×[pad (0,1,0,1), conv k2 s1] → conv k2 (1×1 map
    for 4×4 input). Here the last conv is padded like the middle ones, so any side ≥ 2 works; its
    one-channel map is summed over space, which is how HGN turns the map into a scalar energy.
    """

    def __init__(self, in_channels: int, widths: list[int], activation: type[nn.Module]) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, widths[0], 3, padding=1), activation(),
                                   nn.Conv2d(widths[0], widths[1], 2, stride=2), activation()]
        for before, width in zip(widths[1:-1], widths[2:], strict=True):
            layers += [nn.ZeroPad2d((0, 1, 0, 1)), nn.Conv2d(before, width, 2), activation()]
        layers += [nn.ZeroPad2d((0, 1, 0, 1)), nn.Conv2d(widths[-1], 1, 2, bias=False)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        leading = x.shape[:-3]
        energy_map = self.net(x.reshape(-1, *x.shape[-3:]))
        return energy_map.sum((-3, -2, -1)).reshape(leading)


class LatentHamiltonian(LearnedHamiltonian[LatentHamiltonianParams]):
    name = "hamiltonian_latent"
    description = "learned Hamiltonian (conv net, HGN) over latent maps q, p of shape (C, H, W)"
    state: ClassVar[StateKind] = "latent"

    def __init__(self, params: LatentHamiltonianParams | None = None) -> None:
        super().__init__(params)
        self.join_dim = -1 if self.params.latent == "vector" else -3

    def _energy_net(self, reads: Literal["q", "p", "qp"]) -> nn.Module:
        p = self.params
        channels = p.latent_channels * len(reads)
        activation = ACTIVATIONS[p.activation]
        if p.latent == "vector":  # q leads the joined state, so its angles lead it too
            angles = p.angles if reads.startswith("q") else 0
            return MLPEnergy(channels + angles, p.hidden, activation, state_dims=1, angles=angles)
        return _ConvEnergy(channels, p.conv_channels, activation)

    def state_shape(self) -> tuple[int, ...]:
        if self.params.latent == "vector":
            return (self.params.latent_channels,)
        return (self.params.latent_channels, self.params.latent_size, self.params.latent_size)


@hookimpl
def pivf_physics() -> list[type]:
    return [Hamiltonian, LatentHamiltonian]

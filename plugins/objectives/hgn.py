"""The HGN objective (Toth et al. 2020) and its evaluation metrics.

HGN runs through the same pipeline as PAIG: the ``hgn`` encoder infers a latent state ``(q, p)`` at
the last input frame, a learned Hamiltonian (``hamiltonian_latent``) moves it, and the ``hgn_conv``
decoder renders each ``q``. Only what is compared, and how it is scored, differs.

Which frames are compared (I = ``input_steps``, P = ``pred_steps``, the window is frames 0..I+P−1):

- ``predict``: the encoder sees frames 0..I−1; the decoded inferred state and its P successors are
  compared with frames I−1..I+P−1 (the HGN paper's "5 frames in, predict the rest" protocol).
- ``reconstruct``: the same encoding, and the inferred state is also run *backwards* I−1 steps, so
  the whole window is reconstructed, every frame the encoder saw included. With a long input
  (e.g. ``input_steps=30, pred_steps=1``) this is the autoencoding setup of the HGN paper.

``backward_share`` (predict mode, DeepMind's forward-backward training): that share of each training
batch runs the other way: the encoder sees the window's last I frames, and the state it infers at
the last frame is rolled back P steps with −dt and compared with frames I−1..I+P−1 in reverse. A
time-reversible model is then trained on the reversal that ``vpt_backward`` tests.

Loss: per-pixel MSE (mean over frames, channels and pixels) plus a KL term. The encoder reports each
sample's KL from N(0, I) summed over its latent z; here it is averaged over the batch and divided by
the number of compared pixels per sequence (frames·C·H·W), so β does not depend on image or
sequence size. Then either ``loss = MSE + β·KL`` (β = ``objective.kl_weight``) or GECO (``objective.geco``):

    C = MSE − tol²,  C_ma ← α·C_ma + (1−α)·C (detached; C_ma starts at the first C),
    loss = KL + λ·Ĉ  where Ĉ has C_ma's value and C's gradient,
    λ ← clamp(λ·exp(rate·C_ma), 1e-10, 1e10)  after each training step.

λ and C_ma live on the objective as device tensors (no host sync per step); ``state_dict`` and
``load_state_dict`` carry them through checkpoints. A deterministic encoder has no KL: loss = MSE.

Recipes (``--recipe``), config layers over the task preset (``recipes/hgn-*.yaml``): ``paper`` (the
default) is HGN's model, 16 channels of 4×4 latent maps and the widths of the paper; ``fast`` is an
HGN++-style model that learns on a CPU in minutes: q and p are vectors of the system's degrees of
freedom (the task preset says how many, and which of them are angles), K(p) = ½|p|², V(q) a small
MLP, narrower convolutions, 5 + 10 frame windows, deterministic (no prior to sample from), Adam at
1e-3, 6,250 steps (the 50 epochs of its generated 2,000 sequences, whatever the dataset's size)
(docs/RESULTS.md).

Metrics (``evaluate``) use the papers' units: ``mse`` is the pixel MSE ×1e4 over the training
window (``extrap_mse`` past it, on longer sequences); ``vpt`` is the median over sequences of the
valid prediction time, the number of leading predicted frames whose error
mean((gt−pred)²)/mean(gt²) stays ≤ 0.025, and ``vpt_rel`` that as a fraction of the predicted
frames; ``vpt_backward`` is the same for time run backwards: the encoder sees the *last*
``input_steps`` frames (in their order), and the state it infers at the last frame is integrated
with −dt back to the first frame, so the encoder and the dynamics are tested on a reversal they
were not trained on unless ``backward_share`` is set (unactuated data only); ``vpt_still`` is the
VPT of the last input frame held still, the floor a model's VPT must clear; ``h_std`` is the std
of the energy along each forward rollout, averaged over sequences, and ``h_rel_std`` the same
divided by |mean energy|. ``loss`` (what model selection minimises) is ``mse``.
"""
from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import Tensor

from pivf.api import (
    ConfigError,
    EncoderOutput,
    Objective,
    ObjectiveParams,
    Pipeline,
    PipelineOutput,
    as_float,
    hookimpl,
    inference,
    prediction_time,
    read_recipes,
    still_time,
    valid_prediction_time,
)
from pivf.plugins.objectives import RECIPES

__all__ = ["HgnObjective", "MSE_SCALE", "pivf_objectives"]

#: the papers report pixel MSE in units of 1e-4
MSE_SCALE = 1e4
LAMBDA_MIN, LAMBDA_MAX = 1e-10, 1e10


class HgnParams(ObjectiveParams):
    mode: Literal["predict", "reconstruct"] = Field(
        "predict", description="predict: infer from the first input_steps frames and predict the rest; "
                               "reconstruct: reconstruct the given sequence (autoencoding)")
    variational: bool = Field(True, description="a variational encoder and a KL term (sets encoder.variational)")
    kl_weight: float = Field(1e-2, ge=0, description="fixed β of the KL term (when geco is off)")
    geco: bool = Field(False, description="GECO: a reconstruction constraint with a learned Lagrange multiplier "
                                          "instead of the fixed β (needs variational)")
    geco_tolerance: float = Field(0.033, gt=0, description="GECO: per-pixel RMS error the constraint aims at")
    geco_alpha: float = Field(0.99, ge=0, lt=1, description="GECO: moving-average factor of the constraint")
    geco_rate: float = Field(0.1, gt=0, description="GECO: speed of the Lagrange multiplier update")
    backward_share: float = Field(0.0, ge=0, lt=1, description="share of each training batch inferred at the window's "
                                                                "last frame and rolled back in time (predict mode)")

    @model_validator(mode="after")
    def _geco_needs_a_kl_term(self) -> HgnParams:
        if self.geco and not self.variational:
            raise ValueError("geco trades the KL term against the reconstruction; it needs variational: true")
        if self.backward_share and self.mode != "predict":
            raise ValueError("backward_share rolls windows back from their last frame; it needs mode: predict")
        return self


class HgnObjective(Objective[HgnParams]):
    """HGN's loss and metrics (see the module docs); holds GECO's λ from step to step."""

    name = "hgn"
    description = "HGN: pixel MSE of the decoded latent rollout + KL (fixed β or GECO); VPT and energy metrics"
    states = ("latent",)
    headline = ("mse", "vpt", "vpt_backward", "h_rel_std")
    recipes = read_recipes(RECIPES, "hgn", ("paper", "fast"))

    def __init__(self, params: HgnParams | dict[str, Any] | None = None) -> None:
        super().__init__(params)
        self.settings: HgnParams = self.params
        self.geco_lambda = torch.ones(())
        self.constraint_ma: Tensor | None = None

    @classmethod
    def implied_params(cls, params: Any) -> dict[str, Any]:
        """The encoder is variational exactly when the objective has a KL term."""
        return {"variational": params.variational}

    @classmethod
    def legacy_params(cls, config: dict[str, Any], chosen: bool) -> dict[str, Any] | None:
        """The old ``hgn:`` section; an HGN run's ``training.recipe`` goes too (recipes were PAIG's
        alone then, and HGN runs ignored them)."""
        if chosen:
            config["training"].pop("recipe", None)
        return (config.pop("hgn") or {}) if "hgn" in config else None

    @property
    def first_frame(self) -> int:
        """The frame the first decoded state is compared with."""
        return 0 if self.settings.mode == "reconstruct" else self.input_steps - 1

    def decode_window(self, pipeline: Pipeline, frames: Tensor, steps: int,
                      controls: Tensor | None = None) -> tuple[Tensor, PipelineOutput]:
        """Decoded frames aligned with ``frames[:, first_frame:]``, and the forward pipeline output
        (its rollout under ``controls``, when the video was recorded under them)."""
        out = pipeline(frames, steps=steps, controls=controls)
        backward = self.input_steps - 1 - self.first_frame
        if backward == 0:
            return out.frames, out
        q, _ = pipeline.rollout(out.encoded.q0, out.encoded.p0, backward, dt=-pipeline.dt)
        return torch.cat([pipeline.decode(q[1:].flip(0)), out.frames], dim=1), out

    def losses(self, pipeline: Pipeline, frames: Tensor, controls: Tensor | None = None) -> dict[str, Tensor]:
        window = frames[:, : self.train_length]
        backward = self._backward_rows(pipeline, window.shape[0], controls)
        decoded, out = self.decode_window(pipeline, window[backward:], self.pred_steps, controls)
        target = window[backward:, self.first_frame:]
        kl = self._kl(out.encoded)
        if backward:  # these rows run back in time from the window's last frame (see the module docs)
            reverse = pipeline(window[:backward, -self.input_steps:], steps=self.pred_steps, dt=-pipeline.dt)
            decoded = torch.cat([reverse.frames, decoded])
            target = torch.cat([window[:backward, self.first_frame:].flip(1), target])
            reverse_kl = self._kl(reverse.encoded)
            kl = None if kl is None or reverse_kl is None else torch.cat([reverse_kl, kl])
        mse = F.mse_loss(decoded, target)
        losses = {"mse": mse.detach() * MSE_SCALE}
        if kl is None:
            losses["loss"] = mse
            return losses
        losses["kl"] = kl.detach().mean()
        kl_term = kl.mean() / target[0].numel()
        if not self.settings.geco:
            losses["loss"] = mse + self.settings.kl_weight * kl_term
            return losses
        weighted, lam, ma = self._geco(mse, update=pipeline.training)
        losses.update(loss=kl_term + weighted, geco_lambda=lam, geco_constraint=ma)
        return losses

    def _backward_rows(self, pipeline: Pipeline, batch: int, controls: Tensor | None) -> int:
        """How many rows of a training batch run backwards: ``backward_share`` of it, none when
        evaluating or when controls drive the rollout (their inputs only run forwards)."""
        if not pipeline.training or controls is not None:
            return 0
        return round(self.settings.backward_share * batch)

    def _kl(self, encoded: EncoderOutput) -> Tensor | None:
        variational = self.settings.variational
        if (encoded.kl is not None) != variational:
            raise ConfigError(f"objective.variational is {str(variational).lower()} but the encoder is "
                              f"{'variational' if encoded.kl is not None else 'deterministic'}; "
                              f"set objective.variational to match it")
        return encoded.kl

    def _geco(self, mse: Tensor, update: bool) -> tuple[Tensor, Tensor, Tensor]:
        """λ·Ĉ (Ĉ: C_ma's value, C's gradient), the λ used and C_ma; moves λ and C_ma when ``update``."""
        s = self.settings
        constraint = mse - s.geco_tolerance**2
        observed = constraint.detach()
        ma = observed if self.constraint_ma is None else \
            s.geco_alpha * self.constraint_ma.to(observed.device) + (1 - s.geco_alpha) * observed
        lam = self.geco_lambda.to(mse.device)
        weighted = lam * (constraint + (ma - observed))
        if update:
            self.constraint_ma = ma
            self.geco_lambda = (lam * torch.exp(s.geco_rate * ma)).clamp(LAMBDA_MIN, LAMBDA_MAX)
        return weighted, lam, ma

    def state_dict(self) -> dict[str, Any]:
        """GECO's multiplier and moving average, for checkpoints (they must survive a resume)."""
        return {"geco_lambda": self.geco_lambda.detach().cpu(),
                "constraint_ma": None if self.constraint_ma is None else self.constraint_ma.detach().cpu()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.geco_lambda = state["geco_lambda"]
        self.constraint_ma = state["constraint_ma"]

    def report(self, metrics: dict[str, float]) -> dict[str, float]:
        """HGN's metrics keep their own names (``mse``, ``vpt``, ``h_std``, ...)."""
        return {key: value for key, value in metrics.items() if key != "loss"}

    def evaluate(self, pipeline: Pipeline, data: Tensor, batch_size: int,
                 controls: Tensor | None = None) -> dict[str, float]:
        """Metrics over a split (uint8 (N, T, H, W, C), T ≥ ``train_length``), see the module docs."""
        parts = []
        with inference(pipeline):
            for start in range(0, data.shape[0], batch_size):
                rows = slice(start, start + batch_size)
                given = self.batch_controls(controls, rows)
                parts.append(self.sequence_metrics(pipeline, as_float(data[rows]), **given))
        per_sequence = {key: torch.cat([part[key] for part in parts]) for key in parts[0]}
        predicted = data.shape[1] - self.input_steps
        medians = {key: per_sequence.pop(key).double().quantile(0.5) for key in ("vpt", "vpt_backward", "vpt_still")
                   if key in per_sequence}
        metrics = {key: value.double().mean() for key, value in per_sequence.items()}
        metrics.update(loss=metrics["mse"], vpt_rel=medians["vpt"] / predicted, **medians)
        return {key: float(value) for key, value in metrics.items()}

    def sequence_metrics(self, pipeline: Pipeline, frames: Tensor, controls: Tensor | None = None) -> dict[str, Tensor]:
        """Per-sequence metrics of one batch (recorded under ``controls``, when given), each of shape (B,)."""
        decoded, out = self.decode_window(pipeline, frames, frames.shape[1] - self.input_steps, controls)
        error = (decoded - frames[:, self.first_frame:]).pow(2).flatten(2).mean(-1)  # (B, frames)
        window = self.train_length - self.first_frame
        metrics = {"mse": error[:, :window].mean(1) * MSE_SCALE}
        if error.shape[1] > window:
            metrics["extrap_mse"] = error[:, window:].mean(1) * MSE_SCALE
        ahead = self.input_steps - self.first_frame  # first decoded frame past the last input frame
        metrics["vpt"] = valid_prediction_time(decoded[:, ahead:], frames[:, self.input_steps:])
        metrics["vpt_still"] = still_time(frames, self.input_steps)
        if controls is None:
            metrics["vpt_backward"] = prediction_time(pipeline, frames, self.input_steps, backward=True)
        energy = pipeline.physics.energy(out.q, out.p)  # (1 + steps, B)
        metrics["h_std"] = energy.std(0, correction=0)
        metrics["h_rel_std"] = metrics["h_std"] / energy.mean(0).abs().clamp_min(1e-12)
        if out.encoded.kl is not None:
            metrics["kl"] = out.encoded.kl
        return metrics


@hookimpl
def pivf_objectives() -> list[type]:
    return [HgnObjective]

"""SyMetric (Higgins et al., NeurIPS 2021): is a learned phase space the true one, up to a
symplectic change of coordinates?

Given true states z = (q, p) (N, 2n) and the model's latent states l = (q', p') (N, 2m) at the same
instants, fit a polynomial Lasso map from the standardised z to the informative latents (degree ≤ 5,
α from logspace(−4, −0.5, 10) by 2-fold cross-validation, as DeepMind's evaluation), then ask two
things:

- **accuracy**: R² of that map on the states it was not fitted on (every second trajectory is held
  out), averaged over the informative latents; DeepMind's bar is R² > 0.9.
- **symplecticity**: at evaluation points, the map's Jacobian J (2m' × 2n, in the true units)
  should pull the latent symplectic form back onto the true one, JᵀΩJ = c·Ω. A learned Hamiltonian
  absorbs a constant factor c (H' = c·H gives the same trajectories), so c is fitted once over all
  points; the error is Σ‖JᵀΩJ − cΩ‖² / Σ‖JᵀΩJ‖² (0 for a canonical map up to scale, capped at 1000
  where ‖JᵀΩJ‖ vanishes). DeepMind's bar is 0.05. Their exact normalisation was not available;
  this is pivf's reading, stated here so that numbers can be compared with care.

Latent pairs (q'_i, p'_i) count as informative when either coordinate's standard deviation over the
data exceeds ``INFORMATIVE`` × the largest one; the others are masked before fitting, in pairs, so
the latent form Ω keeps its canonical shape.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.linear_model import LassoCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import PolynomialFeatures

from pivf.core.data.frames import as_float
from pivf.core.data.task import Task
from pivf.core.kernel.inference import inference
from pivf.core.kernel.pipeline import Pipeline

__all__ = ["informative_pairs", "pipeline_symetric", "symetric_score"]

DEGREE = 5
ALPHAS = np.logspace(-4, -0.5, 10)
INFORMATIVE = 0.01
R2_BAR = 0.9
SYMPLECTIC_BAR = 0.05
ERROR_CAP = 1000.0


@dataclass(frozen=True)
class SymetricScore:
    r2: float  # held-out R² of the polynomial map, mean over informative latents
    symplecticity: float  # relative error of JᵀΩJ against its best multiple of Ω
    scale: float  # that multiple, c
    informative_pairs: int  # latent (q', p') pairs kept

    @property
    def passed(self) -> bool:
        return self.r2 > R2_BAR and self.symplecticity < SYMPLECTIC_BAR

    def as_dict(self) -> dict[str, float]:
        return {"symetric_r2": self.r2, "symetric_symplecticity": self.symplecticity,
                "symetric_scale": self.scale, "symetric_pairs": float(self.informative_pairs),
                "symetric": float(self.passed)}


def omega(n: int) -> np.ndarray:
    """The canonical symplectic form on (q_1..q_n, p_1..p_n)."""
    return np.block([[np.zeros((n, n)), np.eye(n)], [-np.eye(n), np.zeros((n, n))]])


def informative_pairs(latent_q: np.ndarray, latent_p: np.ndarray) -> np.ndarray:
    """Indices i of the latent pairs (q'_i, p'_i) that vary over the data."""
    spread = np.maximum(latent_q.std(0), latent_p.std(0))
    return np.flatnonzero(spread > INFORMATIVE * spread.max()) if spread.max() > 0 else np.arange(0)


def symetric_score(true_q: np.ndarray, true_p: np.ndarray, latent_q: np.ndarray, latent_p: np.ndarray,
                   trajectory: np.ndarray, eval_points: int = 10, seed: int = 0) -> SymetricScore:
    """SyMetric of latent states against true ones, each (N, dims) with q and p flattened per sample;
    ``trajectory`` (N,) says which trajectory each sample belongs to (for the held-out split)."""
    z = np.concatenate([true_q, true_p], axis=1).astype(np.float64)
    keep = informative_pairs(latent_q, latent_p)
    if keep.size == 0:
        return SymetricScore(r2=0.0, symplecticity=ERROR_CAP, scale=0.0, informative_pairs=0)
    latents = np.concatenate([latent_q[:, keep], latent_p[:, keep]], axis=1).astype(np.float64)
    mean, std = z.mean(0), z.std(0)
    std[std == 0] = 1.0
    zs = (z - mean) / std
    held_out = np.isin(trajectory, np.unique(trajectory)[1::2])
    models = [make_pipeline(PolynomialFeatures(DEGREE), LassoCV(alphas=ALPHAS, cv=2, max_iter=20000))
              .fit(zs[~held_out], latents[~held_out, k]) for k in range(latents.shape[1])]
    r2 = float(np.mean([model.score(zs[held_out], latents[held_out, k]) for k, model in enumerate(models)]))
    points = zs[np.random.default_rng(seed).choice(len(zs), size=min(eval_points, len(zs)), replace=False)]
    pulled = [pullback(models, point, std, keep.size) for point in points]
    form = omega(z.shape[1] // 2)
    scale = float(sum((a * form).sum() for a in pulled) / (len(pulled) * (form * form).sum()))
    residual = sum(float(((a - scale * form) ** 2).sum()) for a in pulled)
    total = sum(float((a**2).sum()) for a in pulled)
    error = min(ERROR_CAP, residual / total) if total > 0 else ERROR_CAP
    return SymetricScore(r2=r2, symplecticity=error, scale=scale, informative_pairs=int(keep.size))


def pullback(models: list, point: np.ndarray, std: np.ndarray, pairs: int, h: float = 1e-4) -> np.ndarray:
    """JᵀΩJ at ``point`` (standardised), J by central differences and rescaled to the true units."""
    steps = np.eye(point.size) * h
    values = np.stack([m.predict(np.concatenate([point + steps, point - steps])) for m in models])
    plus, minus = np.split(values, 2, axis=1)
    jacobian = (plus - minus) / (2 * h) / std  # ∂latent/∂z, (2m', 2n)
    return jacobian.T @ omega(pairs) @ jacobian


def symetric_from_rollouts(true_q: torch.Tensor, true_p: torch.Tensor, latent_q: torch.Tensor,
                           latent_p: torch.Tensor, eval_points: int = 10) -> SymetricScore:
    """The score for trajectories (B, T, *state) of true and latent states at the same frames."""
    b, t = true_q.shape[:2]
    tq, tp, lq, lp = (x.detach().double().reshape(b * t, -1).cpu().numpy()
                      for x in (true_q, true_p, latent_q, latent_p))
    return symetric_score(tq, tp, lq, lp, trajectory=np.repeat(np.arange(b), t), eval_points=eval_points)


def pipeline_symetric(pipeline: Pipeline, task: Task, input_steps: int, sequences: int = 10, steps: int = 60,
                      seed: int = 0) -> SymetricScore:
    """SyMetric of a trained pipeline on fresh sequences of its task: the task simulates and renders
    them, the pipeline infers the state at the last input frame and rolls it ``steps`` frames on,
    and its latent states are compared with the true ones at the same frames."""
    trajectory = task.simulate(sequences, input_steps + steps, torch.Generator().manual_seed(seed))
    device = next(pipeline.parameters()).device
    frames = as_float(task.render(trajectory)).to(device)
    with inference(pipeline):
        encoded = pipeline.encoder(frames[:, :input_steps])
        q, p = pipeline.rollout(encoded.q0, encoded.p0, steps)
    start = input_steps - 1
    return symetric_from_rollouts(trajectory.q[:, start:], trajectory.p[:, start:], q.transpose(0, 1),
                                  p.transpose(0, 1))

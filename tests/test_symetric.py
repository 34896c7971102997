"""SyMetric: accurate symplectic maps pass, non-symplectic or uninformative latents fail."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import pivf
from pivf.core.apps.symetric import informative_pairs, pipeline_symetric, symetric_score
from pivf.core.kernel.pipeline import Pipeline

SEQUENCES, FRAMES, UNUSED_PAIRS = 20, 30, 3


def oscillator_states() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(q, p, trajectory index) of harmonic-oscillator trajectories of several energies."""
    rng = np.random.default_rng(0)
    amplitude = rng.uniform(0.5, 1.5, (SEQUENCES, 1))
    phase = rng.uniform(0, 2 * math.pi, (SEQUENCES, 1))
    t = np.arange(FRAMES)[None] * 0.2
    q = (amplitude * np.cos(t + phase)).reshape(-1, 1)
    p = (-amplitude * np.sin(t + phase)).reshape(-1, 1)
    return q, p, np.repeat(np.arange(SEQUENCES), FRAMES)


def embedded(latent: np.ndarray) -> np.ndarray:
    """The latent coordinate among constant ones, as a model's unused channels look."""
    return np.concatenate([latent, np.full((len(latent), UNUSED_PAIRS), 0.3)], axis=1)


def test_a_canonical_change_of_coordinates_up_to_scale_passes():
    q, p, trajectory = oscillator_states()
    # a shear (q + 0.15 p², p) is canonical; doubling q scales the symplectic form by 2
    score = symetric_score(q, p, embedded(2 * q + 0.3 * p**2), embedded(p), trajectory)
    assert score.r2 > 0.999 and score.symplecticity < 1e-3
    assert score.scale == pytest.approx(2.0, rel=0.05)  # the Lasso shrinks coefficients a little
    assert score.informative_pairs == 1 and score.passed


def test_an_accurate_map_that_is_not_symplectic_fails():
    q, p, trajectory = oscillator_states()
    score = symetric_score(q, p, embedded(q + q**3), embedded(p), trajectory)  # Jacobian 1 + 3q² varies
    assert score.r2 > 0.99
    assert score.symplecticity > 0.1 and not score.passed


def test_latents_that_do_not_follow_the_state_fail():
    q, p, trajectory = oscillator_states()
    rng = np.random.default_rng(1)
    score = symetric_score(q, p, embedded(rng.normal(size=q.shape)), embedded(rng.normal(size=q.shape)), trajectory)
    assert score.r2 < 0.2 and not score.passed


def test_only_latent_pairs_that_vary_are_informative():
    rng = np.random.default_rng(2)
    latent_q = np.stack([rng.normal(size=100), np.full(100, 5.0), 1e-4 * rng.normal(size=100)], axis=1)
    latent_p = np.stack([np.zeros(100), np.zeros(100), rng.normal(size=100)], axis=1)
    assert informative_pairs(latent_q, latent_p).tolist() == [0, 2]


def test_a_pipeline_is_scored_on_fresh_sequences_of_its_task():
    torch.manual_seed(0)
    shared = {"image_size": 32, "channels": 3, "latent_channels": 2}
    pipeline = Pipeline(pivf.encoder("hgn", **shared, input_steps=3, hidden_layers=1, hidden_channels=8,
                                     first_channels=8, z_channels=8, transformer_channels=8),
                        pivf.physics("hamiltonian_latent", latent_channels=2, conv_channels=[4, 8]),
                        pivf.integrator("leapfrog", substeps=1),
                        pivf.decoder("hgn_conv", **shared, filters=8), dt=0.125)
    score = pipeline_symetric(pipeline, pivf.task("mass_spring"), input_steps=3, sequences=4, steps=10)
    values = score.as_dict()
    assert set(values) == {"symetric_r2", "symetric_symplecticity", "symetric_scale", "symetric_pairs", "symetric"}
    assert all(math.isfinite(v) for v in values.values())
    assert 1 <= score.informative_pairs <= 2 * 4 * 4

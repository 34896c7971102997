"""The velocity through the physics: from true positions and the true physics it finds the true
velocity where finite differences cannot (a spring's pull, gravity between three bodies), and the
pipeline hands the fitted velocity to the rollout, with gradients to the positions."""
from __future__ import annotations

import pytest
import torch

import pivf
from pivf.core.kernel.build import build_pipeline
from pivf.core.kernel.config import resolve_config
from pivf.core.kernel.velocity_fit import fit_velocity, largest_step_last_sign


@pytest.mark.parametrize("task_name", ["spring_color", "3bp_color"])
def test_the_fitted_velocity_is_the_true_one_where_the_backward_difference_is_not(task_name):
    data = resolve_config(task=task_name).data
    task = pivf.task(task_name)
    trajectory = task.simulate(64, data.input_steps, torch.Generator().manual_seed(0))
    positions, truth = trajectory.positions.double(), trajectory.p[:, -1].double()
    physics, integrator = task.physics_system(), pivf.integrator("rk4", substeps=10)

    def backward(q, p, frames):
        t = -torch.arange(frames + 1, dtype=torch.float64) * data.dt
        return integrator.rollout(physics, q, p, t)[0][1:]

    difference = (positions[:, -1] - positions[:, -2]) / data.dt
    fitted = fit_velocity(backward, positions, [difference, largest_step_last_sign(positions, data.dt)], iterations=3)
    error_difference = (difference - truth).norm(dim=-1).mean()
    error_fitted = (fitted - truth).norm(dim=-1).mean()
    assert error_fitted < 0.05 * error_difference, (error_fitted, error_difference)
    assert error_fitted < 0.02  # pixels per unit time, against speeds of several


def test_the_pipeline_rolls_out_from_the_fitted_velocity_and_the_positions_get_its_gradient():
    torch.manual_seed(0)
    config = resolve_config(task="spring_color", overrides=["encoder.velocity_fit=2", "encoder.unet_base=4"])
    pipeline = build_pipeline(config)
    frames = torch.rand(2, 10, 3, 32, 32, requires_grad=True)
    encoded = pipeline.encoder(frames)
    refined = pipeline.encode(frames)
    assert not torch.allclose(refined.p0, encoded.p0)  # the encoder's estimate was corrected
    positions = refined.positions[:, :4].detach()
    starts = [encoded.p0.detach(), largest_step_last_sign(positions, pipeline.dt)]
    replayed = fit_velocity(pipeline.backward, positions, starts, iterations=2)
    assert torch.allclose(refined.p0, replayed, atol=1e-4)
    refined.p0.sum().backward()
    assert frames.grad is not None and frames.grad.abs().sum() > 0

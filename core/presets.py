"""Task presets and training recipes, each one layer of the config (a file, CLI flags and ``--set``
overrides all sit above them).

Task presets: each PAIG task with the original hyperparameters (paig reference §1.2), and the HGN
environments with the values of the HGN paper's setup.

Recipes (PAIG objective only; ``training.recipe``) sit above the task preset:

- ``paper``: the original code's training, kept for faithful comparisons: TF-style RMSprop at the
  task's learning rate, batch 100, element-wise clipping, the MLP coordinate head and velocity MLP,
  every loss from the first step.
- ``fast`` (default): finds the objects and the physical parameters in minutes on a CPU. Adam, with
  a larger learning rate for the physical parameters (their gradients are small and their scale is
  logarithmic); batch 16 (more updates per second); the soft-argmax coordinate head and the
  displacement-based velocity estimator; an autoencoder warm-up, a curriculum on the predicted
  horizon and a state-consistency loss (see ``PaigObjective``). docs/RESULTS.md has the ablation.
"""
from __future__ import annotations

from typing import Any

_PAIG_TRAINING = {"epochs": 500, "batch_size": 100, "optimizer": "rmsprop_tf", "grad_clip": 1.0, "anneal_at": 0.75}


def _paig(task: str, physics: dict[str, Any], image_size: int, n_objects: int, input_steps: int, pred_steps: int,
          extrap_steps: int, dt: float, lr: float, alpha: float) -> dict[str, Any]:
    return {
        "data": {"task": task, "image_size": image_size, "n_objects": n_objects, "input_steps": input_steps,
                 "pred_steps": pred_steps, "extrap_steps": extrap_steps, "dt": dt},
        "physics": physics,
        "integrator": {"name": "euler", "substeps": 5},
        "encoder": {"name": "paig_unet"},
        "decoder": {"name": "spatial_transformer"},
        "training": {**_PAIG_TRAINING, "lr": lr, "recons_weight": alpha, "objective": "paig"},
    }


RECIPES: dict[str, dict[str, Any]] = {
    "paper": {
        "encoder": {"name": "paig_unet", "coordinates": "mlp", "velocity": "mlp", "colour_path": 0.0},
    },
    "fast": {
        "data": {"n_train": 1000},
        "encoder": {"name": "paig_unet", "coordinates": "soft_argmax", "velocity": "differences", "colour_path": 20.0},
        "training": {"optimizer": "adam", "lr": 2e-3, "physics_lr": 3e-2, "batch_size": 16, "grad_clip": 0.0,
                     "epochs": 30, "eval_every": 1, "warmup_steps": 300, "discovery_share": 0.25, "horizon_steps": 300, "latent_weight": 1.0},
    },
}
DEFAULT_RECIPE = "fast"


def _hgn(task: str) -> dict[str, Any]:
    return {
        "data": {"task": task, "image_size": 32, "n_objects": 1, "input_steps": 5, "pred_steps": 29,
                 "extrap_steps": 30, "dt": 0.125},
        "physics": {"name": "hamiltonian_latent"},
        "integrator": {"name": "leapfrog", "substeps": 1},
        "encoder": {"name": "hgn"},
        "decoder": {"name": "hgn_conv"},
        "training": {"epochs": 50, "batch_size": 16, "lr": 1.5e-4, "optimizer": "adam", "grad_clip": 0.0,
                     "anneal_at": 1.0, "recons_weight": 1.0, "objective": "hgn"},
    }


# 3bp keeps PAIG's clipped forces: early in training the encoder's positions can nearly coincide.
PRESETS: dict[str, dict[str, Any]] = {
    "bouncing_balls": _paig("bouncing_balls", {"name": "bouncing"}, 32, 2, 4, 6, 20, 0.3, 3e-4, 2.0),
    "spring_color": _paig("spring_color", {"name": "spring"}, 32, 2, 4, 6, 20, 0.3, 6e-4, 3.0),
    "spring_color_half": _paig("spring_color_half", {"name": "spring"}, 32, 2, 4, 6, 20, 0.3, 6e-4, 3.0),
    "3bp_color": _paig("3bp_color", {"name": "gravity", "paig_clipping": True}, 36, 3, 4, 12, 24, 0.5, 1e-3, 5.0),
    "mnist_spring_color": _paig("mnist_spring_color", {"name": "spring"}, 64, 2, 3, 7, 20, 0.3, 6e-4, 3.0),
    **{env: _hgn(env) for env in ("mass_spring", "pendulum", "two_body", "three_body", "damped_spring",
                                  "double_pendulum")},
}

DEFAULT_TASK = "spring_color"

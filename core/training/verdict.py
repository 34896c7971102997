"""A run's verdict: one line at the end of every run that says what was learned and what to do next.

A run that ends before it learned anything prints numbers that look like results (a spring's k at
its initial 1.000, say). The verdict reads three things the run already knows: whether the objects
were found and prediction started (the objective's ``milestones``, where it has such stages), and
whether the learned physical parameters were still moving when the budget ran out (their values at
the validations of the last quarter of the run). It ends with the flag that would give the run more
time, so the line is something a user can act on.
"""
from __future__ import annotations

from typing import Any

__all__ = ["MOVING", "moving_parameters", "verdict"]

#: a learned parameter whose value changed by more than this share over the last ``WINDOW`` of the
#: run is reported as still moving
MOVING = 0.02
#: the share of the run's steps, at its end, over which movement is measured
WINDOW = 0.25


def moving_parameters(history: list[dict[str, Any]]) -> dict[str, float]:
    """Learned parameters whose relative change over the last ``WINDOW`` of the steps exceeds
    ``MOVING``, with that change; empty with fewer than two validations."""
    if len(history) < 2:
        return {}
    last = history[-1]
    cutoff = last["step"] * (1 - WINDOW)
    earlier = max((point for point in history[:-1] if point["step"] <= cutoff), key=lambda point: point["step"],
                  default=history[0])
    moving = {}
    for name, entry in last["params"].items():
        before = earlier["params"].get(name, {}).get("learned")
        if before is None:
            continue
        change = abs(entry["learned"] - before) / max(abs(before), 1e-12)
        if change > MOVING:
            moving[name] = round(change, 4)
    return moving


def _duration(seconds: float) -> str:
    return f"{seconds / 60:.0f}m" if seconds >= 120 else f"{seconds:.0f}s"


def longer(train: dict[str, Any]) -> str:
    """The flag that gives a run like this one twice its length."""
    if train["stopped"] == "max_time" and train.get("max_time_s"):
        return f"--max-time {_duration(2 * train['max_time_s'])}"
    if train["stopped"] == "steps":
        return f"--set training.steps={2 * train['steps']}"
    return f"--epochs {2 * max(train['epochs'], 1)}"


def verdict(milestones: dict[str, Any], history: list[dict[str, Any]], train: dict[str, Any]) -> dict[str, Any]:
    """What the run learned (``milestones`` from the objective, the validation ``history``, and the
    ``train`` summary of metrics.json), with its one-line summary under ``line``."""
    moving = moving_parameters(history)
    found, started = milestones.get("objects_found"), milestones.get("prediction_from")
    stop = f"stopped at step {train['steps']} after {_duration(train['wall_s'])}"
    advice = f"run longer with {longer(train)}"
    if found is False:
        line = f"{stop} before every object was found: {advice}"
    elif "prediction_from" in milestones and started is None:
        line = f"{stop} before prediction started (objects found, still warming up): {advice}"
    elif moving:
        changes = ", ".join(f"{name} by {100 * change:.1f} %" for name, change in moving.items())
        line = (f"{stop} with parameters still moving ({changes} over the last {100 * WINDOW:.0f} % of the "
                f"steps): {advice}")
    else:
        parts = (["objects found"] if found else []) + (["prediction from step "
                                                         f"{started}"] if started is not None else [])
        if not history or not history[-1]["params"]:
            settled = "no learned physical parameters"
        elif len(history) < 2:
            settled = "too few validations to tell whether the parameters settled"
        else:
            settled = (f"parameters settled (under {100 * MOVING:.0f} % change over the last {100 * WINDOW:.0f} % "
                       f"of the steps)")
        line = f"{stop}: " + ", ".join(parts + [settled])
    return {"objects_found": found, "prediction_from": started, "moving": moving, "line": line}

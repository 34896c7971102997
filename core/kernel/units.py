"""Learned constants in physical units, for data whose pixels have a known size.

A physics learns in the data's units: lengths in pixels, time in the data's ``dt`` (seconds for a
recording). Each physics declares the dimension of its learned parameters (``PhysicsSystem.units``,
e.g. ``"px"``, ``"1/s^2"``, ``"px^3/s^2"``); with a scale in metres per pixel every power of a pixel
becomes metres. Quantities that need more than a scale, such as a pendulum's length from its timing
(L = g/ω² with the local g), come from ``PhysicsSystem.physical_quantities``. Each one is set beside
the known value of the same name when the dataset records one.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pivf.core.kernel.physics import PhysicsSystem

__all__ = ["STANDARD_GRAVITY", "Quantity", "in_metres", "physical_report"]

#: m/s², the g a pendulum's length is read with unless the dataset records the local one
STANDARD_GRAVITY = 9.80665
_PIXELS = re.compile(r"px(?:\^(\d+))?")


@dataclass(frozen=True)
class Quantity:
    """A physical quantity a physics derives from its learned parameters; ``known`` names the known
    value (in the dataset's record) it is compared with."""

    value: float
    unit: str
    known: str


def in_metres(value: float, unit: str, metres_per_pixel: float | None) -> tuple[float, str] | None:
    """``value`` of dimension ``unit`` with its pixels turned into metres; as it is when the unit
    has no pixel in its numerator (1/s² needs no scale); None when it has and no scale is known."""
    numerator = unit.split("/", 1)[0]
    match = _PIXELS.fullmatch(numerator)
    if match is None:
        return value, unit
    if metres_per_pixel is None:
        return None
    power = int(match[1] or 1)
    return value * metres_per_pixel**power, unit.replace(match[0], "m" if power == 1 else f"m^{power}", 1)


def physical_report(physics: PhysicsSystem, metres_per_pixel: float | None, known: dict[str, float],
                    gravity: float | None = None) -> dict[str, dict[str, float | str]]:
    """Each learned parameter with a declared unit, in metres where it has pixels (those only with a
    scale), and each quantity the physics derives, as {"value", "unit"}, with "known" and
    "rel_error" where ``known`` holds a value of the same name. Time is in seconds: the report is
    for recordings, whose frame interval is. ``gravity``: the local g in m/s² (default
    ``STANDARD_GRAVITY``)."""
    report: dict[str, dict[str, float | str]] = {}
    for name, value in physics.learned_parameters().items():
        converted = in_metres(value, physics.units[name], metres_per_pixel) if name in physics.units else None
        if converted is not None:
            report[name] = {"value": converted[0], "unit": converted[1], "known_as": name}
    for name, quantity in physics.physical_quantities(gravity or STANDARD_GRAVITY).items():
        report[name] = {"value": quantity.value, "unit": quantity.unit, "known_as": quantity.known}
    for entry in report.values():
        truth = known.get(str(entry.pop("known_as")))
        if truth is not None:
            entry["known"] = truth
            if truth != 0:
                entry["rel_error"] = abs(float(entry["value"]) - truth) / abs(truth)
    return report

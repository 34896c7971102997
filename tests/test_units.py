"""Learned constants in physical units: pixel powers become metres with a scale, and a pendulum's
length follows from its timing with the local g."""
from __future__ import annotations

import math

import pytest

from pivf.core.kernel.registry import registry
from pivf.core.kernel.units import STANDARD_GRAVITY, in_metres, physical_report


@pytest.mark.parametrize(("unit", "expected"), [
    ("px", (2.0 * 0.01, "m")),
    ("px/s^2", (2.0 * 0.01, "m/s^2")),
    ("px^3/s^2", (2.0 * 0.01**3, "m^3/s^2")),
])
def test_pixel_powers_become_metres(unit: str, expected: tuple[float, str]) -> None:
    value, name = in_metres(2.0, unit, 0.01)
    assert value == pytest.approx(expected[0], rel=1e-12) and name == expected[1]


@pytest.mark.parametrize("unit", ["1/s^2", "1/s", "", "1/px"])
def test_units_without_pixels_need_no_scale(unit: str) -> None:
    assert in_metres(3.0, unit, 0.01) == in_metres(3.0, unit, None) == (3.0, unit)


def test_pixels_without_a_scale_are_not_reported() -> None:
    assert in_metres(3.0, "px", None) is None


def physics(name: str, **params: float):  # noqa: ANN201
    cls = registry().get("physics", name)
    return cls(cls.validate_params(params))


def test_pendulum_length_from_its_timing_and_from_the_image() -> None:
    """ω² = g/L = 10.9 /s² with g = 9.81 gives L = 0.9 m; a 13.32-px rod at 0.9/13.32 m/px is 0.9 m."""
    pendulum = physics("pivot_pendulum", g_over_l=9.81 / 0.9, length=13.32)
    report = physical_report(pendulum, 0.9 / 13.32, {"length": 0.9}, gravity=9.81)
    assert report["length_from_timing"]["value"] == pytest.approx(0.9, rel=1e-5)
    assert report["length"]["value"] == pytest.approx(0.9, rel=1e-5)
    assert report["length"]["unit"] == "m" and report["length"]["rel_error"] < 1e-5
    assert report["g_over_l"] == {"value": pytest.approx(9.81 / 0.9, rel=1e-6), "unit": "1/s^2"}


def test_standard_gravity_unless_told_and_no_scale_no_metres() -> None:
    pendulum = physics("pivot_pendulum", g_over_l=4.0)
    report = physical_report(pendulum, None, {})
    assert report["length_from_timing"] == {"value": pytest.approx(STANDARD_GRAVITY / 4.0, rel=1e-6), "unit": "m"}
    assert {"length", "pivot_x", "pivot_y"}.isdisjoint(report)  # pixels, and no scale to turn them into metres


def test_spring_rest_length_in_metres_and_k_as_learned() -> None:
    spring = physics("spring", k=4.0, l=6.0)
    report = physical_report(spring, 0.05, {"l": 0.3, "k": 4.0})
    assert report["l"] == {"value": pytest.approx(0.3), "unit": "m", "known": 0.3,
                           "rel_error": pytest.approx(0.0, abs=1e-6)}
    assert report["k"]["unit"] == "1/s^2" and math.isclose(report["k"]["value"], 4.0, rel_tol=1e-6)

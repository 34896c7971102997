"""A camera between the engine and the model: the nuisances a real recording adds to a task's clean video.

A task renders what an ideal camera would see. Selected through the task params' ``nuisance``
(``--set nuisance=phone``, ``--set "nuisance={noise: high, blur: 0.5}"``), the frames pass through a
model of a real camera instead, in the order light takes:

1. the scene: a cluttered backdrop behind the objects (``clutter``) and a bar crossing in front
   of them (``occluder``);
2. the exposure: the scene averaged over the time the shutter is open (``blur``), from states the
   task simulates between frames (``Task.advance``);
3. the lens moving: a subpixel shift of each frame (``jitter``);
4. the exposure control: slow drifts of gain and black level (``contrast``, ``brightness``);
5. the sensor: photon shot noise and read noise (``shot``, ``noise``), then 8-bit quantisation;
6. the encoder: H.264 at a constant rate factor and back (``compression``).

Every random draw comes from the chunk's generator after the task has simulated, so a seed fixes the
bytes and the stored positions (and states) are those of the clean dataset of the same seed: they are
where the objects are in the scene, which the shaken camera shows moved by ``<split>_shake`` (N, T, 2)
pixels, stored beside the frames when ``jitter`` is on. Under ``blur`` the shutter opens at each
frame's time: the stored position is where a streak starts.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from pivf.core.data.codec import codec_round_trip
from pivf.core.data.names import format_number
from pivf.core.kernel.errors import DataError

__all__ = ["NUISANCES", "PROFILES", "Camera", "nuisance_tag", "resolve_nuisance"]

#: each nuisance: its unit, its (low, high) severities and the range an explicit number may take
NUISANCES: dict[str, tuple[str, tuple[float, float], tuple[float, float]]] = {
    "noise": ("read-noise std in levels of 0-255", (2.0, 8.0), (0.0, 64.0)),
    "shot": ("shot-noise std at full white in levels of 0-255", (4.0, 16.0), (0.0, 64.0)),
    "blur": ("shutter time as a fraction of the frame interval", (0.25, 1.0), (0.0, 1.0)),
    "jitter": ("camera-shake std in pixels of the image", (0.5, 2.0), (0.0, 16.0)),
    "brightness": ("amplitude of the black-level drift in levels of 0-255", (8.0, 32.0), (0.0, 128.0)),
    "contrast": ("amplitude of the gain drift about mid-grey, a fraction", (0.1, 0.3), (0.0, 0.9)),
    "clutter": ("distractor discs moving over a random textured backdrop", (1.0, 4.0), (0.0, 16.0)),
    "occluder": ("width of the bar crossing the view, a fraction of the image side", (0.1, 0.25), (0.0, 1.0)),
    "compression": ("H.264 constant rate factor", (28.0, 40.0), (0.0, 51.0)),
}
#: named settings: ``phone`` is every nuisance at its low severity at once
PROFILES: dict[str, dict[str, float]] = {"none": {},
                                         "phone": {name: low for name, (_, (low, _), _) in NUISANCES.items()}}
#: nuisances whose severity is a count or a codec setting: whole numbers only
WHOLE = ("clutter", "compression")
#: exposure samples per frame interval the shutter is open (at least 2)
BLUR_SAMPLES = 16
#: the frame rate the encoder is told, in frames per second (a phone's)
CODEC_FPS = 30.0
#: pixels filmed at once: bounds the float frames the camera holds
PIXELS_AT_ONCE = 4_000_000


def _severity(name: str, value: Any) -> float:
    unit, (low, high), (least, most) = NUISANCES[name]
    allowed = f"low ({low:g}), high ({high:g}) or a number in [{least:g}, {most:g}]: {unit}"
    if isinstance(value, str) and value in ("low", "high"):
        return low if value == "low" else high
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name}: {value!r} is not a severity; {allowed}")
    if not least <= value <= most or (name in WHOLE and value != int(value)) or (name == "blur" and value == 0):
        raise ValueError(f"{name}: {value:g} is out of range; {allowed}")
    return float(value)


def resolve_nuisance(value: Any) -> dict[str, float]:
    """A profile name, or {nuisance: low | high | number}, as {nuisance: number} in the camera's order."""
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        if value not in PROFILES:
            raise ValueError(f"unknown profile '{value}'; one of {', '.join(PROFILES)}, or a mapping of nuisances "
                             f"({', '.join(NUISANCES)}) to low, high or a number")
        return dict(PROFILES[value])
    if not isinstance(value, dict):
        raise ValueError(f"expected a profile ({', '.join(PROFILES)}) or a mapping of nuisances to severities, "
                         f"got {value!r}")
    unknown = [name for name in value if name not in NUISANCES]
    if unknown:
        raise ValueError(f"unknown nuisance '{unknown[0]}'; one of {', '.join(NUISANCES)}")
    return {name: _severity(name, value[name]) for name in NUISANCES if name in value}


def nuisance_tag(settings: dict[str, float]) -> str:
    """What a file name carries of the settings: the profile's name, or each nuisance and its number."""
    profile = next((name for name, values in PROFILES.items() if values == settings), None)
    return profile or "_".join(f"{name}{format_number(value)}" for name, value in settings.items())


def _smooth_texture(generator: torch.Generator, size: int, channels: int) -> Tensor:
    """A random backdrop (H, W, C) in levels: smooth light and dark blobs about mid-grey, faintly tinted."""
    coarse = torch.randn((1, 1 + channels, 8, 8), generator=generator)
    fine = F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)[0]
    return (255 * (0.45 + 0.15 * fine[:1] + 0.05 * fine[1:])).clamp(0, 255).permute(1, 2, 0)


def _coverage(distance: Tensor) -> Tensor:
    """How much of a pixel an edge at ``distance`` px outside it leaves covered (a 1-px ramp)."""
    return (0.5 - distance).clamp(0, 1)


class _Sequence:
    """One sequence's draws: every random number the camera uses on it, drawn in a fixed order."""

    def __init__(self, settings: dict[str, float], length: int, size: int, channels: int,
                 generator: torch.Generator, room: Tensor | None) -> None:
        def uniform(*shape: int, low: float = 0.0, high: float = 1.0) -> Tensor:
            return low + (high - low) * torch.rand(shape, generator=generator, dtype=torch.float64)

        self.settings, self.length, self.size = settings, length, size
        if "clutter" in settings:
            assert room is not None, "clutter is filmed in front of the camera's room"
            self.texture = room
            count = int(settings["clutter"])
            self.blob_radius = uniform(count, low=0.04 * size, high=0.1 * size)
            self.blob_colour = uniform(count, channels, high=255.0)
            self.blob_start = uniform(count, 2, high=size)
            angle = uniform(count, high=2 * math.pi)
            speed = uniform(count, low=0.02 * size, high=0.06 * size)  # px per frame
            self.blob_velocity = speed[:, None] * torch.stack((angle.cos(), angle.sin()), -1)
        if "occluder" in settings:
            direction = float(uniform(1, high=2 * math.pi))
            self.bar_normal = torch.tensor([math.cos(direction), math.sin(direction)], dtype=torch.float64)
            self.bar_colour = float(uniform(1, low=0.05, high=0.5)) * 255
        if "jitter" in settings:
            self.shake = settings["jitter"] * torch.randn((length, 2), generator=generator, dtype=torch.float64)
        self.drifts: dict[str, tuple[Tensor, Tensor]] = {
            name: (uniform(1, low=1.0, high=2.0) * max(1, length - 1), uniform(1, high=2 * math.pi))
            for name in ("contrast", "brightness") if name in settings}
        if "noise" in settings or "shot" in settings:
            self.noise = torch.randn((length, size, size, channels), generator=generator)

    def _grid(self) -> Tensor:
        """Pixel centres (H, W, 2) as (x, y)."""
        steps = torch.arange(self.size, dtype=torch.float64) + 0.5
        return torch.stack(torch.broadcast_tensors(steps[None, :], steps[:, None]), -1)

    def backdrop(self, times: Tensor) -> Tensor:
        """(T, H, W, C) levels: the texture with the distractors where they are at ``times`` (frames)."""
        size = self.size
        span = size + 2 * self.blob_radius
        radius = self.blob_radius[:, None]
        travelled = self.blob_start + self.blob_velocity * times[:, None, None]
        centres = torch.remainder(travelled + radius, span[:, None]) - radius  # (T, D, 2): they wrap around the view
        frames = self.texture.to(torch.float64).expand(len(times), -1, -1, -1).clone()
        grid = self._grid()
        for blob in range(centres.shape[1]):
            distance = (grid - centres[:, blob, None, None]).norm(dim=-1) - self.blob_radius[blob]  # (T, H, W)
            cover = _coverage(distance)[..., None]
            frames = frames * (1 - cover) + cover * self.blob_colour[blob]
        return frames

    def bar(self, times: Tensor) -> Tensor:
        """(T, H, W, 1): how much of each pixel the occluder covers at ``times``. It crosses the view once
        a sequence, from fully outside to fully outside, along a random direction."""
        width = self.settings["occluder"] * self.size
        reach = self.size / math.sqrt(2) + width / 2
        along = (self._grid() - self.size / 2) @ self.bar_normal  # (H, W)
        centre = -reach + 2 * reach * times / max(1, self.length - 1)
        return _coverage((along - centre[:, None, None]).abs() - width / 2)[..., None]

    def drift(self, name: str) -> Tensor:
        """(T, 1, 1, 1): a slow sinusoid of amplitude 1, half to one period per sequence, random phase."""
        period, phase = self.drifts[name]
        times = torch.arange(self.length, dtype=torch.float64)
        return torch.sin(2 * math.pi * times / period + phase).view(-1, 1, 1, 1)


class Camera:
    """Films a task's trajectories through ``settings`` ({nuisance: number}, see ``resolve_nuisance``).

    The camera stands in one room: ``clutter``'s textured backdrop is drawn once from ``seed`` (the
    dataset's), the same behind every sequence, as behind every recording of a fixed camera; the
    distractors in front of it move differently in each sequence."""

    def __init__(self, settings: dict[str, float], seed: int = 0) -> None:
        self.settings = settings
        self.seed = seed

    def room(self, size: int, channels: int) -> Tensor | None:
        """The backdrop (H, W, C) levels ``clutter`` films in front of; None without clutter."""
        if "clutter" not in self.settings:
            return None
        return _smooth_texture(torch.Generator().manual_seed(self.seed), size, channels)

    def offsets(self) -> list[float]:
        """When, in frame intervals after each frame, the exposure is sampled: the middles of equal
        parts of the time the shutter is open, or the frame's time alone without blur."""
        shutter = self.settings.get("blur")
        if shutter is None:
            return [0.0]
        samples = max(2, math.ceil(BLUR_SAMPLES * shutter))
        return [(k + 0.5) / samples * shutter for k in range(samples)]

    def film(self, task: Any, trajectory: Any, generator: torch.Generator) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """uint8 frames (N, T, H, W, C) of ``trajectory`` and what is stored beside them ("shake")."""
        n, length = trajectory.positions.shape[:2]
        size = task.params.image_size
        if "compression" in self.settings and task.channels != 3:
            raise DataError(f"task '{task.name}': the compression nuisance encodes colour video, and its frames have "
                            f"{task.channels} channel(s)")
        group = max(1, PIXELS_AT_ONCE // (length * size * size))
        frames, shakes = [], []
        room = self.room(size, task.channels)
        for first in range(0, n, group):
            part = trajectory[first:first + group]
            draws = [_Sequence(self.settings, length, size, task.channels, generator, room) for _ in range(len(part))]
            exposed = self._expose(task, part, draws)
            for image, sequence in zip(exposed, draws, strict=True):
                frames.append(self._develop(image, sequence))
                if "jitter" in self.settings:
                    shakes.append(sequence.shake.to(torch.float32).numpy())
        beside = {"shake": np.stack(shakes)} if shakes else {}
        return np.stack(frames), beside

    def _expose(self, task: Any, trajectory: Any, draws: list[_Sequence]) -> Tensor:
        """(N, T, H, W, C) float levels: the scene averaged over the shutter's open time."""
        offsets = self.offsets()
        states = [trajectory] if offsets == [0.0] else task.advance(trajectory, offsets)
        frame_times = torch.arange(trajectory.positions.shape[1], dtype=torch.float64)
        total: Tensor | None = None
        for offset, state in zip(offsets, states, strict=True):
            times = frame_times + offset
            if "clutter" in self.settings:
                rendered, weight = task.render_with_backdrop(state)
                weight = weight.cpu().to(torch.float64)[..., None]
                backdrops = torch.stack([sequence.backdrop(times) for sequence in draws])
                image = rendered.cpu().to(torch.float64) * (1 - weight) + weight * backdrops
            else:
                image = task.render(state).cpu().to(torch.float64)
            if "occluder" in self.settings:
                for i, sequence in enumerate(draws):
                    cover = sequence.bar(times)
                    image[i] = image[i] * (1 - cover) + cover * sequence.bar_colour
            total = image if total is None else total + image
        assert total is not None
        return total / len(offsets)

    def _develop(self, image: Tensor, sequence: _Sequence) -> np.ndarray:
        """One sequence's exposure (T, H, W, C) levels → the uint8 frames the recording holds."""
        settings = self.settings
        if "jitter" in settings:
            image = self._shift(image, sequence.shake)
        if "contrast" in settings:
            image = 127.5 + (1 + settings["contrast"] * sequence.drift("contrast")) * (image - 127.5)
        if "brightness" in settings:
            image = image + settings["brightness"] * sequence.drift("brightness")
        if "noise" in settings or "shot" in settings:
            variance = settings.get("noise", 0.0) ** 2 + settings.get("shot", 0.0) ** 2 * image.clamp(0, 255) / 255
            image = image + variance.sqrt() * sequence.noise
        video = image.round().clamp(0, 255).to(torch.uint8).numpy()
        if "compression" in settings:
            video = codec_round_trip(video, CODEC_FPS, int(settings["compression"]))
        return video

    def _shift(self, image: Tensor, shake: Tensor) -> Tensor:
        """Each frame moved by ``shake`` (T, 2) px, (x, y), bilinearly; the edge pixels fill the uncovered border."""
        length, height, width, _ = image.shape
        theta = torch.zeros((length, 2, 3), dtype=image.dtype)
        theta[:, 0, 0] = theta[:, 1, 1] = 1
        theta[:, 0, 2] = -2 * shake[:, 0] / width
        theta[:, 1, 2] = -2 * shake[:, 1] / height
        grid = F.affine_grid(theta, [length, 1, height, width], align_corners=False)
        moved = F.grid_sample(image.permute(0, 3, 1, 2), grid, mode="bilinear", padding_mode="border",
                              align_corners=False)
        return moved.permute(0, 2, 3, 1)

"""The contract of a dataset task: simulate sequences of a physical system and render them as video.

A task is a plugin of kind ``task``, returned by a module's ``pivf_tasks`` hook, so a third-party
physics package can ship the data for its system and ``pivf data generate NAME`` works for it::

    class MyTask(BallTask):              # or Task, for anything that is not balls on black
        name = "my_system"
        description = "one line for `pivf data tasks`"
        physics = "my_physics"           # the physics plugin whose equations make the data
        Params = MyTaskParams            # a TaskParams subclass with this task's defaults

        def sample_initial(self, n, generator):
            ...                          # (q0, p0), float64 on the CPU, drawn from `generator` only

    @pivf.hookimpl
    def pivf_tasks():
        return [MyTask]

What a task must provide:

- ``sample_initial(n, generator) -> (q0, p0)``: n initial states in the physics' coordinates, drawn
  only from ``generator`` (a CPU ``torch.Generator``) so a seed fixes the data.
- ``render(trajectory) -> uint8 (N, T, H, W, C)``: the frames. ``BallTask`` draws discs.

What it may override:

- ``accept(q, p) -> bool (N,)``: rejection test on the finely sampled trajectory (walls, close
  encounters); rejected sequences are redrawn, as in the original generators.
- ``observe(q, p, generator) -> (N, T, K, 2)``: where each drawn object appears, in pixels
  (x = column, y = row, origin at the image's top-left corner). Default: q itself.
- ``physics_params()``: the params handed to ``pivf.physics(self.physics, ...)``.
- ``file_name(role)`` and ``params_from_file_name(name)``: file names that carry the parameters.
- ``simulate(n, length, generator, device)`` entirely, for data that is not an ODE solution, or
  recorded under controls: declare ``n_controls`` and return the inputs as ``Trajectory.controls``
  (N, T, m), the input applied from each frame to the next; they are stored beside the frames and
  drive an actuated physics plugin in training (``PhysicsSystem.n_controls``). Such a task also
  overrides ``advance`` for the camera's motion blur.
- ``advance(trajectory, offsets)``: the states a fraction of a frame interval after each frame, what
  the camera's motion blur averages over (``nuisance``); by default the reference solver from each frame.
- ``render_with_backdrop(trajectory)``: the frames and how much of each pixel shows the backdrop,
  where the camera's clutter goes; by default a pixel counts as backdrop as far as it matches the
  render of the scene without its objects (positions far outside the image).

Ground truth is solved by ``simulate.reference_rollout`` (classic RK4 in float64 with ``substeps``
steps per frame and the physics' constraints), never by a learner's integrator.
"""
from __future__ import annotations

import math
from copy import copy
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, TypeVar

import torch
from pydantic import Field, SerializerFunctionWrapHandler, field_validator, model_serializer, model_validator
from torch import Tensor

from pivf.core.data.names import NameTemplate
from pivf.core.data.nuisance import NUISANCES, PROFILES, nuisance_tag, resolve_nuisance
from pivf.core.data.simulate import reference_rollout
from pivf.core.kernel.errors import DataError
from pivf.core.kernel.physics import PhysicsSystem
from pivf.core.kernel.plugin import Plugin, PluginParams
from pivf.core.kernel.registry import registry

__all__ = ["MAX_SIMULATION_SUBSTEPS", "Role", "Task", "TaskParams", "Trajectory", "with_default"]

Role = Literal["train", "test"]

#: a pixel differing this much (levels of 0-255) from the empty scene is wholly object, not backdrop
OBJECT_CONTRAST = 64.0
#: where a task's objects are put to render the scene without them, in pixels
FAR_AWAY = -1e4

#: proposals drawn at once while rejection sampling
MAX_PROPOSALS = 8192
#: state values (q and p at every solver step) simulated at once: 80 MB in float64
MAX_SOLVER_VALUES = 10_000_000
#: rounds of proposals before a task is declared unable to produce its data
MAX_ROUNDS = 200
#: proposals without a single acceptance after which the parameters are declared hopeless
HOPELESS = 50_000


#: simulation steps a task may take per frame interval: each multiplies the work of a generation, and
#: a mistyped count (1e8) would run until killed
MAX_SIMULATION_SUBSTEPS = 10_000


class TaskParams(PluginParams):
    image_size: int = Field(32, ge=8, description="frame height and width in pixels")
    n_objects: int = Field(2, ge=1, description="objects in the scene")
    train_length: int = Field(12, ge=2, description="frames per training and validation sequence")
    test_length: int = Field(30, ge=2, description="frames per test (extrapolation) sequence")
    dt: float = Field(0.3, gt=0, description="time between frames")
    ground_truth: dict[str, float] = Field({}, description="overrides of the physical constants the data is made with")
    substeps: int = Field(10, ge=1, le=MAX_SIMULATION_SUBSTEPS,
                          description="reference RK4 steps per frame interval; rejection tests run at each")
    nuisance: dict[str, float] = Field({}, description=f"what a real camera adds (docs/datasets.md): a profile "
                                                       f"({', '.join(PROFILES)}) or {{nuisance: low|high|number}} "
                                                       f"of {', '.join(NUISANCES)}")

    @field_validator("nuisance", mode="before")
    @classmethod
    def _known_nuisances(cls, value: Any) -> dict[str, float]:
        return resolve_nuisance(value)

    @model_serializer(mode="wrap")
    def _without_clean_camera(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """No ``nuisance`` entry for the clean camera: records, file names and cache keys stay as they were."""
        dumped = handler(self)
        if not dumped.get("nuisance"):
            dumped.pop("nuisance", None)
        return dumped

    @model_validator(mode="after")
    def _test_sequences_are_longer(self) -> TaskParams:
        if self.test_length <= self.train_length:
            raise ValueError("test_length must exceed train_length: the test file holds the long extrapolation "
                             "sequences")
        return self


def with_default(params: type[PluginParams], field: str, value: Any) -> Any:
    """``params.field``'s declaration (type, bounds, description) with a new default, for a task's
    own Params: ``dt: float = with_default(TaskParams, "dt", 0.5)``."""
    declared = copy(params.model_fields[field])
    declared.default = value
    return declared


@dataclass
class Trajectory:
    """N sequences of T frames: states ``q``, ``p`` (N, T, *state) in the physics' own coordinates,
    ``positions`` (N, T, K, 2), where each of the K drawn objects appears, in pixels, and for a task
    recorded under controls the inputs ``controls`` (N, T, m) applied from each frame to the next."""

    q: Tensor
    p: Tensor
    positions: Tensor
    controls: Tensor | None = None

    def __len__(self) -> int:
        return self.q.shape[0]

    def __getitem__(self, index: slice | Tensor) -> Trajectory:
        return Trajectory(self.q[index], self.p[index], self.positions[index],
                          None if self.controls is None else self.controls[index])


TP = TypeVar("TP", bound=TaskParams)


class Task(Plugin[TP]):
    """Base class of task plugins (see the module docstring for the contract)."""

    kind: ClassVar[str] = "task"
    required_methods = (("sample_initial", "render"), ("simulate", "render"))
    Params = TaskParams
    #: name of the physics plugin whose equations generate the data
    physics: ClassVar[str] = ""
    #: the task's own physical constants, over the physics plugin's ``ground_truth``
    ground_truth: ClassVar[dict[str, float]] = {}
    #: colour channels of the frames
    channels: ClassVar[int] = 3
    #: inputs per frame the task records its video under (``Trajectory.controls``); 0: none
    n_controls: ClassVar[int] = 0
    #: sequences simulated and written at a time; fixed per task so a seed gives the same bytes
    chunk_size: ClassVar[int] = 1000
    #: store the true states q, p beside the frames (``<split>_q``, ``<split>_p``, float64): a task
    #: whose states are not pivf's own physics keeps them for whoever compares a model with them
    states_beside: ClassVar[bool] = False
    #: file-name stem with ``{field}`` slots filled from params, ground truth and ``length``
    #: (see ``names.NameTemplate``); empty means ``<name>_sl{length}``
    name_template: ClassVar[str] = ""
    #: the config layer a run on this task starts from (``--task NAME``): its data section, the
    #: plugins and the training the task is usually learned with; empty means pivf's defaults
    preset: ClassVar[dict[str, Any]] = {}

    # --- to implement ----------------------------------------------------------------------------
    def sample_initial(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        raise NotImplementedError(f"task '{self.name}' does not sample initial states")

    def render(self, trajectory: Trajectory) -> Tensor:
        raise NotImplementedError(f"task '{self.name}' does not render")

    # --- may override ----------------------------------------------------------------------------
    def accept(self, q: Tensor, p: Tensor) -> Tensor:
        return torch.ones(q.shape[0], dtype=torch.bool, device=q.device)

    def observe(self, q: Tensor, p: Tensor, generator: torch.Generator) -> Tensor:
        return q

    def physics_params(self) -> dict[str, Any]:
        return self.true_parameters()

    def file_name(self, role: Role) -> str:
        """The file's name, with the parameters in it (the original PAIG names for PAIG tasks)."""
        values = {**self.params.model_dump(), **self.true_parameters(), "length": self.length(role)}
        name = NameTemplate(self.name_template or f"{self.name}_sl{{length}}").format(values)
        if self.params.nuisance:  # another camera, another dataset
            name = f"{name.removesuffix('.npz')}_{nuisance_tag(self.params.nuisance)}.npz"
        return name

    @classmethod
    def params_from_file_name(cls, file_name: str) -> tuple[dict[str, Any], int] | None:
        """(params, sequence length) encoded in a file name of this task, or None if it is not one."""
        values = NameTemplate(cls.name_template or f"{cls.name}_sl{{length}}").parse(file_name)
        if values is None:
            return None
        length = int(values.pop("length"))
        params = {key: value for key, value in values.items() if key in cls.Params.model_fields}
        overrides = {key: value for key, value in values.items() if key not in params}
        return ({**params, "ground_truth": overrides} if overrides else params), length

    # --- provided ----------------------------------------------------------------------------------
    def true_parameters(self) -> dict[str, float]:
        """The physical constants the data is made with."""
        physics_cls = registry().get("physics", self.physics)
        return {**physics_cls.ground_truth, **self.ground_truth, **self.params.ground_truth}

    def check_physics(self) -> None:
        """The physics plugin's own model checks the constants the data would be made with (a spring
        constant must be positive), so a file name saying ``k0`` never becomes ground truth."""
        registry().get("physics", self.physics).validate_params(self.physics_params())

    def physics_system(self, device: torch.device | str = "cpu") -> PhysicsSystem:
        system = registry().create("physics", self.physics, **self.physics_params())
        return system.to(device=device, dtype=torch.float64).requires_grad_(False)

    def length(self, role: Role) -> int:
        return self.params.train_length if role == "train" else self.params.test_length

    def simulate(self, n: int, length: int, generator: torch.Generator,
                 device: torch.device | str = "cpu") -> Trajectory:
        """n accepted sequences of ``length`` frames (rejection sampling over ``sample_initial``)."""
        physics = self.physics_system(device)
        kept_q, kept_p = [], []
        accepted = proposed = 0
        for _ in range(MAX_ROUNDS):
            if accepted >= n or (accepted == 0 and proposed >= HOPELESS):
                break
            rate = (accepted + 1) / (proposed + 2)  # Laplace's estimate: finite before any acceptance
            m = min(MAX_PROPOSALS, math.ceil((n - accepted) / rate * 1.2) + 8)
            q0, p0 = self.sample_initial(m, generator)
            points = (length - 1) * self.params.substeps + 1
            rows = max(1, MAX_SOLVER_VALUES // (2 * points * q0[0].numel()))
            for start in range(0, m, rows):  # bounds the memory the finely sampled states take
                q, p = self._accepted_frames(physics, q0[start:start + rows].to(device),
                                             p0[start:start + rows].to(device), length)
                kept_q.append(q)
                kept_p.append(p)
                accepted += len(q)
            proposed += m
        if accepted < n:
            raise DataError(f"task '{self.name}': only {accepted} of {proposed} simulated sequences passed its "
                            f"rejection test ({accepted / proposed:.3%}); the parameters leave too little room")
        q, p = torch.cat(kept_q)[:n], torch.cat(kept_p)[:n]
        return Trajectory(q, p, self.observe(q, p, generator))

    def _accepted_frames(self, physics: PhysicsSystem, q0: Tensor, p0: Tensor, length: int) -> tuple[Tensor, Tensor]:
        stride = self.params.substeps
        q, p = reference_rollout(physics, q0, p0, self.params.dt, length, stride)
        ok = self.accept(q, p)
        return q[ok, ::stride], p[ok, ::stride]

    def advance(self, trajectory: Trajectory, offsets: list[float]) -> list[Trajectory]:
        """For each offset (increasing, in frame intervals, 0-1), the states that long after each frame:
        the reference solver from each frame's state, at least as finely stepped as the data. Positions
        move by what ``observe`` makes of the motion, so an observation's offset stays with its frame."""
        if type(self).simulate is not Task.simulate:
            raise DataError(f"task '{self.name}' simulates its own way and defines no `advance`; the blur nuisance "
                            "needs its motion between frames")
        n, length = trajectory.q.shape[:2]
        physics = self.physics_system(trajectory.q.device)
        q, p = trajectory.q.flatten(0, 1), trajectory.p.flatten(0, 1)
        seen = self._observed(trajectory.q, trajectory.p)
        now, states = 0.0, []
        for offset in offsets:
            span = (offset - now) * self.params.dt
            if span > 0:
                steps = max(1, math.ceil(span / self.params.dt * self.params.substeps - 1e-9))
                qs, ps = reference_rollout(physics, q, p, span, 2, steps)
                q, p, now = qs[:, -1], ps[:, -1], offset
            later_q, later_p = q.unflatten(0, (n, length)), p.unflatten(0, (n, length))
            moved = trajectory.positions + (self._observed(later_q, later_p) - seen)
            states.append(Trajectory(later_q, later_p, moved, trajectory.controls))
        return states

    def _observed(self, q: Tensor, p: Tensor) -> Tensor:
        """``observe`` with a fixed generator: differences of two calls carry no observation noise."""
        return self.observe(q, p, torch.Generator().manual_seed(0)).to(q.dtype)

    def render_with_backdrop(self, trajectory: Trajectory) -> tuple[Tensor, Tensor]:
        """The frames (N, T, H, W, C) and how much of each pixel shows the backdrop, float (N, T, H, W) in
        [0, 1]: none where a pixel differs by ``OBJECT_CONTRAST`` or more from the empty scene."""
        frames = self.render(trajectory)
        nowhere = torch.full_like(trajectory.positions[:1, :1], FAR_AWAY)
        empty = self.render(Trajectory(trajectory.q[:1, :1], trajectory.p[:1, :1], nowhere))
        difference = (frames.float() - empty.float()).abs().amax(-1)
        return frames, 1 - (difference / OBJECT_CONTRAST).clamp(0, 1)

    def describe(self) -> dict[str, Any]:
        """What a dataset's sidecar records about the task."""
        return {"task": self.name, "physics": self.physics, "params": self.params.model_dump(mode="json"),
                "ground_truth": self.true_parameters(), "dt": self.params.dt,
                "image_size": self.params.image_size, "n_objects": self.params.n_objects}

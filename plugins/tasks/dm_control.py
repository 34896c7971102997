"""Videos of the DeepMind Control Suite (``pivf[dm_control]``): its pendulum, cartpole and acrobot,
moving without actions, filmed by the suite's own fixed camera, as KeyCLD's benchmark films them.

The systems are the suite's own models (``dm_control.suite.<domain>``) stepped by dm_control at
the domain's own timestep (0.02 s for the pendulum, 0.01 s for the cartpole and the acrobot), with
zero torque: the pendulum swings, the cartpole's pole falls and drags the cart, the acrobot
tumbles. A frame interval ``dt`` is a whole number of those steps (KeyCLD: one). Frames come from
``physics.render`` through camera 0 (``fixed`` in each domain). The true states are the joints'
``qpos`` (q) and ``qvel`` (p), stored beside the frames (``<split>_q``, ``<split>_p``); the suite's
joint damping is kept unless ``damping`` scales it (0 leaves a conservative system).

Initial states follow KeyCLD's random start: every angle uniform on the circle (0 is upright in all
three domains), the cart uniform in ±1 m, every velocity uniform in ±``max_rate``.

Rendering goes through MuJoCo's offscreen backends like the MuJoCo tasks (``MUJOCO_GL``, OSMesa by
default on a machine without CUDA), on the calling thread: dm_control's render thread would be shut
down before its contexts are freed at exit, which prints tracebacks.
"""
from __future__ import annotations

import functools
import importlib
import importlib.util
import math
import os
from types import ModuleType
from typing import Any, ClassVar, Literal, TypeVar

import numpy as np
import torch
from pydantic import Field, model_validator
from torch import Tensor

from pivf.api import DataError, Task, TaskParams, Trajectory, deep_merge, hookimpl, uniform, with_default
from pivf.plugins.tasks.hgn import hgn_preset
from pivf.plugins.tasks.mujoco import advance_states, geom_positions, mujoco_problem

__all__ = ["DmAcrobot", "DmCartpole", "DmPendulum", "dm_control_problem", "pivf_tasks"]

MISSING = "the dm-control package is not installed (pip install 'pivf[dm_control]')"
#: dm_control renders on its own thread unless this is set before it is imported
OFFLOADING_ENV = "DISABLE_RENDER_THREAD_OFFLOADING"
#: the suite's models allocate offscreen buffers of 640×480
MAX_SIDE = 480


@functools.cache
def dm_control_problem() -> str | None:
    """Why the dm_control tasks cannot run here, in one line, or None. Finding the package is cheap;
    importing it waits until a task runs (it loads every domain of the suite)."""
    if importlib.util.find_spec("dm_control") is None:
        return MISSING
    return mujoco_problem()


def _suite_domain(domain: str) -> ModuleType:
    """``dm_control.suite.<domain>``, imported once the GL backend is chosen (``mujoco_problem``)."""
    os.environ.setdefault(OFFLOADING_ENV, "1")
    return importlib.import_module(f"dm_control.suite.{domain}")


class DmControlParams(TaskParams):
    image_size: int = Field(32, ge=8, le=MAX_SIDE, description="frame height and width in pixels (KeyCLD: 64)")
    train_length: int = with_default(TaskParams, "train_length", 50)
    test_length: int = with_default(TaskParams, "test_length", 100)
    ground_truth: dict[str, float] = Field({}, max_length=0, description="not used: the suite's model sets the "
                                                                         "physics")
    substeps: int = Field(1, ge=1, le=1, description="not used: dm_control steps at the domain's own timestep, "
                                                     "dt / timestep steps per frame")
    damping: float = Field(1.0, ge=0, description="the joints' damping as a multiple of the suite's "
                                                  "(0: a conservative system)")
    max_rate: float = Field(0.1, ge=0, description="initial velocities are uniform in ±max_rate (rad/s, m/s)")
    #: the domain's physics timestep in seconds (its model's ``<option timestep>``)
    timestep: ClassVar[float] = 0.01

    @model_validator(mode="after")
    def _whole_steps_per_frame(self) -> DmControlParams:
        steps = self.dt / self.timestep
        if round(steps) < 1 or abs(steps - round(steps)) > 1e-6:
            raise ValueError(f"dt must be a whole multiple of the domain's timestep {self.timestep:g} s "
                             f"({self.timestep:g}, {2 * self.timestep:g}, ...), got {self.dt:g}")
        return self


DP = TypeVar("DP", bound=DmControlParams)


def dm_control_preset(degrees_of_freedom: int, angles: int, n_objects: int, dt: float) -> dict[str, Any]:
    """HGN's setup (``hgn_preset``) on the task's frame interval."""
    return deep_merge(hgn_preset(degrees_of_freedom, angles), {"data": {"n_objects": n_objects, "dt": dt}})


class DmControlTask(Task[DP]):
    """A dm_control suite domain filmed without actions: states are (qpos, qvel)."""

    Params = DmControlParams
    physics = "hamiltonian_latent"  # the plugin that learns these videos; the data come from dm_control
    states_beside = True
    #: the ``dm_control.suite`` module of the domain
    domain: ClassVar[str] = ""
    #: geoms whose centres are the objects' positions, in object order
    tracked_geoms: ClassVar[tuple[str, ...]] = ()
    #: the suite's camera for pixels
    camera: ClassVar[int] = 0
    #: hinge joints, each one angle of qpos
    hinges: ClassVar[int] = 1

    def __init__(self, params: DP | dict[str, Any] | None = None) -> None:
        super().__init__(params)
        self._physics: Any = None

    @classmethod
    def unavailable(cls) -> str | None:
        return dm_control_problem()

    def physics_params(self) -> dict[str, Any]:
        return {}  # the data come from dm_control, not from a pivf physics plugin

    def engine(self) -> Any:
        """The domain's dm_control ``Physics``, made once per task, its damping scaled."""
        if self._physics is None:
            problem = dm_control_problem()
            if problem:
                raise DataError(f"task '{self.name}' is unavailable: {problem}")
            module = _suite_domain(self.domain)
            physics = module.Physics.from_xml_string(*module.get_model_and_assets())
            if not math.isclose(physics.model.opt.timestep, self.params.timestep):
                raise DataError(f"task '{self.name}': dm_control's {self.domain} steps {physics.model.opt.timestep} "
                                f"s, not the {self.params.timestep} s this task was written for")
            physics.model.dof_damping[:] *= self.params.damping
            self._physics = physics
        return self._physics

    def steps_per_frame(self) -> int:
        return round(self.params.dt / self.params.timestep)

    def sample_initial(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """qpos (n, nq): every angle uniform on the circle; qvel (n, nv) uniform in ±max_rate."""
        rate = self.params.max_rate
        return (uniform(generator, (n, self.hinges), -math.pi, math.pi),
                uniform(generator, (n, self.hinges), -rate, rate))

    def simulate(self, n: int, length: int, generator: torch.Generator,
                 device: torch.device | str = "cpu") -> Trajectory:
        physics = self.engine()
        q0, p0 = (x.double().numpy() for x in self.sample_initial(n, generator))
        qpos = np.empty((n, length, physics.model.nq))
        qvel = np.empty((n, length, physics.model.nv))
        seen = np.empty((n, length, len(self.tracked_geoms), 2))
        for i in range(n):
            with physics.reset_context():
                physics.data.qpos[:], physics.data.qvel[:] = q0[i], p0[i]
            for j in range(length):
                if j:
                    physics.step(self.steps_per_frame())
                    physics.forward()
                qpos[i, j], qvel[i, j] = physics.data.qpos, physics.data.qvel
                seen[i, j] = self.positions(physics.data.ptr)
        return Trajectory(*(torch.from_numpy(x).to(device) for x in (qpos, qvel, seen)))

    def positions(self, data: Any) -> np.ndarray:
        """(K, 2) pixel positions of the tracked geoms in a forwarded ``MjData``."""
        return geom_positions(self.engine().model.ptr, data, self.camera, self.tracked_geoms, self.params.image_size)

    def _photographs(self, trajectory: Trajectory, segmentation: bool) -> np.ndarray:
        """``physics.render`` of every state: uint8 (N, T, H, W, 3), or with ``segmentation`` int32
        (N, T, H, W, 2) of object ids and types."""
        physics, size = self.engine(), self.params.image_size
        n, t = trajectory.q.shape[:2]
        q, p = trajectory.q.cpu().numpy(), trajectory.p.cpu().numpy()
        shots = np.empty((n, t, size, size, 2 if segmentation else 3), dtype=np.int32 if segmentation else np.uint8)
        for i in range(n):
            for j in range(t):
                with physics.reset_context():
                    physics.data.qpos[:], physics.data.qvel[:] = q[i, j], p[i, j]
                shots[i, j] = physics.render(size, size, camera_id=self.camera, segmentation=segmentation)
        return shots

    def render(self, trajectory: Trajectory) -> Tensor:
        return torch.from_numpy(self._photographs(trajectory, False)).to(trajectory.q.device)

    def render_with_backdrop(self, trajectory: Trajectory) -> tuple[Tensor, Tensor]:
        """The frames and, from the suite's segmentation of the same scene, where it shows the world's
        own geoms (floor, rails) or nothing (the skybox)."""
        model = self.engine().model
        ids, types = np.moveaxis(self._photographs(trajectory, True), -1, 0)
        scenery = np.flatnonzero(model.geom_bodyid == 0)
        behind = (ids < 0) | ((types == int(_mujoco().mjtObj.mjOBJ_GEOM)) & np.isin(ids, scenery))
        device = trajectory.q.device
        return self.render(trajectory), torch.from_numpy(behind.astype(np.float32)).to(device)

    def advance(self, trajectory: Trajectory, offsets: list[float]) -> list[Trajectory]:
        model = self.engine().model.ptr
        return advance_states(_mujoco(), model, trajectory, offsets, self.params.dt, self.params.timestep,
                              self.positions)


def _mujoco() -> ModuleType:
    import mujoco

    return mujoco


# --- the domains -------------------------------------------------------------------------------------

class DmPendulumParams(DmControlParams):
    n_objects: Literal[1] = Field(1, description="objects in the scene (exactly 1: the bob)")
    dt: float = with_default(TaskParams, "dt", 0.02)
    timestep: ClassVar[float] = 0.02


class DmPendulum(DmControlTask[DmPendulumParams]):
    """dm_control's pendulum: a 1 kg bob on a massless 0.5 m pole, hinge damping 0.1 N·m·s, so
    θ̈ = (m g L sin θ − b θ̇) / I with I = m L² + the bob's own 0.001 kg·m²; θ = qpos[0] from upright."""

    name = "dm_pendulum"
    description = "dm_control's pendulum swinging freely, filmed by the suite's camera (KeyCLD's data)"
    domain = "pendulum"
    tracked_geoms = ("mass",)
    Params = DmPendulumParams
    name_template = "dm_pendulum_sl{length}_dt{dt}_b{damping}"
    preset = dm_control_preset(degrees_of_freedom=1, angles=1, n_objects=1, dt=0.02)


class DmCartpoleParams(DmControlParams):
    n_objects: Literal[2] = Field(2, description="objects in the scene (exactly 2: the cart and the pole)")
    dt: float = with_default(TaskParams, "dt", 0.01)
    cart_range: float = Field(1.0, ge=0, le=1.8, description="the cart starts uniform in ±cart_range m (its rail "
                                                             "ends at ±1.8 m)")


class DmCartpole(DmControlTask[DmCartpoleParams]):
    """dm_control's cartpole: q = (cart position in m, pole angle from upright), the pole falls and
    drags the cart, which stops at the rail's ends."""

    name = "dm_cartpole"
    description = "dm_control's cartpole, its pole falling freely, filmed by the suite's camera (KeyCLD's data)"
    domain = "cartpole"
    tracked_geoms = ("cart", "pole_1")
    Params = DmCartpoleParams
    name_template = "dm_cartpole_sl{length}_dt{dt}_b{damping}"
    preset = dm_control_preset(degrees_of_freedom=2, angles=1, n_objects=2, dt=0.01)

    def sample_initial(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """The cart uniform in ±cart_range, the pole's angle on the circle, velocities in ±max_rate."""
        reach, rate = self.params.cart_range, self.params.max_rate
        q = torch.cat((uniform(generator, (n, 1), -reach, reach), uniform(generator, (n, 1), -math.pi, math.pi)), 1)
        return q, uniform(generator, (n, 2), -rate, rate)


class DmAcrobotParams(DmControlParams):
    n_objects: Literal[2] = Field(2, description="objects in the scene (exactly 2: the two links)")
    dt: float = with_default(TaskParams, "dt", 0.01)


class DmAcrobot(DmControlTask[DmAcrobotParams]):
    """dm_control's acrobot: two 1 m links, q = (shoulder, elbow) angles, the shoulder's from upright,
    the elbow's relative to the upper link."""

    name = "dm_acrobot"
    description = "dm_control's acrobot (double pendulum) tumbling freely, filmed by the suite's camera"
    domain = "acrobot"
    hinges = 2
    tracked_geoms = ("upper_arm", "lower_arm")
    Params = DmAcrobotParams
    name_template = "dm_acrobot_sl{length}_dt{dt}_b{damping}"
    preset = dm_control_preset(degrees_of_freedom=2, angles=2, n_objects=2, dt=0.01)


@hookimpl
def pivf_tasks() -> list[type]:
    return [DmPendulum, DmCartpole, DmAcrobot]

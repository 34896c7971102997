"""Videos from a real physics engine: tasks simulated and rendered by MuJoCo (``pivf[mujoco]``).

Every other task is drawn by pivf's own renderer from pivf's own physics plugins, so a model could
pass by sharing the generator's assumptions. Here MuJoCo integrates the motion (its RK4 at
``dt / substeps``, a millisecond by default) and renders shaded 3-D scenes with lights and a textured
backdrop through a fixed camera; pivf only draws the initial states and projects the bodies' centres
through the camera into ``positions`` (pixels, x = column, y = row, origin at the top-left corner,
stored beside the frames for tests and diagnostics; training never sees them).

Frames are rendered at ``supersample`` times the image size and averaged down (anti-aliasing).
Offscreen rendering needs an OpenGL backend: ``MUJOCO_GL`` is honoured when set, otherwise EGL
where CUDA is available and OSMesa (Debian's ``libosmesa6``) elsewhere. Without the package or a
working backend the tasks are listed as unavailable with the reason, and nothing else changes.
"""
from __future__ import annotations

import atexit
import functools
import math
import os
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any, ClassVar, Literal, Protocol, TypeVar, runtime_checkable

import numpy as np
import torch
from pydantic import Field
from torch import Tensor

from pivf.api import (
    MAX_SIMULATION_SUBSTEPS,
    ConfigError,
    DataError,
    PhysicsSystem,
    Task,
    TaskParams,
    Trajectory,
    deep_merge,
    hookimpl,
    uniform,
    unit_vectors,
    with_default,
)
from pivf.plugins.tasks.paig import paig_preset

__all__ = ["Angular", "MujocoMotorPendulum", "MujocoPendulum", "MujocoPendulumEnvironment", "MujocoSpring",
           "advance_states", "frame_cost", "geom_positions", "mujoco_problem", "pivf_tasks", "wrap"]

BACKEND_ENV = "MUJOCO_GL"
_PROBE_XML = '<mujoco><worldbody><geom type="sphere" size="1"/></worldbody></mujoco>'
#: sequences proposed per round while rejection sampling
_PROPOSALS = 256
#: rounds of proposals before a task is declared unable to produce its data
_MAX_ROUNDS = 100


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _load_mujoco() -> ModuleType:
    """``import mujoco`` with an offscreen backend chosen first (MuJoCo reads it on import). An empty
    ``MUJOCO_GL`` counts as unset: MuJoCo would take it for GLFW, which needs a display."""
    if not os.environ.get(BACKEND_ENV, "").strip():
        os.environ[BACKEND_ENV] = "egl" if torch.cuda.is_available() else "osmesa"
    import mujoco

    return mujoco


@functools.cache
def mujoco_problem() -> str | None:
    """Why MuJoCo cannot simulate and render on this machine, in one line, or None."""
    try:
        mujoco = _load_mujoco()
    except ImportError as exc:
        if exc.name == "mujoco":
            return "the mujoco package is not installed (pip install 'pivf[mujoco]')"
        return f"MuJoCo failed to import with {BACKEND_ENV}={os.environ[BACKEND_ENV]}: {_one_line(exc)}"
    except Exception as exc:  # noqa: BLE001 - an OpenGL binding failing to find its library
        return f"MuJoCo failed to import with {BACKEND_ENV}={os.environ[BACKEND_ENV]}: {_one_line(exc)}"
    try:
        with mujoco.Renderer(mujoco.MjModel.from_xml_string(_PROBE_XML), 8, 8) as renderer:
            renderer.render()
    except Exception as exc:  # noqa: BLE001 - any failure of the GL stack
        return (f"MuJoCo cannot render offscreen with {BACKEND_ENV}={os.environ[BACKEND_ENV]} ({_one_line(exc)}); "
                "install OSMesa (Debian: libosmesa6) or an EGL driver")
    return None


def project(points: np.ndarray, camera_position: np.ndarray, camera_rotation: np.ndarray, fovy_degrees: float,
            size: int) -> np.ndarray:
    """Pixel coordinates (..., 2) of world points (..., 3) in a square image from MuJoCo's camera.

    MuJoCo's camera looks along its −z axis with +y up; ``camera_rotation`` (3, 3) holds its axes as
    columns (``data.cam_xmat``). The principal point is the image centre and pixel i spans [i, i+1).
    """
    local = (points - camera_position) @ camera_rotation
    focal = 0.5 * size / math.tan(math.radians(fovy_degrees) / 2)
    depth = -local[..., 2]
    return np.stack((size / 2 + focal * local[..., 0] / depth, size / 2 - focal * local[..., 1] / depth), -1)


def geom_positions(model: Any, data: Any, camera: str | int, geoms: Sequence[str], size: int) -> np.ndarray:
    """(K, 2) pixel positions, in a square image from ``camera``, of the centres of ``geoms`` in a
    forwarded ``MjData``."""
    camera_id = model.camera(camera).id
    ids = [model.geom(name).id for name in geoms]
    return project(data.geom_xpos[ids], data.cam_xpos[camera_id], data.cam_xmat[camera_id].reshape(3, 3),
                   model.cam_fovy[camera_id], size)


def advance_states(mujoco: ModuleType, model: Any, trajectory: Trajectory, offsets: list[float], dt: float,
                   step: float, positions: Callable[[Any], np.ndarray]) -> list[Trajectory]:
    """``Task.advance`` for a MuJoCo model stepped by ``step``: from each frame's state, under the
    frame's input, to each offset exactly (the timestep shortened where ``step`` does not divide the
    way, and restored after); ``positions`` reads the objects' pixels from a forwarded ``MjData``."""
    data = mujoco.MjData(model)
    n, t, k = trajectory.positions.shape[:3]
    q, p = trajectory.q.cpu().numpy(), trajectory.p.cpu().numpy()
    controls = None if trajectory.controls is None else trajectory.controls.cpu().numpy()
    states = [(np.empty_like(q), np.empty_like(p), np.empty((n, t, k, 2))) for _ in offsets]
    try:
        for i in range(n):
            for j in range(t):
                mujoco.mj_resetData(model, data)
                data.qpos[:], data.qvel[:] = q[i, j], p[i, j]
                if controls is not None:
                    data.ctrl[:] = controls[i, j]
                now = 0.0
                for (later_q, later_p, seen), offset in zip(states, offsets, strict=True):
                    span = (offset - now) * dt
                    if span > 0:
                        steps = max(1, math.ceil(span / step - 1e-9))
                        model.opt.timestep = span / steps
                        mujoco.mj_step(model, data, nstep=steps)
                        now = offset
                    mujoco.mj_forward(model, data)
                    later_q[i, j], later_p[i, j], seen[i, j] = data.qpos, data.qvel, positions(data)
    finally:
        model.opt.timestep = step
    device = trajectory.q.device
    return [Trajectory(torch.from_numpy(later_q).to(device), torch.from_numpy(later_p).to(device),
                       torch.from_numpy(seen).to(device, trajectory.positions.dtype), trajectory.controls)
            for later_q, later_p, seen in states]


def mujoco_preset(physics: dict[str, Any], n_objects: int, dt: float) -> dict[str, Any]:
    """PAIG's layout for 32-px MuJoCo video: the encoder subtracts the fixed camera's backdrop, and
    leapfrog integrates (with a rigid rod, semi-implicit Euler is first-order with a large constant)."""
    return deep_merge(paig_preset(physics, 32, n_objects, 4, 6, 20, dt, 6e-4, 3.0),
                      {"encoder": {"background": "median"}, "integrator": {"name": "leapfrog", "substeps": 5}})


class MujocoTaskParams(TaskParams):
    ground_truth: dict[str, float] = Field({}, max_length=0, description="not used: the scene's own params set "
                                                                         "the physics, and the truth follows")
    substeps: int = Field(100, ge=1, le=MAX_SIMULATION_SUBSTEPS,
                          description="MuJoCo steps per frame interval (its timestep is dt / substeps)")
    supersample: int = Field(2, ge=1, le=8, description="render at this multiple of image_size, then average down")
    margin: float = Field(1.0, ge=0, description="sequences where a body's centre comes this close (px) to an edge "
                                                 "are redrawn")
    fovy: float = Field(45.0, gt=0, lt=180, description="the camera's vertical field of view in degrees")
    shadows: bool = Field(False, description="let the key light cast shadows")


MTP = TypeVar("MTP", bound=MujocoTaskParams)


class MujocoTask(Task[MTP]):
    """Base of MuJoCo tasks: a scene (``model_xml``), initial joint states (``sample_initial``:
    qpos (N, nq) and qvel (N, nv), float64) and the geoms whose centres are the objects."""

    Params = MujocoTaskParams
    #: geoms whose centres are the objects' positions, in object order
    tracked_geoms: ClassVar[tuple[str, ...]] = ()
    #: geoms the camera's clutter replaces (the scene's backdrop), with the empty space behind it
    backdrop_geoms: ClassVar[tuple[str, ...]] = ()
    camera: ClassVar[str] = "camera"

    def __init__(self, params: MTP | dict[str, Any] | None = None) -> None:
        super().__init__(params)
        self._mujoco: ModuleType | None = None
        self._model: Any = None
        self._renderer: Any = None

    @classmethod
    def unavailable(cls) -> str | None:
        return mujoco_problem()

    def model_xml(self) -> str:
        raise NotImplementedError(f"task '{self.name}' defines no MuJoCo scene")

    def physics_params(self) -> dict[str, Any]:
        return {}  # the data come from MuJoCo, not from a pivf physics plugin

    def visual_xml(self) -> str:
        """The scene's ``<visual>``: an offscreen buffer for the supersampled frames, a soft headlight,
        shadows only when asked (a 2048² shadow map costs more than the rest of a small frame)."""
        side = self.params.image_size * self.params.supersample
        shadow = 2048 if self.params.shadows else 0
        return f"""<visual>
    <global offwidth="{side}" offheight="{side}"/>
    <quality shadowsize="{shadow}" offsamples="0"/>
    <headlight ambient="0.3 0.3 0.3" diffuse="0.35 0.35 0.35" specular="0.05 0.05 0.05"/>
  </visual>"""

    # --- the engine --------------------------------------------------------------------------------
    def _engine(self) -> tuple[ModuleType, Any]:
        """mujoco and the compiled scene, made once per task."""
        if self._model is None:
            problem = mujoco_problem()
            if problem:
                raise DataError(f"task '{self.name}' is unavailable: {problem}")
            self._mujoco = _load_mujoco()
            self._model = self._mujoco.MjModel.from_xml_string(self.model_xml())
            self._model.opt.timestep = self.params.dt / self.params.substeps
        assert self._mujoco is not None
        return self._mujoco, self._model

    def _run(self, qpos: np.ndarray, qvel: np.ndarray, length: int,
             controls: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One sequence from its initial state, under ``controls`` (T, m) when actuated: qpos (T, nq),
        qvel (T, nv) and positions (T, K, 2)."""
        mujoco, model = self._engine()
        data = mujoco.MjData(model)
        data.qpos[:], data.qvel[:] = qpos, qvel
        states_q, states_p, seen = [], [], []
        for frame in range(length):
            if frame:
                if controls is not None:
                    data.ctrl[:] = controls[frame - 1]
                mujoco.mj_step(model, data, nstep=self.params.substeps)
            mujoco.mj_forward(model, data)
            states_q.append(data.qpos.copy())
            states_p.append(data.qvel.copy())
            seen.append(self.positions(data))
        return np.stack(states_q), np.stack(states_p), np.stack(seen)

    def positions(self, data: Any) -> np.ndarray:
        """(K, 2) pixel positions of the tracked geoms in a forwarded ``MjData``."""
        _, model = self._engine()
        return geom_positions(model, data, self.camera, self.tracked_geoms, self.params.image_size)

    def sample_controls(self, n: int, length: int, generator: torch.Generator) -> Tensor | None:
        """Inputs (n, length, m) to record sequences under; None for a task without actuators."""
        return None

    def simulate(self, n: int, length: int, generator: torch.Generator,
                 device: torch.device | str = "cpu") -> Trajectory:
        kept: list[tuple[np.ndarray, ...]] = []
        proposed = 0
        for _ in range(_MAX_ROUNDS):
            if len(kept) >= n:
                break
            qpos, qvel = self.sample_initial(_PROPOSALS, generator)
            inputs = self.sample_controls(_PROPOSALS, length, generator)
            for i in range(_PROPOSALS):
                u = None if inputs is None else inputs[i].numpy()
                q, p, seen = self._run(qpos[i].numpy(), qvel[i].numpy(), length, u)
                proposed += 1
                if self._in_view(seen) and bool(self.accept(torch.from_numpy(q)[None], torch.from_numpy(p)[None])[0]):
                    kept.append((q, p, seen) if u is None else (q, p, seen, u))
                if len(kept) == n:
                    break
        if len(kept) < n:
            raise DataError(f"task '{self.name}': only {len(kept)} of {proposed} simulated sequences stayed in view; "
                            "the camera or the initial states leave too little room")
        states = [torch.from_numpy(np.stack(parts)).to(device) for parts in zip(*kept, strict=True)]
        return Trajectory(*states)

    def _in_view(self, seen: np.ndarray) -> bool:
        low, high = self.params.margin, self.params.image_size - self.params.margin
        return bool(((seen >= low) & (seen <= high)).all())

    # --- the camera --------------------------------------------------------------------------------
    def render(self, trajectory: Trajectory) -> Tensor:
        mujoco, model = self._engine()
        size = self.params.image_size
        data = mujoco.MjData(model)
        n, t = trajectory.q.shape[:2]
        q, p = trajectory.q.cpu().numpy(), trajectory.p.cpu().numpy()
        frames = np.empty((n, t, size, size, 3), dtype=np.uint8)
        for i in range(n):
            for j in range(t):
                data.qpos[:], data.qvel[:] = q[i, j], p[i, j]
                mujoco.mj_forward(model, data)
                frames[i, j] = self.photograph(data)
        return torch.from_numpy(frames).to(trajectory.q.device)

    def photograph(self, data: Any) -> np.ndarray:
        """The camera's uint8 (H, W, 3) frame of a forwarded ``MjData``, averaged down from ``supersample``."""
        size, scale = self.params.image_size, self.params.supersample
        image = self._scene_renderer(data).render().reshape(size, scale, size, scale, 3).mean((1, 3))
        return np.rint(image).astype(np.uint8)

    def _scene_renderer(self, data: Any) -> Any:
        """The task's renderer, made once, with ``data``'s scene through the task's camera."""
        mujoco, model = self._engine()
        size, scale = self.params.image_size, self.params.supersample
        if self._renderer is None:
            self._renderer = mujoco.Renderer(model, size * scale, size * scale)
            atexit.register(self._renderer.close)  # before the interpreter tears down OpenGL's bindings
        self._renderer.update_scene(data, camera=self.camera)
        return self._renderer

    def render_with_backdrop(self, trajectory: Trajectory) -> tuple[Tensor, Tensor]:
        """The frames and, from MuJoCo's segmentation of the same scene, the share of each pixel's
        supersamples that show a ``backdrop_geoms`` geom or nothing."""
        mujoco, model = self._engine()
        size, scale = self.params.image_size, self.params.supersample
        backdrop = [model.geom(name).id for name in self.backdrop_geoms]
        geom = int(mujoco.mjtObj.mjOBJ_GEOM)
        data = mujoco.MjData(model)
        n, t = trajectory.q.shape[:2]
        q, p = trajectory.q.cpu().numpy(), trajectory.p.cpu().numpy()
        frames = np.empty((n, t, size, size, 3), dtype=np.uint8)
        weight = np.empty((n, t, size, size), dtype=np.float32)
        for i in range(n):
            for j in range(t):
                data.qpos[:], data.qvel[:] = q[i, j], p[i, j]
                mujoco.mj_forward(model, data)
                frames[i, j] = self.photograph(data)
                renderer = self._scene_renderer(data)
                renderer.enable_segmentation_rendering()
                try:
                    ids, types = np.moveaxis(renderer.render(), -1, 0)
                finally:
                    renderer.disable_segmentation_rendering()
                behind = (ids < 0) | ((types == geom) & np.isin(ids, backdrop))
                weight[i, j] = behind.reshape(size, scale, size, scale).mean((1, 3))
        device = trajectory.q.device
        return torch.from_numpy(frames).to(device), torch.from_numpy(weight).to(device)

    def advance(self, trajectory: Trajectory, offsets: list[float]) -> list[Trajectory]:
        mujoco, model = self._engine()
        return advance_states(mujoco, model, trajectory, offsets, self.params.dt,
                              self.params.dt / self.params.substeps, self.positions)


# --- the pendulum ------------------------------------------------------------------------------------

class MujocoPendulumParams(MujocoTaskParams):
    n_objects: Literal[1] = Field(1, description="objects in the scene (exactly 1 in this task)")
    dt: float = with_default(TaskParams, "dt", 0.1)
    rod_length: float = Field(0.9, gt=0, description="rod length L in metres (pivot to the bob's centre)")
    gravity: float = Field(9.81, gt=0, description="gravitational acceleration in m/s²")
    damping: float = Field(0.3, ge=0, description="damping rate b in 1/s: θ̈ = −(g/L) sin θ − b θ̇")
    mass: float = Field(1.0, gt=0, description="bob mass in kg")
    bob_radius: float = Field(0.15, gt=0, description="bob radius as a fraction of L")
    bob_colour: tuple[float, float, float] = Field((0.85, 0.2, 0.1), description="bob RGB in 0-1")
    camera_distance: float = Field(2.9, gt=0, description="camera distance from the swing plane, in multiples of L")
    camera_drop: float = Field(0.45, description="how far below the pivot the camera looks, in multiples of L")
    max_angle: float = Field(1.35, gt=0, lt=math.pi, description="largest swing (rad) a sequence may reach")
    min_angle: float = Field(0.35, ge=0, description="smallest swing (rad) a sequence must reach")


class MujocoPendulum(MujocoTask[MujocoPendulumParams]):
    """A shaded bob on a thin rod swinging in front of a checkered backdrop, filmed square-on: the
    swing plane is parallel to the image, so the bob's image moves on an exact circle.

    The bob is a point mass (its sphere is drawn, its inertia is negligible), so the true ω² is g/L
    exactly, and the joint's damping is b·m·L², so θ̈ = −(g/L) sin θ − b θ̇ whatever the mass. The camera keeps its
    distance in multiples of L, so every length looks the same in the image and only the timing
    tells them apart. Initial angles and angular velocities are uniform; a sequence is kept when its
    swing's amplitude (from its energy) lies between ``min_angle`` and ``max_angle``.
    """

    name = "mujoco_pendulum"
    description = "MuJoCo: a shaded 3-D pendulum filmed by a fixed camera (g/L, damping)"
    physics = "pivot_pendulum"
    tracked_geoms = ("bob",)
    backdrop_geoms = ("backdrop",)
    name_template = "mujoco_pendulum_sl{length}_L{rod_length}_g{gravity}_b{damping}"
    # the learner starts from the image centre for the pivot, 8 px for the rod, ω² = 1 and no damping
    preset = mujoco_preset({"name": "pivot_pendulum"}, 1, 0.1)

    def true_parameters(self) -> dict[str, float]:
        """ω² = g/L and b, and the pivot and rod as the camera sees them, in pixels."""
        p = self.params
        focal = 0.5 * p.image_size / math.tan(math.radians(p.fovy) / 2)
        scale = focal / (p.camera_distance * p.rod_length)  # pixels per metre in the swing plane
        return {"g_over_l": p.gravity / p.rod_length, "damping": p.damping, "length": scale * p.rod_length,
                "pivot_x": p.image_size / 2, "pivot_y": p.image_size / 2 - scale * p.camera_drop * p.rod_length}

    def model_xml(self) -> str:
        p = self.params
        length, radius = p.rod_length, p.bob_radius * p.rod_length
        red, green, blue = p.bob_colour
        return f"""
<mujoco model="pendulum">
  <option gravity="0 0 {-p.gravity}" integrator="RK4"/>
  {self.visual_xml()}
  <asset>
    <texture name="backdrop" type="2d" builtin="checker" width="64" height="64"
             rgb1="0.62 0.64 0.68" rgb2="0.54 0.56 0.6"/>
    <material name="backdrop" texture="backdrop" texrepeat="6 6"/>
    <material name="bob" rgba="{red} {green} {blue} 1" specular="0.6" shininess="0.6"/>
    <material name="rod" rgba="0.25 0.25 0.28 1"/>
  </asset>
  <worldbody>
    <light pos="{-length} {-2 * length} {2 * length}" dir="1 2 -2" diffuse="0.55 0.55 0.55"
           castshadow="{str(p.shadows).lower()}"/>
    <geom name="backdrop" type="plane" pos="0 {0.6 * length} 0" zaxis="0 -1 0"
          size="{4 * length} {4 * length} 0.01" material="backdrop" contype="0" conaffinity="0"/>
    <geom name="mount" type="box" pos="0 {0.3 * length} 0" size="{0.06 * length} {0.3 * length} {0.03 * length}"
          material="rod" contype="0" conaffinity="0"/>
    <body name="pendulum">
      <joint name="swing" type="hinge" axis="0 -1 0" damping="{p.damping * p.mass * length ** 2}"/>
      <inertial pos="0 0 {-length}" mass="{p.mass}" diaginertia="1e-9 1e-9 1e-9"/>
      <geom name="rod" type="capsule" fromto="0 0 0 0 0 {-length}" size="{0.012 * length}" material="rod"
            contype="0" conaffinity="0"/>
      <geom name="bob" type="sphere" pos="0 0 {-length}" size="{radius}" material="bob" contype="0" conaffinity="0"/>
    </body>
    <camera name="camera" pos="0 {-p.camera_distance * length} {-p.camera_drop * length}" xyaxes="1 0 0 0 0 1"
            fovy="{p.fovy}"/>
  </worldbody>
  {self.actuator_xml()}
</mujoco>"""

    def actuator_xml(self) -> str:
        """The scene's ``<actuator>``: none, the pendulum swings freely."""
        return ""

    def sample_initial(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """Angles and angular velocities whose undamped amplitude lies in [min_angle, max_angle]."""
        p = self.params
        omega = math.sqrt(p.gravity / p.rod_length)
        kept_q, kept_v, count = [], [], 0
        while count < n:
            angle = uniform(generator, (4 * n, 1), -p.max_angle, p.max_angle)
            rate = uniform(generator, (4 * n, 1), -omega, omega)
            amplitude = torch.acos((angle.cos() - rate**2 / (2 * omega**2)).clamp(-1, 1)).squeeze(1)
            ok = (amplitude >= p.min_angle) & (amplitude <= p.max_angle)
            kept_q.append(angle[ok])
            kept_v.append(rate[ok])
            count += int(ok.sum())
        return torch.cat(kept_q)[:n], torch.cat(kept_v)[:n]


# --- the pendulum under a motor: data for control ------------------------------------------------

#: the cost of a frame weighs the angle's rate and the input against the angle to the goal
RATE_WEIGHT = 0.1
INPUT_WEIGHT = 0.01
#: an episode succeeds when the angle stays this close to the goal (rad) over its last quarter
SUCCESS_TOLERANCE = 0.3
#: episodes start at rest this close (rad) to hanging straight down, drawn per episode
START_SPREAD = 0.2


class MujocoMotorPendulumParams(MujocoPendulumParams):
    max_torque: float = Field(5.3, gt=0, description="the motor's torque at input ±1, in N·m (0.6 of the "
                                                      "gravity torque m·g·L at horizontal by default: too weak "
                                                      "to lift the bob straight up, so a swing-up must pump)")
    camera_distance: float = with_default(MujocoPendulumParams, "camera_distance", 3.5)
    camera_drop: float = with_default(MujocoPendulumParams, "camera_drop", 0.0)
    bob_radius: float = with_default(MujocoPendulumParams, "bob_radius", 0.2)
    max_rate: float = Field(1.5, gt=0, description="largest initial angular speed, in multiples of ω")


class MujocoMotorPendulum(MujocoPendulum):
    """The MuJoCo pendulum with a motor at the pivot, filmed with the pivot at the image's centre so
    the bob stays in view all the way round, upright included. Sequences start anywhere on the
    circle and are recorded under random inputs, uniform in [−1, 1] and held for one frame interval
    each (stored beside the frames as ``<split>_controls``).

    The motor's torque is ``max_torque``·u, so θ̈ = −(g/L) sin θ − b θ̇ + a·u with the actuation
    coefficient a = max_torque / (m L²); θ grows towards the image's right. A heavier bob changes a
    and nothing else that video shows.
    """

    name = "mujoco_pendulum_motor"
    description = "MuJoCo: the pendulum under a motor's random torques, for learning to control it (g/L, a)"
    n_controls = 1
    name_template = "mujoco_pendulum_motor_sl{length}_L{rod_length}_m{mass}_tau{max_torque}"
    preset = deep_merge(mujoco_preset({"name": "pivot_pendulum", "learn_actuation": True}, 1, 0.1),
                        {"data": {"n_train": 1000}})
    Params = MujocoMotorPendulumParams
    params: MujocoMotorPendulumParams

    def true_parameters(self) -> dict[str, float]:
        p = self.params
        return {**super().true_parameters(), "actuation": p.max_torque / (p.mass * p.rod_length**2)}

    def actuator_xml(self) -> str:
        return f"""<actuator>
    <motor name="motor" joint="swing" gear="{self.params.max_torque}" ctrlrange="-1 1" ctrllimited="true"/>
  </actuator>"""

    def sample_initial(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """Angles anywhere on the circle and angular speeds up to ``max_rate``·ω."""
        p = self.params
        top = p.max_rate * math.sqrt(p.gravity / p.rod_length)
        return uniform(generator, (n, 1), -math.pi, math.pi), uniform(generator, (n, 1), -top, top)

    def sample_controls(self, n: int, length: int, generator: torch.Generator) -> Tensor:
        return uniform(generator, (n, length, 1), -1.0, 1.0)

    # --- control (``pivf control``: this task is a ``ControlledTask``) ------------------------------
    def environment(self) -> MujocoPendulumEnvironment:
        """A live pendulum to control from its frames."""
        return MujocoPendulumEnvironment(self)

    def starts(self, n: int, generator: torch.Generator) -> list[float]:
        """Episodes start at rest within ``START_SPREAD`` of hanging straight down."""
        return ((torch.rand(n, generator=generator, dtype=torch.float64) * 2 - 1) * START_SPREAD).tolist()

    def cost(self, physics: PhysicsSystem, q: Tensor, p: Tensor, u: Tensor, goal: float) -> Tensor:
        """``frame_cost`` of the model's angle, read from its state through ``angle(q, p)``."""
        angle, rate = angular(physics).angle(q, p)
        return frame_cost(angle, rate, u, goal)

    def state_cost(self, state: tuple[float, ...], u: float, goal: float) -> float:
        angle, rate = state
        return float(frame_cost(torch.tensor(angle), torch.tensor(rate), torch.tensor([u]), goal))

    def success(self, states: Sequence[tuple[float, ...]], goal: float) -> bool:
        """Within ``SUCCESS_TOLERANCE`` of the goal at every frame of the episode's last quarter."""
        last = [angle for angle, _ in states[-max(1, (len(states) - 1) // 4):]]
        return bool((wrap(torch.tensor(last, dtype=torch.float64) - goal).abs() <= SUCCESS_TOLERANCE).all())

    def true_model(self, physics: PhysicsSystem) -> PhysicsSystem:
        """The trained physics (``pivot_pendulum``) with the simulator's ω², rod, pivot, damping and motor."""
        angular(physics)
        truth = self.true_parameters()
        return type(physics)({**physics.params.model_dump(), "g_over_l": truth["g_over_l"],
                              "length": truth["length"], "pivot": (truth["pivot_x"], truth["pivot_y"]),
                              "damping": truth["damping"], "actuation": truth["actuation"]})

    def true_state(self, environment: MujocoPendulumEnvironment) -> tuple[Tensor, Tensor]:
        """The bob where the camera shows it and the velocity θ̇·ℓ along t̂ = (r̂_y, −r̂_x), ℓ the rod's
        length in pixels."""
        angle, rate = environment.state()
        q = torch.tensor(environment.bob(), dtype=torch.float32)[None]
        p = rate * self.true_parameters()["length"] * torch.tensor([[[math.cos(angle), -math.sin(angle)]]])
        return q, p


@runtime_checkable
class Angular(Protocol):
    """A physics whose state has an angle from the downward vertical and its rate (``pivot_pendulum``)."""

    def angle(self, q: Tensor, p: Tensor) -> tuple[Tensor, Tensor]:
        """(θ, θ̇), each of q's shape without the object and coordinate axes."""


def angular(physics: PhysicsSystem) -> Angular:
    """``physics``, which must read a pendulum's angle from its state (``Angular``) to be planned on."""
    if not isinstance(physics, Angular):
        raise ConfigError(f"physics '{physics.name}' has no pendulum angle to control; the motor pendulum is "
                          "controlled through one that has, such as pivot_pendulum")
    return physics


def wrap(angle: Tensor) -> Tensor:
    """Angles wrapped into (−π, π]."""
    return angle - 2 * math.pi * torch.ceil((angle - math.pi) / (2 * math.pi))


def frame_cost(angle: Tensor, rate: Tensor, u: Tensor, goal: float) -> Tensor:
    """The cost of one frame: the squared angle to the goal, wrapped to (−π, π], plus ``RATE_WEIGHT``·θ̇²
    and ``INPUT_WEIGHT``·u² (``u`` has a trailing input axis)."""
    return wrap(angle - goal) ** 2 + RATE_WEIGHT * rate**2 + INPUT_WEIGHT * (u**2).sum(-1)


class MujocoPendulumEnvironment:
    """One motor pendulum, stepped a frame interval at a time under an input and photographed by
    the task's camera: what a controller sees (frames) and what scores it (the true angle θ from
    the downward vertical and its rate, never shown to a learned controller)."""

    def __init__(self, task: MujocoMotorPendulum) -> None:
        self.task = task
        self.mujoco, self.model = task._engine()
        self.data = self.mujoco.MjData(self.model)
        self.dt = task.params.dt

    def reset(self, start: float, rate: float = 0.0) -> np.ndarray:
        """Start at the angle ``start`` (rad from hanging down) and ``rate``; returns the first frame."""
        self.mujoco.mj_resetData(self.model, self.data)
        self.data.qpos[0], self.data.qvel[0] = start, rate
        self.mujoco.mj_forward(self.model, self.data)
        return self.task.photograph(self.data)

    def step(self, u: float) -> np.ndarray:
        """Apply input ``u`` (clipped to [−1, 1]) for one frame interval; returns the next frame."""
        self.data.ctrl[0] = u
        self.mujoco.mj_step(self.model, self.data, nstep=self.task.params.substeps)
        self.mujoco.mj_forward(self.model, self.data)
        return self.task.photograph(self.data)

    def state(self) -> tuple[float, float]:
        """The true (θ, θ̇)."""
        return float(self.data.qpos[0]), float(self.data.qvel[0])

    def bob(self) -> np.ndarray:
        """Where the bob appears, (1, 2) pixels."""
        return self.task.positions(self.data)


# --- two balls joined by a spring ----------------------------------------------------------------

class MujocoSpringParams(MujocoTaskParams):
    n_objects: Literal[2] = Field(2, description="objects in the scene (exactly 2 in this task)")
    stiffness: float = Field(4.0, gt=0, description="spring constant per unit mass, 1/s² (the balls weigh 1 kg)")
    rest_length: float = Field(0.75, gt=0, description="the spring's rest length in metres")
    speed: float = Field(0.5, ge=0, description="each ball's initial speed in m/s, in a random direction")
    ball_radius: float = Field(0.12, gt=0, description="ball radius in metres")
    view: float = Field(1.0, gt=0, description="half the side of the table area the camera sees, in metres")


class MujocoSpring(MujocoTask[MujocoSpringParams]):
    """Two shaded balls (blue and green) on a wooden-looking table seen from straight above, joined
    by a MuJoCo spatial tendon whose spring pulls them towards its rest length; they slide without
    friction and pass through each other. In the image this is PAIG's spring: k = stiffness per unit
    mass, and half the rest length ``l`` in pixels. Initial states follow PAIG's generator: centre
    of mass uniform, a random axis, a separation of rest_length·U(0.5, 1.5), each ball a random
    direction at ``speed``.
    """

    name = "mujoco_spring"
    description = "MuJoCo: two balls joined by a spring on a table, seen from above (k, l)"
    physics = "spring"
    tracked_geoms = ("ball0", "ball1")
    backdrop_geoms = ("table",)
    name_template = "mujoco_spring_sl{length}_k{stiffness}_rest{rest_length}"
    preset = mujoco_preset({"name": "spring"}, 2, 0.3)

    def _camera_height(self) -> float:
        return self.params.view / math.tan(math.radians(self.params.fovy) / 2)

    def true_parameters(self) -> dict[str, float]:
        pixels_per_metre = self.params.image_size / (2 * self.params.view)
        return {"k": self.params.stiffness, "l": pixels_per_metre * self.params.rest_length / 2}

    def model_xml(self) -> str:
        p = self.params
        balls = "".join(f"""
    <body name="body{j}" pos="0 0 {p.ball_radius}">
      <joint name="x{j}" type="slide" axis="1 0 0"/>
      <joint name="y{j}" type="slide" axis="0 1 0"/>
      <geom name="ball{j}" type="sphere" size="{p.ball_radius}" material="ball{j}" mass="1"
            contype="0" conaffinity="0"/>
      <site name="anchor{j}" size="{p.ball_radius / 4}"/>
    </body>""" for j in range(2))
        return f"""
<mujoco model="spring">
  <option gravity="0 0 -9.81" integrator="RK4"/>
  {self.visual_xml()}
  <asset>
    <texture name="table" type="2d" builtin="gradient" width="64" height="64"
             rgb1="0.55 0.42 0.3" rgb2="0.45 0.33 0.22"/>
    <material name="table" texture="table" texrepeat="3 3"/>
    <material name="ball0" rgba="0.15 0.3 0.9 1" specular="0.6" shininess="0.6"/>
    <material name="ball1" rgba="0.15 0.8 0.25 1" specular="0.6" shininess="0.6"/>
  </asset>
  <worldbody>
    <light pos="{-p.view} {-p.view} {3 * p.view}" dir="1 1 -3" diffuse="0.55 0.55 0.55"
           castshadow="{str(p.shadows).lower()}"/>
    <geom name="table" type="plane" size="{4 * p.view} {4 * p.view} 0.01" material="table" contype="0" conaffinity="0"/>
    {balls}
    <camera name="camera" pos="0 0 {p.ball_radius + self._camera_height()}" xyaxes="1 0 0 0 1 0" fovy="{p.fovy}"/>
  </worldbody>
  <tendon>
    <spatial name="spring" stiffness="{p.stiffness}" springlength="{p.rest_length}" width="{p.ball_radius / 8}"
             rgba="0.8 0.8 0.8 1">
      <site site="anchor0"/>
      <site site="anchor1"/>
    </spatial>
  </tendon>
</mujoco>"""

    def sample_initial(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        p = self.params
        reach = p.view - p.rest_length - p.ball_radius
        if reach <= 0:
            raise DataError(f"task '{self.name}': a rest length of {p.rest_length:g} m does not fit in the view")
        centre = uniform(generator, (n, 1, 2), -reach, reach)
        axis = unit_vectors(generator, (n, 1))
        half_separation = p.rest_length / 2 * uniform(generator, (n, 1, 1), 0.5, 1.5)
        position = centre + half_separation * torch.cat((axis, -axis), dim=1)
        velocity = p.speed * unit_vectors(generator, (n, 2))
        return position.reshape(n, 4), velocity.reshape(n, 4)


@hookimpl
def pivf_tasks() -> list[type]:
    return [MujocoPendulum, MujocoMotorPendulum, MujocoSpring]

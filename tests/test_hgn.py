"""The HGN variant: its encoder and decoder plugins, the objective (modes, β and GECO), metrics and
inference helpers, on a tiny model and rendered videos of a swinging pendulum."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import pivf
from pivf.api import still_time, valid_prediction_time
from pivf.core.data.frames import as_float
from pivf.core.kernel.build import build_objective
from pivf.core.kernel.config import resolve_config
from pivf.core.kernel.errors import ConfigError, PluginParamsError
from pivf.core.kernel.inference import predict, rollout_frames, sample
from pivf.core.kernel.pipeline import Pipeline
from pivf.plugins.objectives.hgn import MSE_SCALE, HgnObjective

DT = 0.125
INPUT, PRED = 3, 5
SIZE = 16


def pendulum_video(n: int, length: int, seed: int = 0) -> torch.Tensor:
    """uint8 (n, length, SIZE, SIZE, 1): a Gaussian ball on a grey background swinging as the
    small-angle pendulum θ = A·cos(√(g/l)·t + φ) with g/l = 3 (the HGN pendulum's constants)."""
    g = torch.Generator().manual_seed(seed)
    amplitude = 0.5 + 0.7 * torch.rand(n, 1, generator=g)
    phase = 2 * math.pi * torch.rand(n, 1, generator=g)
    theta = amplitude * torch.cos(math.sqrt(3.0) * torch.arange(length) * DT + phase)
    arm = 0.3 * SIZE
    x = SIZE / 2 + arm * torch.sin(theta)
    y = SIZE / 2 + arm * torch.cos(theta)
    centres = torch.arange(SIZE) + 0.5
    d2 = (centres - x[..., None, None]) ** 2 + (centres[:, None] - y[..., None, None]) ** 2
    image = (0.33 + torch.exp(-d2 / (2 * 1.2**2))).clamp(max=1.0)
    return (image * 255).round().to(torch.uint8)[..., None]


def tiny_pipeline(integrator: str = "leapfrog", variational: bool = True, seed: int = 0,
                  latent: str = "maps") -> Pipeline:
    torch.manual_seed(seed)
    shared = {"image_size": SIZE, "channels": 1, "latent_channels": 4, "latent": latent}
    encoder = pivf.encoder("hgn", **shared, input_steps=INPUT, variational=variational, first_channels=8,
                           hidden_channels=16, hidden_layers=2, z_channels=8, transformer_channels=16)
    physics = pivf.physics("hamiltonian_latent", latent_channels=4, latent=latent, conv_channels=[8, 16, 16],
                           hidden=[16, 16])
    decoder = pivf.decoder("hgn_conv", **shared, filters=16)
    return Pipeline(encoder, physics, pivf.integrator(integrator, substeps=1), decoder, dt=DT)


def objective(*overrides: str) -> HgnObjective:
    config = resolve_config(task="pendulum", overrides=[f"data.input_steps={INPUT}", f"data.pred_steps={PRED}",
                                                        *overrides])
    return build_objective(config)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The networks here are tiny: more threads only add synchronisation (and, on a busy machine,
    long waits for descheduled threads)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def frames() -> torch.Tensor:
    return as_float(pendulum_video(8, INPUT + PRED))


def train(pipeline: Pipeline, hgn: HgnObjective, frames: torch.Tensor, steps: int) -> list[dict[str, torch.Tensor]]:
    optimizer = torch.optim.Adam(pipeline.parameters(), lr=1e-3)
    history = []
    for _ in range(steps):
        losses = hgn.losses(pipeline, frames)
        optimizer.zero_grad()
        losses["loss"].backward()
        optimizer.step()
        history.append({k: v.detach() for k, v in losses.items()})
    return history


# --- the plugins ----------------------------------------------------------------------------------

@pytest.mark.parametrize("size", [8, 16, 32, 64])
def test_encoder_and_decoder_scale_between_latent_and_image(size):
    shared = {"image_size": size, "channels": 3, "latent_channels": 16}
    encoder = pivf.encoder("hgn", **shared, input_steps=2, hidden_layers=1)
    decoder = pivf.decoder("hgn_conv", **shared, filters=8)
    encoded = encoder(torch.rand(2, 4, 3, size, size))
    assert encoded.q0.shape == encoded.p0.shape == (2, 16, 4, 4)
    assert encoded.kl.shape == (2,) and bool((encoded.kl > 0).all())
    assert decoder(encoded.q0).shape == (2, 3, size, size)


def test_a_vector_latent_goes_through_the_latent_maps_by_linear_layers():
    torch.manual_seed(0)
    shared = {"image_size": 16, "channels": 3, "latent_channels": 2, "latent": "vector"}
    encoder = pivf.encoder("hgn", **shared, input_steps=2, hidden_layers=1, variational=False)
    decoder = pivf.decoder("hgn_conv", **shared, filters=8)
    encoded = encoder(torch.rand(5, 4, 3, 16, 16))
    assert encoded.q0.shape == encoded.p0.shape == (5, 2)
    assert encoded.q0.std() > 0 and (encoded.q0 < 0).any()  # a linear head: both signs
    assert decoder(encoded.q0).shape == (5, 3, 16, 16)
    with pytest.raises(ConfigError, match="latent must be the same in every section that has it: "
                                          "physics.latent = maps, encoder.latent = vector"):
        resolve_config(task="pendulum", overrides=["encoder.latent=vector"])


def test_an_angle_in_the_latent_is_read_on_a_circle():
    """With ``angles``, the encoder's q is a direction in (−π, π], and the decoder and the learned
    potential are 2π-periodic in it but not in the other entries."""
    torch.manual_seed(0)
    shared = {"image_size": 16, "channels": 3, "latent_channels": 2, "latent": "vector", "angles": 1}
    encoder = pivf.encoder("hgn", **shared, input_steps=2, hidden_layers=1, variational=False)
    decoder = pivf.decoder("hgn_conv", **shared, filters=8).double()
    physics = pivf.physics("hamiltonian_latent", latent_channels=2, latent="vector", angles=1, hidden=[16]).double()
    encoded = encoder(torch.rand(64, 4, 3, 16, 16))
    assert encoded.q0.shape == encoded.p0.shape == (64, 2)
    assert bool((encoded.q0[:, 0].abs() <= math.pi).all())
    q = torch.randn(5, 2, dtype=torch.float64)
    turned = q + torch.tensor([2 * math.pi, 0.0], dtype=torch.float64)
    shifted = q + torch.tensor([0.0, 2 * math.pi], dtype=torch.float64)
    assert torch.allclose(decoder(turned), decoder(q), rtol=0, atol=1e-9)
    assert torch.allclose(physics.potential(turned), physics.potential(q), rtol=0, atol=1e-9)
    assert not torch.allclose(decoder(shifted), decoder(q), rtol=0, atol=1e-3)
    assert not torch.allclose(physics.potential(shifted), physics.potential(q), rtol=0, atol=1e-3)
    p = torch.randn(5, 2, dtype=torch.float64)
    assert torch.allclose(physics.dp_dt(turned, p), physics.dp_dt(q, p), rtol=0, atol=1e-9)


def test_angles_must_lie_in_one_vector_latent():
    with pytest.raises(PluginParamsError, match="angles are entries of a vector latent"):
        pivf.decoder("hgn_conv", angles=1)
    with pytest.raises(PluginParamsError, match="cannot exceed latent_channels"):
        pivf.physics("hamiltonian_latent", latent="vector", latent_channels=1, angles=2)
    with pytest.raises(ConfigError, match="physics.angles = 0, encoder.angles = 1, decoder.angles = 1 differ"):
        resolve_config(task="pendulum", overrides=["training.recipe=fast", "physics.angles=0"])


def test_decoding_in_cpu_batches_changes_nothing_but_the_speed():
    torch.manual_seed(0)
    q = torch.randn(23, 4, 4, 4, dtype=torch.float64, requires_grad=True)
    decoders = [pivf.decoder("hgn_conv", image_size=16, channels=3, latent_channels=4, filters=8, cpu_batch=n)
                for n in (5, 64)]
    decoders[1].load_state_dict(decoders[0].state_dict())
    frames, grads = [], []
    for decoder in decoders:
        out = decoder.double()(q)
        (grad,) = torch.autograd.grad(out.square().sum(), q)
        frames.append(out)
        grads.append(grad)
    assert torch.allclose(frames[0], frames[1], rtol=0, atol=1e-12)
    assert torch.allclose(grads[0], grads[1], rtol=0, atol=1e-12)
    reference = decoders[0]._decode(q.detach())  # one batch, the input's own memory layout
    assert torch.allclose(frames[0], reference, rtol=0, atol=1e-12)


def test_image_size_must_be_the_latent_size_doubled():
    with pytest.raises(PluginParamsError, match="latent_size"):
        pivf.decoder("hgn_conv", image_size=24)
    with pytest.raises(PluginParamsError, match="latent_size"):
        pivf.encoder("hgn", image_size=4)


def test_initial_state_takes_both_signs(frames):
    encoded = tiny_pipeline().encoder(frames)
    for state in (encoded.q0, encoded.p0):
        assert bool((state < 0).any()) and bool((state > 0).any())


def test_the_encoder_sees_only_its_input_frames(frames):
    encoder = tiny_pipeline().encoder.eval()
    changed = frames.clone()
    changed[:, INPUT:] = 0.0
    assert torch.equal(encoder(frames).q0, encoder(changed).q0)
    changed[:, INPUT - 1] = 0.0
    assert not torch.equal(encoder(frames).q0, encoder(changed).q0)


# --- training -------------------------------------------------------------------------------------

@pytest.mark.parametrize("integrator, latent", [("euler", "maps"), ("leapfrog", "maps"), ("yoshida", "maps"),
                                                ("rk4", "maps"), ("leapfrog", "vector")])
def test_loss_falls_and_the_hamiltonian_learns(integrator, latent, frames):
    pipeline = tiny_pipeline(integrator, latent=latent)
    history = train(pipeline, objective(), frames, steps=8)
    assert history[-1]["loss"] < 0.6 * history[0]["loss"]
    for name, p in pipeline.physics.named_parameters():  # the last step's gradients are still there
        assert p.grad is not None and p.grad.abs().sum() > 0, f"{integrator}: no gradient reached {name}"


def test_gradients_reach_every_network(frames):
    pipeline = tiny_pipeline()
    objective().losses(pipeline, frames)["loss"].backward()
    named = {
        "encoder input conv": pipeline.encoder.features[0].weight,
        "encoder mean head": pipeline.encoder.mean.weight,
        "encoder log-variance head": pipeline.encoder.log_var.weight,
        "transformer first conv": pipeline.encoder.transformer[0].weight,
        "transformer last conv": pipeline.encoder.transformer[-1].weight,
        "kinetic energy": pipeline.physics.kinetic.net[0].weight,
        "potential energy": pipeline.physics.potential.net[0].weight,
        "decoder block": pipeline.decoder.blocks[0].convs[0].weight,
        "decoder output": pipeline.decoder.out.weight,
    }
    for what, param in named.items():
        assert param.grad is not None and param.grad.abs().sum() > 0, f"no gradient reaches the {what}"


def test_fixed_beta_loss_is_mse_plus_normalised_kl(frames):
    pipeline = tiny_pipeline().eval()  # eval: z is the mean, so the loss is deterministic
    hgn = objective("objective.kl_weight=0.5")
    losses = hgn.losses(pipeline, frames)
    decoded = predict(pipeline, frames, PRED)
    mse = F.mse_loss(decoded, frames[:, INPUT - 1:])
    kl = pipeline.encoder(frames).kl.mean()
    pixels = (PRED + 1) * SIZE * SIZE
    assert torch.allclose(losses["loss"], mse + 0.5 * kl / pixels, rtol=1e-5)
    assert torch.allclose(losses["mse"], mse * MSE_SCALE, rtol=1e-5)


def test_deterministic_model_has_no_kl_and_must_match_the_config(frames):
    pipeline = tiny_pipeline(variational=False)
    losses = objective("objective.variational=false").losses(pipeline, frames)
    assert "kl" not in losses and torch.allclose(losses["loss"] * MSE_SCALE, losses["mse"])
    with pytest.raises(ConfigError, match="objective.variational is true but the encoder is deterministic"):
        objective().losses(pipeline, frames)
    with pytest.raises(PluginParamsError, match="^objective 'hgn': geco trades the KL term .* needs variational: "
                                                "true$"):
        objective("objective.variational=false", "objective.geco=true")


def test_reconstruct_mode_also_runs_back_over_the_input_frames(frames):
    pipeline = tiny_pipeline().eval()
    hgn = objective("objective.mode=reconstruct")
    decoded, _ = hgn.decode_window(pipeline, frames, PRED)
    assert decoded.shape[1] == INPUT + PRED
    assert torch.allclose(decoded[:, INPUT - 1:], predict(pipeline, frames, PRED), atol=1e-6)
    backwards = predict(pipeline, frames, INPUT - 1, speed=-1.0)
    assert torch.allclose(decoded[:, :INPUT], backwards.flip(1), atol=1e-6)
    expected = F.mse_loss(decoded, frames) * MSE_SCALE
    assert torch.allclose(hgn.losses(pipeline, frames)["mse"], expected, rtol=1e-5)


def test_backward_share_runs_that_share_of_a_batch_back_from_the_last_frame(frames):
    pipeline = tiny_pipeline(variational=False)
    hgn = objective("objective.variational=false", "objective.backward_share=0.25")
    train(pipeline, hgn, frames, steps=10)  # past a constant picture, so the directions differ
    pipeline.train()  # the backward rows only exist while training
    mse = hgn.losses(pipeline, frames)["mse"]
    back = frames.shape[0] // 4
    forward = predict(pipeline, frames[back:], PRED)
    backward = predict(pipeline, frames[:back, -INPUT:], PRED, speed=-1.0)
    expected = torch.cat([(backward - frames[:back, INPUT - 1:].flip(1)).pow(2),
                          (forward - frames[back:, INPUT - 1:]).pow(2)]).mean() * MSE_SCALE
    all_forward = objective("objective.variational=false").losses(pipeline, frames)["mse"]
    assert (mse - expected).abs() < 0.05 * (all_forward - expected).abs()
    pipeline.eval()  # evaluation scores every row forwards
    assert torch.allclose(hgn.losses(pipeline, frames)["mse"],
                          objective("objective.variational=false").losses(pipeline, frames)["mse"])
    with pytest.raises(PluginParamsError, match="backward_share .* needs mode: predict"):
        objective("objective.variational=false", "objective.backward_share=0.5", "objective.mode=reconstruct")


# --- GECO -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("tolerance, direction", [(1e-3, 1.0), (1.0, -1.0)])
def test_geco_multiplier_moves_towards_the_constraint(tolerance, direction, frames):
    """A constraint still violated (MSE > tol²) raises λ; one satisfied with room to spare lowers it."""
    pipeline = tiny_pipeline()
    hgn = objective("objective.geco=true", f"objective.geco_tolerance={tolerance}", "objective.geco_rate=0.5")
    first = train(pipeline, hgn, frames, steps=1)[0]
    assert float(first["geco_lambda"]) == 1.0
    expected = math.exp(0.5 * float(first["geco_constraint"]))  # λ₁ = λ₀·exp(rate·C_ma), C_ma = C₀ at first
    assert float(hgn.geco_lambda) == pytest.approx(expected, rel=1e-6)
    history = train(pipeline, hgn, frames, steps=3)
    lambdas = [1.0] + [float(h["geco_lambda"]) for h in history] + [float(hgn.geco_lambda)]
    steps = [b - a for a, b in zip(lambdas[:-1], lambdas[1:], strict=True)]
    assert all(direction * s > 0 for s in steps), lambdas


def test_geco_state_survives_a_checkpoint_and_evaluation(frames):
    pipeline = tiny_pipeline()
    hgn = objective("objective.geco=true", "objective.geco_tolerance=1e-3")
    train(pipeline, hgn, frames, steps=2)
    resumed = objective("objective.geco=true", "objective.geco_tolerance=1e-3")
    resumed.load_state_dict(hgn.state_dict())
    assert float(resumed.geco_lambda) == float(hgn.geco_lambda) > 1.0
    lam = float(resumed.geco_lambda)
    resumed.losses(pipeline.eval(), frames)
    resumed.evaluate(pipeline, pendulum_video(4, INPUT + PRED), batch_size=4)
    assert float(resumed.geco_lambda) == lam


# --- time, speed and the prior --------------------------------------------------------------------

@pytest.fixture(scope="module")
def trained(frames) -> Pipeline:
    """A model trained for a moment, so its Hamiltonian is no longer the initial one."""
    pipeline = tiny_pipeline()
    train(pipeline, objective(), frames, steps=3)
    return pipeline


def there_and_back(trained: Pipeline, integrator: str, frames: torch.Tensor, dt: float = 2.0, steps: int = 20):
    """How far the state travels in ``steps`` steps of ``dt`` and how far from the start it ends up
    after as many steps of ``-dt``; large steps so the state travels far."""
    pipeline = Pipeline(trained.encoder, trained.physics, pivf.integrator(integrator, substeps=1), trained.decoder, DT)
    with torch.no_grad():
        encoded = pipeline.encoder(frames)
        q, p = pipeline.rollout(encoded.q0, encoded.p0, steps, dt=dt)
        back_q, back_p = pipeline.rollout(q[-1], p[-1], steps, dt=-dt)
    moved = torch.maximum((q[-1] - q[0]).abs().max(), (p[-1] - p[0]).abs().max())
    error = torch.maximum((back_q[-1] - q[0]).abs().max(), (back_p[-1] - p[0]).abs().max())
    return pipeline, (q, p), float(moved), float(error)


@pytest.mark.parametrize("integrator", ["leapfrog", "yoshida"])
def test_reversible_integrators_run_back_to_the_start(integrator, trained, frames):
    pipeline, (q, p), moved, error = there_and_back(trained, integrator, frames)
    assert moved > 0.05 and error < 1e-5 * moved
    # the same through the frame helper: running backwards replays the video in reverse
    speed = 2.0 / DT
    forward = rollout_frames(pipeline, q[0], p[0], q.shape[0] - 1, speed=speed)
    backward = rollout_frames(pipeline, q[-1], p[-1], q.shape[0] - 1, speed=-speed)
    assert torch.allclose(backward.flip(1), forward, atol=1e-5)


def test_euler_does_not_retrace_its_steps(trained, frames):
    """The contrast that gives the reversibility test its teeth."""
    _, _, moved, error = there_and_back(trained, "euler", frames)
    assert error > 1e-3 * moved


def test_double_speed_covers_two_frames_per_frame(frames):
    pipeline = tiny_pipeline("yoshida")
    fast = predict(pipeline, frames, 4, speed=2.0)
    slow = predict(pipeline, frames, 8)
    assert (fast - slow[:, ::2]).abs().max() < 1e-2 * (fast - slow[:, :5]).abs().max()


def test_samples_come_from_the_prior_through_the_transformer():
    pipeline = tiny_pipeline()
    videos = sample(pipeline, 3, steps=4, generator=torch.Generator().manual_seed(1))
    again = sample(pipeline, 3, steps=4, generator=torch.Generator().manual_seed(1))
    other = sample(pipeline, 3, steps=4, generator=torch.Generator().manual_seed(2))
    assert videos.shape == (3, 5, 1, SIZE, SIZE)
    assert torch.equal(videos, again) and not torch.equal(videos, other)
    assert bool(((videos > 0) & (videos < 1)).all())
    with pytest.raises(ValueError, match="prior"):
        sample(tiny_pipeline(variational=False), 1, steps=2)


def test_a_state_sampling_encoder_has_its_prior_over_the_phase_space():
    """With ``variational_at: state`` the sampled variable is (q, p) itself (an angle's point in the
    plane): a prior sample is a state, training draws around the mean, evaluation takes the mean."""
    torch.manual_seed(0)
    shared = {"image_size": 16, "channels": 3, "latent_channels": 2, "latent": "vector", "angles": 1}
    encoder = pivf.encoder("hgn", **shared, input_steps=2, hidden_layers=1, variational_at="state")
    assert encoder.prior_shape() == (5,)
    frames = torch.rand(4, 2, 3, 16, 16)
    drawn, again = encoder(frames), encoder(frames)
    assert drawn.kl.shape == (4,) and bool((drawn.kl > 0).all())
    assert not torch.equal(drawn.p0, again.p0)
    encoder.eval()
    torch.testing.assert_close(encoder(frames).p0, encoder(frames).p0)
    q, p = encoder.transform(torch.tensor([[0.0, 1.0, 0.5, 0.25, -0.75]]))  # cos, sin of the angle, q1, p0, p1
    torch.testing.assert_close(q, torch.tensor([[math.pi / 2, 0.5]]))
    torch.testing.assert_close(p, torch.tensor([[0.25, -0.75]]))
    with pytest.raises(PluginParamsError, match="variational_at: state .* needs latent: vector"):
        pivf.encoder("hgn", variational_at="state")


# --- metrics --------------------------------------------------------------------------------------

def test_valid_prediction_time_counts_leading_valid_frames():
    target = torch.full((3, 6, 1, 2, 2), 0.5)  # mean(gt²) = 0.25, so the threshold is an MSE of 0.00625
    offsets = torch.tensor([
        [0.0, 0.01, 0.02, 0.05, 0.07, 0.079],  # never above √0.00625 ≈ 0.079: all 6 frames valid
        [0.0, 0.05, 0.09, 0.01, 0.0, 0.0],     # fails at frame 2; recovering later does not count
        [0.2, 0.0, 0.0, 0.0, 0.0, 0.0],        # fails at once
    ])
    prediction = target + offsets[:, :, None, None, None]
    assert valid_prediction_time(prediction, target).tolist() == [6, 2, 0]


def test_a_still_picture_is_valid_while_the_scene_has_not_moved_enough():
    frames = torch.full((2, 8, 1, 2, 2), 0.5)
    frames[0, 5:, 0, 0, 0] = 0.7  # input frames 0..2; a pixel changes at frame 5: 0.04/4 > 0.025·0.25
    assert still_time(frames, input_steps=3).tolist() == [2, 5]


def test_evaluate_reports_the_papers_metrics(frames):
    pipeline = tiny_pipeline()
    hgn = objective()
    train(pipeline, hgn, frames, steps=2)
    test = pendulum_video(6, INPUT + PRED + 6, seed=1)
    metrics = hgn.evaluate(pipeline, test, batch_size=4)
    assert pipeline.training  # restored

    test_frames = as_float(test)
    decoded = predict(pipeline, test_frames, test.shape[1] - INPUT)
    error = (decoded - test_frames[:, INPUT - 1:]).pow(2)
    window = PRED + 1
    assert metrics["mse"] == pytest.approx(float(error[:, :window].mean()) * MSE_SCALE, rel=1e-4)
    assert metrics["extrap_mse"] == pytest.approx(float(error[:, window:].mean()) * MSE_SCALE, rel=1e-4)
    assert metrics["loss"] == metrics["mse"]
    vpt = valid_prediction_time(decoded[:, 1:], test_frames[:, INPUT:]).double()
    assert metrics["vpt"] == pytest.approx(float(vpt.quantile(0.5)))  # 6 sequences: between the middle two
    assert metrics["vpt_rel"] == pytest.approx(metrics["vpt"] / (test.shape[1] - INPUT))
    backwards = predict(pipeline, test_frames[:, -INPUT:], test.shape[1] - 1, speed=-1.0)  # from the last frame
    vpt_backward = valid_prediction_time(backwards[:, INPUT:], test_frames[:, :-INPUT].flip(1)).double()
    assert metrics["vpt_backward"] == pytest.approx(float(vpt_backward.quantile(0.5)))
    with torch.no_grad():
        encoded = pipeline.eval().encoder(test_frames)
        q, p = pipeline.rollout(encoded.q0, encoded.p0, test.shape[1] - INPUT)
        energy = pipeline.physics.energy(q, p)
    assert metrics["h_std"] == pytest.approx(float(energy.std(0, correction=0).mean()), rel=1e-4)
    assert metrics["h_std"] > 0 and metrics["kl"] > 0


def test_a_separable_hamiltonians_derivatives_each_run_one_network():
    torch.manual_seed(0)
    physics = pivf.physics("hamiltonian_latent", latent_channels=2, conv_channels=[4, 8])
    calls = {"kinetic": 0, "potential": 0}
    for name in calls:
        getattr(physics, name).register_forward_hook(lambda *_, name=name: calls.__setitem__(name, calls[name] + 1))
    q, p = torch.randn(3, 2, 4, 4, dtype=torch.float64), torch.randn(3, 2, 4, 4, dtype=torch.float64)
    physics.double()
    dq, dp = physics.dq_dt(q, p), physics.dp_dt(q, p)
    assert calls == {"kinetic": 1, "potential": 1}
    q_, p_ = q.clone().requires_grad_(True), p.clone().requires_grad_(True)
    grad_q, grad_p = torch.autograd.grad(physics.hamiltonian(q_, p_).sum(), (q_, p_))
    assert torch.allclose(dq, grad_p) and torch.allclose(dp, -grad_q)

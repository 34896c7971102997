"""PAIG's model pieces: exact placement by the spatial transformer, gradients everywhere, TF RMSprop."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import pivf
from pivf.core.kernel.build import build_objective, build_pipeline
from pivf.core.kernel.config import resolve_config
from pivf.core.kernel.pipeline import Pipeline
from pivf.core.training.optim import TFRMSprop
from pivf.plugins.discovery import contributions, missing_colour, reset_slot
from pivf.testing import grid_sampled_warp


class Constant(nn.Module):
    def __init__(self, value: torch.Tensor) -> None:
        super().__init__()
        self.value = nn.Parameter(value)

    def forward(self) -> torch.Tensor:
        return self.value


def _blob_decoder(size: int = 32, sigma: float = 1.0):
    decoder = pivf.decoder("spatial_transformer", image_size=size, n_objects=1, channels=1, sigma=sigma)
    t = decoder.template_size
    coords = torch.arange(t) + 0.5 - t / 2  # template pixel centres around its geometric centre
    blob = torch.exp(-(coords[:, None] ** 2 + coords[None, :] ** 2) / 4.0)
    decoder.content_template = Constant(torch.logit(blob.clamp(1e-4, 1 - 1e-4))[None, None])
    return decoder


def test_the_separable_warp_equals_grid_sampling_with_its_gradients():
    torch.manual_seed(0)
    decoder = pivf.decoder("spatial_transformer", n_objects=3, sigma=1.7).double()
    q = (torch.rand(4, 3, 2, dtype=torch.float64) * 44 - 6).requires_grad_(True)  # some partly off the image
    mine, reference = decoder.warp(q), grid_sampled_warp(decoder, q)
    torch.testing.assert_close(mine, reference, rtol=0, atol=1e-12)
    weights = torch.rand_like(mine)
    grads = [torch.autograd.grad((out * weights).sum(), [q, decoder.log_sigma, *decoder.parameters()],
                                 allow_unused=True) for out in (decoder.warp(q), grid_sampled_warp(decoder, q))]
    for a, b in zip(*grads, strict=True):
        if a is not None or b is not None:
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("sigma", [1.0, 2.0])
@pytest.mark.parametrize("x, y", [(11.3, 20.7), (16.0, 16.0), (7.25, 9.5)])
def test_spatial_transformer_places_template_centre_exactly(x, y, sigma):
    decoder = _blob_decoder(sigma=sigma)
    warped = decoder.warp(torch.tensor([[[x, y]]], dtype=torch.float64))[0, 0, 1]  # content channel
    size = warped.shape[-1]
    centres = torch.arange(size, dtype=torch.float64) + 0.5  # pixel i covers [i, i+1)
    total = warped.sum()
    cx = (warped.sum(0) * centres).sum() / total
    cy = (warped.sum(1) * centres).sum() / total
    assert abs(cx - x) < 0.1 and abs(cy - y) < 0.1


def test_outside_templates_the_mask_logit_is_minus_five():
    decoder = pivf.decoder("spatial_transformer", sigma=2.0)
    warped = decoder.warp(torch.tensor([[[8.0, 8.0], [8.0, 8.0]]]))
    assert torch.allclose(warped[0, :, 0, 25:, 25:] - 5.0, torch.tensor(-5.0))


@pytest.mark.parametrize("recipe, coordinate_weights, velocity_weights", [
    ("paper", "head.mlp.0.weight", "velocity.mlp.0.weight"),
    ("fast", None, "velocity.combine.weight"),
])
def test_gradients_reach_every_learned_part(recipe, coordinate_weights, velocity_weights):
    config = resolve_config(overrides=["data.pred_steps=3", "data.input_steps=3", f"training.recipe={recipe}",
                                      "objective.discovery_share=0"])
    pipeline = build_pipeline(config)
    frames = torch.rand(4, 6, 3, 32, 32)
    objective = build_objective(config)
    losses = objective.training_losses(pipeline, frames, step=objective.params.warmup_steps)
    losses["loss"].backward()
    physics = pipeline.physics
    weights = dict(pipeline.encoder.named_parameters())
    named = {
        "k": physics.log_k, "l": physics.log_l,
        "velocity estimator": weights[velocity_weights],
        **({"coordinate head": weights[coordinate_weights]} if coordinate_weights else {}),
        "U-Net": pipeline.encoder.unet.down[0][0][0].weight,
        "decoder sigma": pipeline.decoder.log_sigma,
        "decoder templates": pipeline.decoder.content_template.net[0].weight,
    }
    for what, param in named.items():
        assert param.grad is not None and param.grad.abs().sum() > 0, f"no gradient reaches {what}"


def test_discovery_watch_names_the_slot_that_explains_nothing():
    """Drawn by the decoder itself at known positions, the images are explained by both slots; a slot
    moved out of the picture is reported idle (and would be re-initialised), the other is not."""
    torch.manual_seed(0)
    decoder = pivf.decoder("spatial_transformer")
    pipeline = Pipeline(pivf.encoder("paig_unet"), pivf.physics("spring"), pivf.integrator("euler"), decoder, dt=0.3)
    positions = torch.rand(4, 3, 2, 2) * 16 + 8  # (B, T, N, D) inside the 32-px frame
    with torch.no_grad():
        frames = decoder(positions.flatten(0, 1)).unflatten(0, (4, 3))
    assert contributions(pipeline, positions, frames, share=0.25).found
    lost = positions.clone()
    lost[:, :, 1] = -200.0
    verdict = contributions(pipeline, lost, frames, share=0.25)
    assert verdict.idle == (1,) and verdict.rises[0] > 0.1 and abs(verdict.rises[1]) < 1e-6


def test_tf_rmsprop_starts_with_an_accumulator_of_one():
    w = nn.Parameter(torch.tensor([1.0, -2.0]))
    opt = TFRMSprop([w], lr=0.1)
    w.grad = torch.tensor([0.5, -3.0])
    opt.step()
    expected = torch.tensor([1.0, -2.0]) - 0.1 * w.grad / torch.sqrt(0.9 + 0.1 * w.grad**2 + 1e-10)
    assert torch.allclose(w.detach(), expected)
    # PyTorch's RMSprop (accumulator 0) would have moved each weight by ~lr/sqrt(0.1) instead
    assert abs(w.detach()[0] - 1.0) < 0.1 / math.sqrt(0.1) / 3


@pytest.mark.parametrize("frames_set, warm_length", [("5", 5), ("inputs", 4)])
def test_warmup_frames_shorten_only_the_warmup_window(frames_set, warm_length):
    config = resolve_config(overrides=[f"objective.warmup_frames={frames_set}", "objective.discovery_share=0",
                                       "objective.warmup_steps=10", "encoder.unet_base=4"])
    pipeline, objective = build_pipeline(config), build_objective(config)
    frames = torch.rand(2, 12, 3, 32, 32)
    warm = objective.training_losses(pipeline, frames, step=0)
    assert set(warm) == {"recons", "loss"} and objective.last_batch[1].shape[1] == warm_length
    later = objective.training_losses(pipeline, frames, step=10)
    assert "pred" in later and objective.last_batch[1].shape[1] == objective.train_length == 10


def test_a_guided_reset_points_an_idle_slot_at_the_colour_the_reconstruction_misses():
    pipeline = build_pipeline(resolve_config(overrides=["encoder.unet_base=4"]))
    frames = torch.zeros(1, 2, 3, 32, 32)
    frames[:, :, 0, 10:14, 20:24] = 1.0  # a red square nobody draws
    nowhere = torch.full((1, 2, 2, 2), -200.0)
    colour = missing_colour(pipeline, nowhere, frames)
    assert colour[0] > 0 and torch.allclose(colour[1:], torch.zeros(2))
    assert reset_slot(pipeline, 1, colour) == ["encoder", "decoder"]  # both have re-initialisable slots
    torch.testing.assert_close(pipeline.encoder.colour.weight[1].flatten(), torch.tensor([1.0, 0.0, 0.0]))
    content = pipeline.decoder.templates()[1][1]  # object 1's content template (C, t, t)
    torch.testing.assert_close(content.mean((-2, -1)), torch.tensor([0.95, 0.05, 0.05]))
    slotless = Pipeline(pipeline.encoder, pipeline.physics, pipeline.integrator, pivf.decoder("hgn_conv"), pipeline.dt)
    assert reset_slot(slotless, 1) == ["encoder"]  # a decoder without slots is left alone


@pytest.mark.parametrize("stored, used", [(10, 10), (12, 10), (30, 30), (30, 7)])
def test_the_unet_sees_channels_last_images_whatever_slice_of_the_data(stored, used):
    """oneDNN's convolutions run about twice as fast channels-last; a batch that is a slice of
    longer stored sequences used to reach the U-Net channels-first."""
    from pivf.core.data.frames import as_float

    encoder = build_pipeline(resolve_config(task="spring_color")).encoder
    layouts = []
    encoder.unet.register_forward_pre_hook(
        lambda module, args: layouts.append(args[0].is_contiguous(memory_format=torch.channels_last)))
    stored_frames = torch.randint(0, 256, (2, stored, 32, 32, 3), dtype=torch.uint8)
    encoder.locate(as_float(stored_frames)[:, :used])
    assert layouts == [True]


def test_one_seed_starts_the_encoder_and_decoder_alike_whatever_the_physics():
    """A learned physics between them draws its own weights, yet leaves the encoder's and decoder's
    to the seed alone: comparing a learned H with the spring changes the physics only."""
    def built(**flags):
        torch.manual_seed(3)
        return build_pipeline(resolve_config(task="spring_color", flags=flags))

    spring, learned = built(), built(**{"physics.name": "hamiltonian"})
    assert list(learned.physics.parameters())
    for part in ("encoder", "decoder"):
        ours, theirs = getattr(spring, part).state_dict(), getattr(learned, part).state_dict()
        assert all(torch.equal(ours[name], theirs[name]) for name in ours), part
    torch.manual_seed(4)
    assert not torch.equal(build_pipeline(resolve_config(task="spring_color")).encoder.unet.head.weight,
                           spring.encoder.unet.head.weight)


@pytest.mark.parametrize("recipe", ["fast", "paper"])
def test_localising_in_cpu_batches_changes_nothing_but_the_speed(recipe):
    torch.manual_seed(0)
    encoders = [build_pipeline(resolve_config(task="spring_color", overrides=[
        f"training.recipe={recipe}", f"encoder.cpu_batch={n}"])).encoder.double() for n in (7, 1000)]
    encoders[1].load_state_dict(encoders[0].state_dict())
    frames = torch.rand(3, 10, 3, 32, 32, dtype=torch.float64, requires_grad=True)
    positions, grads = [], []
    for encoder in encoders:
        out = encoder.locate(frames)
        (grad,) = torch.autograd.grad(out.square().sum(), frames)
        positions.append(out)
        grads.append(grad)
    assert positions[0].shape == (3, 10, 2, 2)
    torch.testing.assert_close(positions[0], positions[1], rtol=0, atol=1e-10)
    torch.testing.assert_close(grads[0], grads[1], rtol=0, atol=1e-10)


@pytest.mark.slow(seconds=32)
def test_training_and_evaluation_batches_localise_at_the_per_frame_speed_of_whole_sequences(calibrated_threads):
    """Slices of 12-frame training files and 30-frame test sequences cost no more per frame than the
    10-frame batch (within 20 %). Shapes are timed in turn and each keeps its best time, so a load
    spike on the machine cannot land on one shape only; a slow shape must be slow in three attempts."""
    import time

    from pivf.core.data.frames import as_float

    torch.manual_seed(0)
    encoder = build_pipeline(resolve_config(task="spring_color")).encoder
    batches = {(stored, used): as_float(torch.randint(0, 256, (20, stored, 32, 32, 3), dtype=torch.uint8))[:, :used]
               for stored, used in ((10, 10), (12, 10), (12, 12), (30, 30))}
    attempts = []
    for _ in range(3):
        best = dict.fromkeys(batches, float("inf"))
        for repeat in range(8):
            for shape, frames in batches.items():
                start = time.perf_counter()
                encoder.locate(frames).sum().backward()
                if repeat:  # the first round warms up
                    best[shape] = min(best[shape], (time.perf_counter() - start) / frames[:, :, 0, 0, 0].numel())
        attempts.append({shape: seconds / best[(10, 10)] for shape, seconds in best.items()})
        if max(attempts[-1].values()) < 1.2:
            return
    raise AssertionError(f"per-frame time relative to 10 of 10 frames, three attempts: {attempts}")


def test_a_median_backdrop_takes_a_fixed_cameras_scene_out_of_the_encoders_input():
    """A textured backdrop with a small red disc that moves: the backdrop is the per-pixel median,
    so the encoder's input is the disc alone, and a checkpoint carries the backdrop."""
    from pivf.core.data.frames import as_float

    generator = torch.Generator().manual_seed(0)
    backdrop = 0.4 + 0.2 * torch.rand(3, 32, 32, generator=generator)
    frames = backdrop.expand(6, 10, 3, 32, 32).clone()
    for i in range(6):
        for t in range(10):
            x = 4 + 2 * t + i
            frames[i, t, :, 10:13, x:x + 3] = torch.tensor([0.9, 0.1, 0.1]).reshape(3, 1, 1)
    config = resolve_config(task="spring_color", overrides=["encoder.background=median"])
    pipeline = build_pipeline(config)
    seen = []
    pipeline.encoder.unet.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    pipeline.prepare(frames)
    torch.testing.assert_close(pipeline.encoder.backdrop[0], backdrop)
    change = torch.tensor([0.9, 0.1, 0.1]) - backdrop.mean((1, 2))  # the disc against the backdrop
    change -= change.mean()  # without its grey part, which lighting would move
    for slot in range(2):  # each slot's colour path starts pointing at that change (one object: both)
        weight = pipeline.encoder.colour.weight[slot].flatten()
        assert torch.nn.functional.cosine_similarity(weight, change, dim=0) > 0.95
    pipeline.encoder.locate(frames[:1, :1])
    difference = seen[0][0]
    assert difference[:, 10:13, 4:7].abs().min() > 0.1  # the disc
    difference[:, 10:13, 4:7] = 0
    assert difference.abs().max() < 1e-6  # nothing else
    reloaded = build_pipeline(config)
    reloaded.load_state_dict(pipeline.state_dict())
    torch.testing.assert_close(reloaded.encoder.backdrop, pipeline.encoder.backdrop)
    plain = build_pipeline(resolve_config(task="spring_color"))
    plain.prepare(as_float(torch.zeros(2, 10, 32, 32, 3, dtype=torch.uint8)))
    assert "encoder.backdrop" not in plain.state_dict()  # off by default: older checkpoints still load


def test_bf16_runs_the_unet_features_in_bfloat16_and_keeps_the_coordinate_path_float32():
    torch.manual_seed(0)
    config = resolve_config(task="spring_color", overrides=["training.bf16=true", "encoder.unet_base=4"])
    pipeline = build_pipeline(config)
    assert pipeline.bf16
    seen = {}
    pipeline.encoder.unet.down[0].register_forward_hook(lambda _m, _i, out: seen.update(features=out.dtype))
    pipeline.encoder.unet.head.register_forward_hook(lambda _m, _i, out: seen.update(logits=out.dtype))
    frames = torch.rand(2, 10, 3, 32, 32)
    out = pipeline(frames, steps=6)
    assert seen == {"features": torch.bfloat16, "logits": torch.float32}
    assert out.q.dtype == out.p.dtype == out.frames.dtype == out.recons.dtype == torch.float32
    out.frames.square().mean().backward()
    assert all(p.grad is not None for p in pipeline.physics.parameters() if p.requires_grad)
    with pipeline.vision_precision(frames.device):  # the spatial transformer renders in float32 regardless
        rendered = pipeline.decoder(out.q[-1])
    assert rendered.dtype == torch.float32
    torch.testing.assert_close(rendered, pipeline.decoder(out.q[-1]), rtol=0, atol=0)
    pipeline.bf16 = False
    full = pipeline(frames, steps=6)
    assert seen["features"] == torch.float32
    moved = (full.encoded.positions - out.encoded.positions).abs().max()
    assert 0 < moved < 0.05  # pixels: reduced precision in the features only

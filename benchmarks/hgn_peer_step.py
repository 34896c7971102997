"""pivf's HGN training step beside the CampusAI HGN re-implementation's, on the same CPU.

Both train the HGN pendulum setup: batch 16, 5 input frames and 29 predicted, leapfrog, a
variational encoder with GECO, Adam, 32×32 RGB frames (random pixels: the step's cost does not
depend on them). Rounds alternate fresh processes, pivf then the peer, so both see the same machine
state. The peer runs from its own checkout, given with ``--peer``
(``git clone https://github.com/CampusAI/Hamiltonian-Generative-Networks``); nothing of it is part of
pivf. Its networks, HGN class and integrator are used as they are; its training step is the one in
its ``train.py`` (GECO with its default tolerance, α and multiplier rate). Its plotting module needs
OpenCV, which the step never uses, so that one import is stubbed.

    python benchmarks/hgn_peer_step.py --peer ../Hamiltonian-Generative-Networks --rounds 3 [--bf16]
"""
from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import time
import types
from pathlib import Path

BATCH, INPUT, PREDICTED = 16, 5, 29


def peer_step_seconds(peer: Path, steps: int, warmup: int) -> float:
    """Seconds per training step of the peer, built from its default configuration files."""
    import torch
    import yaml

    sys.path.insert(0, str(peer))
    plotting = types.ModuleType("environments.environment")
    plotting.visualize_rollout = None  # type: ignore[attr-defined]
    sys.modules["environments.environment"] = plotting
    from hamiltonian_generative_network import HGN
    from networks.decoder_net import DecoderNet
    from networks.encoder_net import EncoderNet
    from networks.hamiltonian_net import HamiltonianNet
    from networks.transformer_net import TransformerNet
    from utilities.integrator import Integrator
    from utilities.losses import geco_constraint, kld_loss

    params = yaml.safe_load((peer / "experiment_params/train_config_default.yaml").read_text())
    nets, geco, dtype = params["networks"], params["geco"], torch.float
    torch.manual_seed(0)
    hgn = HGN(encoder=EncoderNet(seq_len=INPUT, in_channels=3, **nets["encoder"], dtype=dtype),
              transformer=TransformerNet(in_channels=nets["encoder"]["out_channels"], **nets["transformer"],
                                         dtype=dtype),
              hnn=HamiltonianNet(**nets["hamiltonian"], dtype=dtype),
              decoder=DecoderNet(in_channels=nets["transformer"]["out_channels"], out_channels=3,
                                 **nets["decoder"], dtype=dtype),
              integrator=Integrator(delta_t=0.125, method="Leapfrog"), device="cpu", dtype=dtype,
              seq_len=INPUT + PREDICTED, channels=3)
    lr = params["optimization"]["encoder_lr"]
    optimizer = torch.optim.Adam([{"params": m.parameters(), "lr": lr}
                                  for m in (hgn.encoder, hgn.transformer, hgn.hnn, hgn.decoder)])
    rollouts = torch.rand(BATCH, INPUT + PREDICTED, 3, 32, 32)
    state: dict[str, torch.Tensor | None] = {"c_ma": None,
                                             "multiplier": torch.tensor(geco["initial_lagrange_multiplier"])}

    def step() -> None:
        optimizer.zero_grad()
        out = hgn.forward(rollout_batch=rollouts[:, :INPUT], n_steps=PREDICTED)
        prediction = out.reconstructed_rollout
        c, _ = geco_constraint(rollouts[:, INPUT - 1:], prediction, geco["tol"])
        c_ma = state["c_ma"]
        c_ma = c.detach() if c_ma is None else geco["alpha"] * c_ma + (1 - geco["alpha"]) * c.detach()
        state["c_ma"] = c_ma
        c = c + (c_ma - c.detach())
        kld = kld_loss(mu=out.z_mean, logvar=out.z_logvar) / prediction.flatten(1).size(1)
        multiplier = state["multiplier"]
        assert multiplier is not None
        loss = kld + multiplier * c
        state["multiplier"] = torch.clamp(multiplier * torch.exp(geco["lagrange_multiplier_param"] * c.detach()),
                                          1e-10, 1e10)
        loss.backward()
        optimizer.step()

    for _ in range(warmup):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps


def pivf_step_seconds(steps: int, warmup: int, bf16: bool) -> float:
    """Seconds per step of pivf's own throughput benchmark on the same setup."""
    here = Path(__file__).resolve().parent
    out = subprocess.run([sys.executable, str(here / "train_throughput.py"), "--task", "pendulum", "--device", "cpu",
                          "--steps", str(steps), "--warmup", str(warmup), "--set", "objective.geco=true",
                          *(["--bf16"] if bf16 else [])], capture_output=True, text=True, check=True).stdout
    match = re.search(r"\((\d+) steps in ([\d.]+) s", out)
    assert match, out
    return float(match.group(2)) / int(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peer", type=Path, required=True, help="a checkout of "
                                                                 "CampusAI/Hamiltonian-Generative-Networks")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per process")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--bf16", action="store_true", help="pivf's side under bfloat16 autocast (the peer stays "
                                                            "float32)")
    parser.add_argument("--peer-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peer_only:
        print(peer_step_seconds(args.peer.resolve(), args.steps, args.warmup))
        return
    pivf, peer = [], []
    for round_ in range(1, args.rounds + 1):
        pivf.append(pivf_step_seconds(args.steps, args.warmup, args.bf16))
        out = subprocess.run([sys.executable, __file__, "--peer", str(args.peer), "--steps", str(args.steps),
                              "--warmup", str(args.warmup), "--peer-only"], capture_output=True, text=True, check=True)
        peer.append(float(out.stdout.strip().splitlines()[-1]))
        print(f"round {round_}: pivf {pivf[-1]:.2f} s/step, peer {peer[-1]:.2f} s/step", flush=True)
    ratio = statistics.median(peer) / statistics.median(pivf)
    print(f"median: pivf {statistics.median(pivf):.2f} s/step, peer {statistics.median(peer):.2f} s/step; "
          f"pivf runs {ratio:.2f}× the peer's speed")


if __name__ == "__main__":
    main()

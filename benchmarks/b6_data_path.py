"""B6: what the data path costs during training, for a small and a large OFA MobileNetV3 subnet.

For each subnet, training steps (forward, backward, SGD step) are timed when the batches come
(a) from ``make_loader`` on the embedded CIFAR-10 subset, with augmentation, and (b) from tensors
made beforehand and already on the device. The two are interleaved step by step (a b, b a, ...)
so that the drifting speed of a shared machine affects both alike.

    python benchmarks/b6_data_path.py [--batch_size 64] [--steps 20] [--device auto]

Figures: images/s of (a) and (b), overhead = 1 - ips_a / ips_b (from total times and from median
step times), and the time spent inside the loader per batch, measured directly, as a share of
the step. Goal (BENCHMARKS.md): overhead <= 10%.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
from nas.plugins import load_plugins  # noqa: E402

load_plugins()

from nas.cli import run_cli  # noqa: E402
from nas.data import load_dataset, make_loader  # noqa: E402
from nas.device import resolve_device  # noqa: E402
from nas.io import write_json  # noqa: E402
from nas.space import get_search_space  # noqa: E402

GOAL = 0.10  # largest acceptable overhead
WARMUP = 3  # untimed steps per feed before measuring


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def endless(loader):
    """Batches of ``loader`` epoch after epoch (each pass advances the loader's epoch)."""
    while True:
        yield from loader


def measure(net: torch.nn.Module, data, args, device: torch.device) -> dict:
    net.to(device).train()
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=4e-5)

    def step(x: torch.Tensor, y: torch.Tensor) -> None:
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(net(x), y).backward()
        opt.step()

    loader = make_loader(data.train, args.batch_size, args.resolution, True, device, seed=args.seed)
    batches = endless(loader)
    # (b) pre-made batches: augmented once beforehand, kept on the device
    premade = [(x.clone(), y.clone()) for (x, y), _ in zip(make_loader(
        data.train, args.batch_size, args.resolution, True, device, seed=args.seed + 1
    ), range(min(args.steps, len(loader))), strict=False)]  # fmt: skip

    for i in range(WARMUP):
        step(*next(batches))
        step(*premade[i % len(premade)])
    times: dict[str, list[float]] = {"loader": [], "premade": []}
    data_times: list[float] = []
    for i in range(args.steps):
        for feed in ("loader", "premade") if i % 2 == 0 else ("premade", "loader"):
            sync(device)
            t0 = time.perf_counter()
            if feed == "loader":
                x, y = next(batches)
                sync(device)
                data_times.append(time.perf_counter() - t0)
            else:
                x, y = premade[i % len(premade)]
            step(x, y)
            sync(device)
            times[feed].append(time.perf_counter() - t0)

    n = args.batch_size * args.steps
    ips_a, ips_b = n / sum(times["loader"]), n / sum(times["premade"])
    med_a, med_b = statistics.median(times["loader"]), statistics.median(times["premade"])
    return {
        "ips_loader": ips_a,
        "ips_premade": ips_b,
        "overhead": 1 - ips_a / ips_b,
        "overhead_median": 1 - med_b / med_a,
        "loader_ms_per_batch": 1e3 * statistics.median(data_times),
        "loader_share": sum(data_times) / sum(times["loader"]),
        "step_ms_median_loader": 1e3 * med_a,
        "step_ms_median_premade": 1e3 * med_b,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="B6: training throughput with and without the data path")
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument("--steps", type=int, default=20, help="timed steps per feed and model")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or N")
    p.add_argument("--resolution", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "b6.json")
    args = p.parse_args(argv)
    device = resolve_device(args.device)
    torch.manual_seed(args.seed)  # the networks' initial weights

    t_load = time.perf_counter()
    data = load_dataset("cifar10_embedded")
    t_load = time.perf_counter() - t_load
    space = get_search_space("mobilenetv3", lr=args.resolution, ur=args.resolution)
    rows = []
    for model, arch in (("smallest", space.smallest()), ("largest", space.largest())):
        net = space.build(arch, n_classes=data.n_classes)
        params = sum(t.numel() for t in net.parameters()) / 1e6
        rows.append({"model": model, "params_m": params, "arch": arch, **measure(net, data, args, device)})

    print(
        f"B6 data path, {device} ({torch.get_num_threads()} threads), batch {args.batch_size}, "
        f"{args.steps} steps per feed, {args.resolution} px; embedded set loaded in {t_load:.2f} s"
    )
    print(
        f"{'model':<9} {'params':>7} {'loader ips':>11} {'premade ips':>12} {'overhead':>9} "
        f"{'(median)':>9} {'loader ms/batch':>16} {'loader share':>13}"
    )
    for r in rows:
        print(
            f"{r['model']:<9} {r['params_m']:>6.2f}M {r['ips_loader']:>11.1f} {r['ips_premade']:>12.1f} "
            f"{r['overhead']:>8.1%} {r['overhead_median']:>9.1%} {r['loader_ms_per_batch']:>16.2f} "
            f"{r['loader_share']:>12.2%}"
        )
    passed = all(r["loader_share"] <= GOAL and r["overhead"] <= GOAL for r in rows)
    print(f"goal: overhead <= {GOAL:.0%} -> {'met' if passed else 'NOT met'}")
    write_json(
        args.out,
        {
            "schema": 1,
            "benchmark": "B6",
            "device": str(device),
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "machine": platform.machine(),
            "batch_size": args.batch_size,
            "steps": args.steps,
            "resolution": args.resolution,
            "dataset": "cifar10_embedded",
            "dataset_load_s": t_load,
            "goal_overhead_max": GOAL,
            "goal_met": passed,
            "results": rows,
        },
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))

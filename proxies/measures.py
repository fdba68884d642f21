"""Every proxy as a measure of the ``subnet`` evaluator (``--measures accuracy synflow naswot``).

The measure named after a proxy reports ``<name>`` (the score) and ``<name>_s`` (the seconds it
took). ``params`` and ``flops`` are already metrics of the engine (the cost providers'), so their
measures are named ``zc_params`` and ``zc_flops`` (metrics ``zc_params``, ``zc_params_s``, ...).

A proxy scores a network at initialisation: the measure ignores the trained weights it is given
and builds ``ctx.space.build(arch, n_classes=ctx.n_classes)`` after ``torch.manual_seed(ctx.seed)``
(the caller's random state is kept), and scores it on ``--proxy_batch_size`` images drawn (seeded)
from the training split ``ctx.data.train`` at ``ctx.resolution(arch)``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from nas.config import option
from nas.measures import MEASURES, EvalContext, Measure
from proxies.scorer import fixed_batch
from proxies.scores import PROXIES

# proxies whose name is already a metric of the engine -> their measure's (and metric's) name
RENAMED = {"params": "zc_params", "flops": "zc_flops"}


def measure_name(proxy: str) -> str:
    """The measure (and metric) name of ``proxy``."""
    return RENAMED.get(proxy, proxy)


class ProxyMeasure(Measure):
    """A zero-cost proxy of the network at initialisation: ``<name>`` and ``<name>_s`` (seconds)."""

    proxy: ClassVar[str] = ""

    @dataclass
    class Options:
        proxy_batch_size: int = option(64, "training images a zero-cost proxy scores the network on")

    def measure(self, model: torch.nn.Module, arch: Any, ctx: EvalContext) -> dict[str, Any]:
        name = measure_name(self.proxy)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(ctx.seed)
            net = ctx.space.build(arch, n_classes=ctx.n_classes).to(ctx.device)
            batch = fixed_batch(
                ctx.data.train,
                self.options.proxy_batch_size,
                ctx.resolution(arch),
                ctx.n_classes,
                ctx.seed,
                ctx.device,
            )
            torch.manual_seed(ctx.seed)
            t0 = time.perf_counter()
            value = float(PROXIES.get(self.proxy)(net, batch))
            seconds = time.perf_counter() - t0
        return {name: value, f"{name}_s": seconds}


def _register(proxy: str) -> type[ProxyMeasure]:
    name = measure_name(proxy)
    cls = type(
        f"ProxyMeasure_{name}",
        (ProxyMeasure,),
        {
            "proxy": proxy,
            "provides": (name, f"{name}_s"),
            "__doc__": f"The zero-cost proxy {proxy!r} at initialisation: {name!r} and {name + '_s'!r} "
            f"(seconds). {(PROXIES.get(proxy).__doc__ or '').splitlines()[0]}",
            "__module__": __name__,
            "__qualname__": f"ProxyMeasure_{name}",
        },
    )
    return MEASURES.register(name)(cls)


PROXY_MEASURES = {p: _register(p) for p in PROXIES.names()}

"""PC-DARTS (Xu et al., 2020): partial channel connections plus edge normalisation.

Each edge's mixed op sees 1/K of its input's channels (`strategy.partial_channels`, K=4 in the paper),
and each node weighs its incoming edges by softmax(β) over them (`strategy.edge_normalization`); β is
learnt with α (it lives in α's pytree as `normal_edges`/`reduce_edges`) and scales the op weights
when the genotype is derived. The paper also trains only the weights for the first epochs
(`alpha_warmup_epochs`, 15 of 50), which any strategy may use.
"""

from __future__ import annotations

import dataclasses

from jaxnas.search.strategies.base import Strategy


@dataclasses.dataclass(frozen=True)
class PcdartsStrategy(Strategy):
    def check_options(self, config):
        k = config.strategy.partial_channels
        if k < 1 or config.channels % k:
            return f"strategy.partial_channels {k} must be a positive divisor of channels {config.channels}"
        return None

    def space_options(self, config):
        return {"partial_channels": config.strategy.partial_channels,
                "edge_normalization": config.strategy.edge_normalization}


PCDARTS = PcdartsStrategy("pcdarts", spaces=("darts",), options=(("partial_channels", 4), ("edge_normalization", True)))

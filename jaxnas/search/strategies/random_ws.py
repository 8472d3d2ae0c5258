"""Random search with weight sharing (Li & Talwalkar, 2019).

The supernet's weights train on one uniformly drawn architecture per step; the genotype is the
best of `strategy.derive_samples` uniformly drawn architectures, scored with the shared weights on a
search-val batch. No α is learnt, which makes it the baseline every other strategy must beat.
"""

from jaxnas.search.strategies.sampled import SampledStrategy

RANDOM_WS = SampledStrategy("random_ws", spaces=("darts", "nb201", "chain", "darts_rnn"))

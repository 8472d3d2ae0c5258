"""How good are the hypergradient estimators on the real DARTS supernet? The offline study
(digits, C=8, 5 cells), run here and summarised in docs/fidelity.md:

    python -m jaxnas.study --config=configs/study_darts_digits.py --workdir=runs/study_darts_digits

The trajectory is the offline first-order DARTS search (12 epochs, 264 steps). The study points are
initialisation, 1, 5, 20 and 50 % of the search and its end; at each, every estimator is evaluated
at batch 8, 32 and 64 against `unrolled_k1`, the exact one-step hypergradient that DARTS's second
order approximates, in float64. The second-order term alone is compared at ε scales 1e-1 to 1e-6.
"""

from jaxnas.search import config as search_config
from jaxnas.study.config import estimator_grid
from jaxnas.study.config import get_config as _base

POINTS = "0,0.01,0.05,0.2,0.5,1"
BATCH_SIZES = "8,32,64"
FD_EPS = (0.1, 0.01, 0.001, 0.0001)
MIXED_EPS = "0.1,0.01,0.001,0.0001,1e-05,1e-06"


def get_config():
    c = _base()
    s = c.search
    s.space = "darts"
    s.channels = 8
    s.layers = 5
    s.epochs = 12
    s.batch_size = 32
    s.estimator = search_config.estimator_block("first_order")
    s.checkpoint_every_steps = 3  # the study takes the nearest checkpoint to each point
    c.points = POINTS
    c.batch_sizes = BATCH_SIZES
    c.mixed_eps = MIXED_EPS
    c.estimators = estimator_grid(fd_eps=FD_EPS, unroll_steps=(1, 2), implicit_iterations=(10,))
    c.reference = {"name": "unrolled", "steps": 1}
    c.fast_compile = True  # about 30 compiles of second-order steps in float64: minutes each on 2 cores
    return c

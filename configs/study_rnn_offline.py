"""How good are the hypergradient estimators on DARTS's recurrent cell? The offline study (the
language model on Python's documentation, `configs/search_rnn_offline.py`), minutes on 2 CPU cores:

    python -m jaxnas.study --config=configs/study_rnn_offline.py --workdir=runs/study_rnn

The trajectory is the offline first-order recurrent search (batch 64, BPTT 35, weight lr 5, 8
nodes) at 32 dimensions (the offline search: 64) and cut to its first epoch (43 steps),
checkpointed every step. The study points are initialisation, 5 and 50 % of the epoch and its end;
at each, first order and DARTS's second order at four ε scales are evaluated on the search step's
own α-step losses (its windows, carried hidden states and dropout masks; NLL without TAR) against
`unrolled_k1`, the exact gradient through one real SGD step, in float64. 13 minutes on 2 CPU cores
shared with another test run (the search 2, the first point 6: every estimator traced and compiled
in float64; later points under a minute, as `keep_compiled` traces nothing twice). A language model
is studied at the search's batch size only (its hidden state is carried per column).
`configs/study_darts_ptb.py` is the same study at the paper's PTB size; results in
benchmarks/results/study_rnn_offline and docs/fidelity.md.
"""

import os

from jaxnas.search import config as search_config
from jaxnas.study.config import estimator_grid
from jaxnas.study.config import get_config as _base

POINTS = "0,0.05,0.5,1"
FD_EPS = (0.1, 0.01, 0.001, 0.0001)
MIXED_EPS = "0.1,0.01,0.001,0.0001,1e-05,1e-06"


def get_config():
    c = _base()
    c.search = search_config.load_config_file(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                            "search_rnn_offline.py"))
    s = c.search
    s.channels = 32
    s.epochs = 1
    s.checkpoint_every_steps = 1  # the study takes the nearest checkpoint to each point
    s.keep_checkpoints = 1000
    s.plots = False
    c.points = POINTS
    c.mixed_eps = MIXED_EPS
    c.estimators = estimator_grid(fd_eps=FD_EPS, unroll_steps=(), implicit_methods=())
    c.reference = {"name": "unrolled", "steps": 1}
    c.keep_compiled = True  # its compiled functions are small: no retracing at every point (3x faster)
    c.fast_compile = False  # XLA:CPU's cheapest code ran the float64 estimators 4 to 6 times slower here
    return c

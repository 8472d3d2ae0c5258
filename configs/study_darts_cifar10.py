"""Study the hypergradient estimators along the DARTS CIFAR-10 search (C=16, 8 cells, batch 64),
for users with a GPU or TPU:

    python -m jaxnas.study --config=configs/study_darts_cifar10.py --workdir=runs/study_c10
    python -m jaxnas.study --config=configs/study_darts_cifar10.py --config.search_workdir=runs/c10_2nd ...

The trajectory is the paper's second-order search, checkpointed every 500 steps (about 1.3 epochs);
every checkpoint is a study point. float64 needs `jax_enable_x64`, which TPUs emulate slowly: switch
`float64` off there.
"""

import sys

from jaxnas.study.config import get_config as _base


def get_config():
    sys.path.insert(0, __file__.rsplit("/", 1)[0])
    import darts_cifar10  # the search config next to this file

    c = _base()
    c.search = darts_cifar10.get_config("second_order")
    c.search.checkpoint_every_steps = 500
    c.search.keep_checkpoints = 1000
    c.fd_eps = "0.01,0.001,0.1,1.0"
    c.unroll_ks = "1,2,5"
    c.implicit_ks = "5,20"
    return c

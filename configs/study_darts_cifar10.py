"""The DARTS-space hypergradient study on CIFAR-10 at the paper's search setting (C=16, 8 cells),
for users with a GPU or TPU (configs/study_darts_digits.py is the offline one):

    python -m jaxnas.study --config=configs/study_darts_cifar10.py --workdir=runs/study_c10
    python -m jaxnas.study --config=configs/study_darts_cifar10.py --config.search_workdir=runs/c10_fo ...

The trajectory is the paper's first-order search (50 epochs of 391 steps), checkpointed every 39
steps (1/10 epoch); the study points, batch sizes, estimators and ε scales are the offline study's.
float64 needs `jax_enable_x64`, which TPUs emulate slowly: switch `float64` off there.
"""

import sys


def get_config():
    sys.path.insert(0, __file__.rsplit("/", 1)[0])
    import darts_cifar10  # the search config next to this file
    import study_darts_digits as offline

    c = offline.get_config()
    c.search = darts_cifar10.get_config("first_order")
    c.search.checkpoint_every_steps = 39
    c.search.keep_checkpoints = 1000
    c.search.plots = False
    return c

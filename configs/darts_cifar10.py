"""The DARTS CIFAR-10 search (Liu et al., 2019, section 3.1 and appendix A.1).

    python -m jaxnas.search --config=configs/darts_cifar10.py --workdir=runs/darts_cifar10      # second order
    python -m jaxnas.search --config=configs/darts_cifar10.py:first_order --workdir=runs/darts_c10_fo

50 epochs, batch 64, C=16, 8 cells; the train set split 50/50 into search-train (w) and search-val
(α); SGD momentum 0.9, lr 0.025 cosine to 0.001, weight decay 3e-4, gradient clip 5; α by Adam
lr 3e-4, β=(0.5, 0.999), weight decay 1e-3; random crop (pad 4) and flip. Second order is the
paper's finite-difference approximation (`darts_fd`, ξ = the current weight lr, ε = 0.01/‖∇‖).
"""

from jaxnas.search import config as search_config
from jaxnas.search.config import get_config as _base

ORDERS = {"second_order": "darts_fd", "first_order": "first_order"}


def get_config(order: str = "second_order"):
    if order not in ORDERS:
        raise ValueError(f"unknown variant {order!r}; valid variants: {', '.join(ORDERS)}")
    c = _base()
    c.dataset = "cifar10"
    c.crop_padding = 4
    c.flip = True
    c.space = "darts"
    c.channels = 16
    c.layers = 8
    c.estimator = search_config.estimator_block(ORDERS[order])
    c.epochs = 50
    c.batch_size = 64
    c.lr = 0.025
    c.lr_min = 0.001
    c.alpha_lr = 3e-4
    c.eval_batch_size = 256
    c.log_every_steps = 50
    c.checkpoint_every_steps = 200
    return c

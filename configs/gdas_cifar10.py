"""GDAS (Dong & Yang, CVPR 2019) in the DARTS cell space.

    python -m jaxnas.search --config=configs/gdas_cifar10.py --workdir=runs/gdas_c10           # CIFAR-10
    python -m jaxnas.search --config=configs/gdas_cifar10.py:digits --workdir=runs/gdas_digits  # offline

One op per edge drawn from the Gumbel-softmax of α (temperature 10 → 0.1, linear per epoch), only
that op computed; first-order α updates (Adam lr 3e-4, weight decay 1e-3); weights by SGD
momentum 0.9, lr 0.025 cosine to 0.001, weight decay 3e-4. Epochs (240) and batch size (128) are
our reading of the paper's section 4.1; check them against the paper before comparing numbers.
The `digits` variant is the offline default search (C=8, 5 cells) with GDAS for 30 epochs: GDAS
trains one drawn path per step and learns slowly there (measured: training loss 1.97 and search-val
0.34 after 12 epochs, about 1.6 and 0.5 after 30; docs/results.md).
"""

from jaxnas.search import config as search_config
from jaxnas.search.config import get_config as _base

VARIANTS = ("cifar10", "digits")


def get_config(variant: str = "cifar10"):
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; valid variants: {', '.join(VARIANTS)}")
    c = _base()
    c.strategy = search_config.strategy_block("gdas", tau_max=10.0, tau_min=0.1)
    c.estimator = search_config.estimator_block("first_order")
    if variant == "digits":
        c.epochs = 30
        return c
    c.dataset = "cifar10"
    c.crop_padding = 4
    c.flip = True
    c.channels = 16
    c.layers = 8
    c.epochs = 240
    c.batch_size = 128
    c.lr = 0.025
    c.lr_min = 0.001
    c.alpha_lr = 3e-4
    c.log_every_steps = 50
    c.checkpoint_every_steps = 200
    return c

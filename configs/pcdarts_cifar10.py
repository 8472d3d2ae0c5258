"""PC-DARTS (Xu et al., ICLR 2020) in the DARTS cell space.

    python -m jaxnas.search --config=configs/pcdarts_cifar10.py --workdir=runs/pcdarts_c10           # CIFAR-10
    python -m jaxnas.search --config=configs/pcdarts_cifar10.py:digits --workdir=runs/pcdarts_digits  # offline

The paper's CIFAR-10 search: partial channels K=4 with edge normalisation, C=16, 8 cells, batch
256, 50 epochs of which the first 15 train only the weights; SGD momentum 0.9, lr 0.1 cosine to
0, weight decay 3e-4, gradient clip 5; α and β by Adam lr 6e-4, β=(0.5, 0.999), weight decay
1e-3; first-order; train split 50/50. The `digits` variant is the offline default search (C=8,
5 cells, 12 epochs) with PC-DARTS and a proportionally shorter warm-up (4 epochs).
"""

from jaxnas.search import config as search_config
from jaxnas.search.config import get_config as _base

VARIANTS = ("cifar10", "digits")


def get_config(variant: str = "cifar10"):
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; valid variants: {', '.join(VARIANTS)}")
    c = _base()
    c.strategy = search_config.strategy_block("pcdarts", partial_channels=4, edge_normalization=True)
    c.estimator = search_config.estimator_block("first_order")
    if variant == "digits":
        c.alpha_warmup_epochs = 4
        return c
    c.dataset = "cifar10"
    c.crop_padding = 4
    c.flip = True
    c.channels = 16
    c.layers = 8
    c.epochs = 50
    c.alpha_warmup_epochs = 15
    c.batch_size = 256
    c.lr = 0.1
    c.lr_min = 0.0
    c.alpha_lr = 6e-4
    c.eval_batch_size = 256
    c.log_every_steps = 20
    c.checkpoint_every_steps = 50
    return c

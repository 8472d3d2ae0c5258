"""Train a genotype with the DARTS CIFAR-10 evaluation recipe (Liu et al., 2019, section A.2).

    python -m jaxnas.train --config=configs/train_darts_cifar10.py --workdir=runs/train_c10
    python -m jaxnas.train --config=configs/train_darts_cifar10.py --config.genotype=runs/c10_2nd ...

600 epochs, batch 96, C=36, 20 cells; SGD lr 0.025, momentum 0.9, weight decay 3e-4, cosine decay
to 0, gradient-norm clip 5; cutout 16; drop path 0.2 ramped linearly over training; auxiliary head
weight 0.4; random crop (pad 4) and flip. DARTS_V2 gives 3,349,342 parameters.
"""

from jaxnas.train.config import get_config as _base


def get_config():
    c = _base()
    c.genotype = "DARTS_V2"
    c.dataset = "cifar10"
    c.network = "cifar"
    c.channels = 36
    c.layers = 20
    c.auxiliary_weight = 0.4
    c.drop_path = 0.2
    c.crop_padding = 4
    c.flip = True
    c.cutout = 16
    c.epochs = 600
    c.batch_size = 96
    c.lr = 0.025
    c.lr_schedule = "cosine"
    c.momentum = 0.9
    c.weight_decay = 3e-4
    c.clip_norm = 5.0
    c.eval_batch_size = 500
    c.log_every_steps = 100
    c.checkpoint_every_steps = 500
    return c

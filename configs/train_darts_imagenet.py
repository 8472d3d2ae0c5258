"""Train a genotype with the DARTS ImageNet (mobile setting) recipe (Liu et al., 2019, section A.2).

    python -m jaxnas.train --config=configs/train_darts_imagenet.py --workdir=gs://BUCKET/train_in

C=48, 14 cells, 250 epochs, batch 128 (scale `batch_size` and `lr` together with the number of
devices), SGD lr 0.1 momentum 0.9 decayed x0.97 per epoch, weight decay 3e-5, gradient clip 5,
label smoothing 0.1, auxiliary head weight 0.4, no drop path; 224x224 random-resized crops and
flips for training, resize 256 + central 224 crop for evaluation. TFDS `imagenet2012` needs the
ILSVRC2012 tar files placed in its manual download directory first (see the TFDS catalog).
DARTS_V2 gives 4,718,752 parameters and 529.9 M multiply-adds (`python -m jaxnas.describe`).
"""

from jaxnas.train.config import get_config as _base


def get_config():
    c = _base()
    c.genotype = "DARTS_V2"
    c.dataset = "imagenet2012"
    c.train_split = "train"
    c.test_split = "validation"
    c.network = "imagenet"
    c.channels = 48
    c.layers = 14
    c.auxiliary_weight = 0.4
    c.drop_path = 0.0
    c.image_size = 224
    c.eval_resize = 256
    c.flip = True
    c.crop_padding = 0
    c.cutout = 0
    c.label_smoothing = 0.1
    c.epochs = 250
    c.batch_size = 128
    c.lr = 0.1
    c.lr_schedule = "exponential"
    c.lr_decay = 0.97
    c.momentum = 0.9
    c.weight_decay = 3e-5
    c.clip_norm = 5.0
    c.compute_dtype = "bfloat16"
    c.eval_batch_size = 500
    c.log_every_steps = 100
    c.checkpoint_every_steps = 1000
    return c

"""Train a recurrent cell on Penn Treebank with DARTS's recipe (Liu et al., ICLR 2019; the authors'
`rnn/train.py`, after AWD-LSTM).

    python -m jaxnas.train --config=configs/train_darts_ptb.py --workdir=runs/train_ptb
    python -m jaxnas.train --config=configs/train_darts_ptb.py --config.genotype=runs/rnn_ptb --workdir=...
    python -m jaxnas.train --config=configs/train_darts_ptb.py --config.network=lstm --workdir=...  # baseline

DARTS_V2 by default (the paper: 55.7 test perplexity, 23M parameters). Embedding and hidden size 850
(22,960,000 parameters with PTB's 10,000 words), batch 64, windows around 35 tokens (35, or 17.5 with
probability 0.05, plus N(0, 5), between 5 and 55), each padded to a multiple of 8 (7 compiled
shapes; docs/design.md); SGD at lr 20 scaled by the window's length over 35, weight decay 8e-7,
gradient clip 0.25, then averaged SGD once valid perplexity is worse than the best but the last 5
epochs (NT-ASGD); dropouts 0.75 (output), 0.25 (hidden), 0.75 (input), 0.2 (embedding), 0.1
(words); TAR 1e-3; valid at batch 10 each epoch, test at batch 1 with the best weights. 8000
epochs and seed 1267 are the authors' script's defaults; its runs are stopped by hand. A job for a
GPU or TPU; rerunning the command resumes it.
"""

from jaxnas import config_blocks
from jaxnas.tasks import TASK_OPTIONS
from jaxnas.train import config as train_config


def get_config():
    c = train_config.get_config()
    c.task = config_blocks.block(TASK_OPTIONS, "language_model", bptt=35, half_window_prob=0.05, length_sd=5.0,
                                 max_length_delta=20, pad_multiple=8, tar=1e-3, dropout=0.75, dropouth=0.25,
                                 dropoutx=0.75, dropouti=0.2, dropoute=0.1)
    c.dataset = "ptb"
    c.genotype = "DARTS_V2"
    c.network = "cell"
    c.channels = 850
    c.batch_size = 64
    c.eval_batch_size = 10
    c.test_batch_size = 1
    c.epochs = 8000
    c.seed = 1267
    c.lr = 20.0
    c.lr_schedule = "constant"
    c.momentum = 0.0
    c.weight_decay = 8e-7
    c.clip_norm = 0.25
    c.asgd_nonmono = 5
    c.drop_path = 0.0
    c.crop_padding = 0
    c.log_every_steps = 100
    return c

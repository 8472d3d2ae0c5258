"""Train DARTS_V2's recurrent cell offline: the PTB recipe (configs/train_darts_ptb.py) on Python's
documentation (`pydoc_data.topics`, 2,000 words), minutes on 2 CPU cores.

    python -m jaxnas.train --config=configs/train_rnn_offline.py --workdir=runs/train_rnn
    python -m jaxnas.train --config=configs/train_rnn_offline.py --config.network=lstm --workdir=runs/train_lstm

Scaled down: embedding and hidden size 64 (the paper: 850), 12 epochs, lr 5 (20; the search's
offline config found 20 too high at this size), every window padded to the longest (one compile),
NT-ASGD after 2 epochs without improvement (5). Test perplexity at batch 1 with the best weights
ends the run; docs/results.md has this cell beside the LSTM of its size.
"""

import os

from jaxnas.search.config import load_config_file


def get_config():
    c = load_config_file(os.path.join(os.path.dirname(os.path.abspath(__file__)), "train_darts_ptb.py"))
    c.dataset = "pydoc"
    c.channels = 64
    c.epochs = 12
    c.lr = 5.0
    c.seed = 0
    c.asgd_nonmono = 2
    c.task.pad_multiple = 0
    c.log_every_steps = 10
    return c

"""DARTS's recurrent cell search, offline: the language model on Python's documentation
(`pydoc_data.topics`, 2,000 words), minutes on 2 CPU cores.

    python -m jaxnas.search --config=configs/search_rnn_offline.py --workdir=runs/search_rnn

The paper's PTB search (`configs/search_darts_ptb.py`: SGD scaled by the window's length, clip 0.25,
α by Adam 3e-3, AWD-LSTM's dropouts, TAR, BPTT 35) scaled down: 64-dimensional embedding and hidden
state (the paper: 300), batch 64 (256), 8 epochs (50), weight lr 5 (20), first order
(`--config.estimator.name=unrolled` for the exact second order), seed 0. At the paper's lr 20 this
small model's training loss rose after epoch 3 and valid perplexity went 694, 502, 394, 408, 418,
434, 613, 892; at lr 5 it falls every epoch, to about 340 (docs/results.md).
"""

import os

from jaxnas.search import config as search_config


def get_config():
    c = search_config.load_config_file(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                    "search_darts_ptb.py") + ":first_order")
    c.dataset = "pydoc"
    c.channels = 64
    c.batch_size = 64
    c.epochs = 8
    c.lr = c.lr_min = 5.0
    c.seed = 0
    c.log_every_steps = 10
    return c

"""DARTS's recurrent cell search, offline: the language model on Python's documentation
(`pydoc_data.topics`, 2,000 words), minutes on 2 CPU cores.

    python -m jaxnas.search --config=configs/search_rnn_offline.py --workdir=runs/search_rnn

The paper's PTB search (`configs/search_darts_ptb.py`: SGD at lr 20 scaled by the window's length,
clip 0.25, α by Adam 3e-3, AWD-LSTM's dropouts, TAR, BPTT 35) scaled down: 64-dimensional embedding
and hidden state (the paper: 300), batch 64 (256), 8 epochs (50), first order (`--config.estimator.name=
unrolled` for the exact second order), seed 0.
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
    c.seed = 0
    c.log_every_steps = 10
    return c

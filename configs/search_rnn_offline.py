"""DARTS's recurrent cell search, offline: the language model on Python's documentation
(`pydoc_data.topics`, 2,000 words), minutes on 2 CPU cores.

    python -m jaxnas.search --config=configs/search_rnn_offline.py --workdir=runs/search_rnn

DARTS's search recipe (`configs/search_darts_ptb.py`) scaled down: 64-dimensional embedding and
hidden state (the paper: 300), batch 64 (256), 8 epochs (50); the rest as the paper and the
authors' `rnn/train_search.py`: SGD without momentum at lr 20 (scaled by the window's length over
35), weight decay 5e-7, gradient clip 0.25; α by Adam lr 3e-3, β (0.9, 0.999), weight decay 1e-3;
BPTT 35 (half of it 5 % of the time); dropouts 0.75 / 0.25 / 0.75 / 0.2 / 0 (output, hidden,
input, embedding, words); TAR 1e-3. First order; `--config.estimator.name=unrolled` for the
exact second order.
"""

from jaxnas.search import config as search_config


def get_config():
    c = search_config.get_config()
    c.task = search_config.task_block("language_model")
    c.dataset = "pydoc"
    c.space = "darts_rnn"
    c.channels = 64
    c.layers = 8
    c.batch_size = 64
    c.eval_batch_size = 10
    c.epochs = 8
    c.lr = 20.0
    c.lr_min = 20.0  # constant: the authors' search has no schedule
    c.momentum = 0.0
    c.weight_decay = 5e-7
    c.clip_norm = 0.25
    c.alpha_lr = 3e-3
    c.alpha_b1 = 0.9
    c.alpha_b2 = 0.999
    c.alpha_weight_decay = 1e-3
    c.crop_padding = 0
    c.log_every_steps = 10
    return c

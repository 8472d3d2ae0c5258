"""DARTS's recurrent cell search on Penn Treebank (Liu et al., ICLR 2019, appendix A.1.2; the authors'
`rnn/train_search.py`).

    python -m jaxnas.search --config=configs/search_darts_ptb.py --workdir=runs/rnn_ptb                # second order
    python -m jaxnas.search --config=configs/search_darts_ptb.py:first_order --workdir=runs/rnn_ptb_1st

PTB is downloaded once from Mikolov's page (`simple-examples.tgz`; LDC licence: jaxnas never ships it)
or read from `<data_dir>/downloads/manual/`. Embedding and hidden size 300, batch 256, BPTT 35 (17
with probability 0.05), 50 epochs; weights by SGD without momentum at lr 20 (scaled by the window's
length over 35), weight decay 5e-7, gradient clip 0.25; α (36 × 5, starting at 1e-3·N(0, 1) as the
code does; the paper says zeros) by Adam lr 3e-3, β (0.9, 0.999), weight decay 1e-3; dropouts 0.75
(output), 0.25 (hidden), 0.75 (input), 0.2 (embedding), 0 (words); TAR 1e-3. Second order is
`darts_fd` with ξ the current weight lr, as in the paper (`unrolled` for the exact hypergradient).
The authors' seed is 3. A job for a GPU or TPU: the paper reports 6 hours on one 1080Ti.
"""

from jaxnas.search import config as search_config

VARIANTS = ("second_order", "first_order")


def get_config(variant: str = "second_order"):
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; valid variants: {', '.join(VARIANTS)}")
    c = search_config.get_config()
    c.task = search_config.task_block("language_model", bptt=35, half_window_prob=0.05, tar=1e-3, dropout=0.75,
                                      dropouth=0.25, dropoutx=0.75, dropouti=0.2, dropoute=0.0)
    c.dataset = "ptb"
    c.space = "darts_rnn"
    c.channels = 300
    c.layers = 8
    c.batch_size = 256
    c.eval_batch_size = 10
    c.epochs = 50
    c.seed = 3
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
    c.estimator = search_config.estimator_block("darts_fd" if variant == "second_order" else "first_order")
    c.log_every_steps = 50
    return c

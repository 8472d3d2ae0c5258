"""The recurrent-cell hypergradient study on Penn Treebank at the paper's search size (embedding and
hidden 300, batch 256, BPTT 35, 50 epochs; `configs/search_darts_ptb.py:first_order`), for a GPU
(configs/study_rnn_offline.py is the offline one):

    python -m jaxnas.study --config=configs/study_darts_ptb.py --workdir=runs/study_ptb
    python -m jaxnas.study --config=configs/study_darts_ptb.py --config.search_workdir=runs/rnn_ptb_1st ...

The trajectory is the paper's first-order search (about 103 steps an epoch at batch 256),
checkpointed every 103 steps (about 20 MB a checkpoint, 50 of them); the study points, estimators
and ε scales are the offline study's. In float64 the second-order estimators hold several logits
tensors of 35 × 256 × 10,000 (0.7 GB each): a GPU with 40 GB or more.
"""

import sys


def get_config():
    sys.path.insert(0, __file__.rsplit("/", 1)[0])
    import search_darts_ptb  # the search config next to this file
    import study_rnn_offline as offline

    c = offline.get_config()
    c.search = search_darts_ptb.get_config("first_order")
    c.search.checkpoint_every_steps = 103
    c.search.keep_checkpoints = 1000
    c.search.plots = False
    return c

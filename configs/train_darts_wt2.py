"""Train a recurrent cell on WikiText-2 with DARTS's recipe: the PTB one (configs/train_darts_ptb.py)
with embedding and hidden size 700, hidden dropout 0.15 and weight decay 5e-7 (the authors' README;
the paper: 69.6 test perplexity, 33M parameters, for the PTB-searched DARTS cell).

    python -m jaxnas.train --config=configs/train_darts_wt2.py --workdir=runs/train_wt2

WikiText-2 is downloaded once (`wikitext-2-v1.zip`, CC BY-SA) or read from `<data_dir>/downloads/manual/`.
"""

import os

from jaxnas.search.config import load_config_file


def get_config():
    c = load_config_file(os.path.join(os.path.dirname(os.path.abspath(__file__)), "train_darts_ptb.py"))
    c.dataset = "wikitext2"
    c.channels = 700
    c.task.dropouth = 0.15
    c.weight_decay = 5e-7
    return c

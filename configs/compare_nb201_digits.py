"""The strategies on the NAS-Bench-201 space, offline, scored by the benchmark's ground truth:

    python -m jaxnas.compare --config=configs/compare_nb201_digits.py --workdir=runs/compare_nb201

Each strategy searches the NB201 cell on the digits (C=8, 2 cells per stage, 10 epochs) with seeds
0, 1 and 2; the table reports the NAS-Bench-201 CIFAR-10/100 and ImageNet16-120 test accuracy of
each derived cell as mean ± std over the seeds, as the NAS-Bench-201 paper reports its searches.
The search data (8x8 digits) is not the benchmark's, so the numbers say which cells each strategy
picks on this proxy task, not what it would reach searching CIFAR-10.
"""

from jaxnas.compare.config import get_config as _base


def get_config():
    c = _base()
    s = c.search
    s.space = "nb201"
    s.channels = 8
    s.layers = 2
    s.epochs = 10
    c.strategies = "darts,gdas,random_ws,enas"
    c.seeds = "0,1,2"
    return c

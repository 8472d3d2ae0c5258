"""DARTS (Liu et al., 2019): every op on every edge, mixed by softmax(α). The base behaviour."""

from jaxnas.search.strategies.base import Strategy

DARTS = Strategy("darts", spaces=("darts", "nb201", "chain", "darts_rnn"))

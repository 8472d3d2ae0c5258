"""Offline default search: first-order DARTS on scikit-learn's digits (what `python -m jaxnas.search`
runs with no flags). About 5 minutes on 2 CPU cores, most of it compiling."""

from jaxnas.search.config import get_config as _base


def get_config():
    return _base()

"""`python -m jaxnas.search --config=configs/<file>.py --workdir=DIR [--config.key=value ...]`.

With no flags: the offline digits search (`jaxnas/search/config.py`) into `runs/search`.
Rerunning a command on the same workdir resumes it from its latest checkpoint.
"""

import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from jaxnas.data.pipeline import DataError
from jaxnas.parallel import initialize_distributed
from jaxnas.search import config as default_config
from jaxnas.search.config import ConfigError
from jaxnas.search.loop import NonFiniteError, run

_CONFIG = config_flags.DEFINE_config_file(
    "config", os.path.abspath(default_config.__file__), "search config file (get_config() -> ConfigDict)",
    lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", "runs/search", "where checkpoints, metrics, genotypes and plots go")


def quiet_orbax() -> None:
    """Orbax logs every save at INFO level; keep its warnings and errors only."""
    import logging as std_logging

    logging.get_absl_handler().addFilter(lambda r: r.levelno >= std_logging.WARNING or "orbax" not in r.pathname)


def main(argv) -> None:
    quiet_orbax()
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}; use --config, --workdir and --config.key=value")
    initialize_distributed()
    try:
        run(_CONFIG.value, _WORKDIR.value)
    except (ConfigError, DataError, NonFiniteError) as e:
        logging.flush()
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    app.run(main)

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


def check_override_keys(argv: list[str]) -> None:
    """`--config.<key>=...` for a key that does not exist: one line naming the valid keys (ml_collections
    would raise a traceback from inside flag parsing)."""
    valid = set(default_config.get_config().keys())
    for arg in argv[1:]:
        if arg.startswith("--config=") or arg.startswith("--config "):
            path = arg[len("--config="):].split(":")[0]
            if not os.path.isfile(path):
                here = os.path.join(os.path.dirname(path) or ".", "")
                choices = sorted(f for f in os.listdir(here) if f.endswith(".py")) if os.path.isdir(here) else []
                print(f"error: config file {path!r} not found; files in {here}: {', '.join(choices) or 'none'}",
                      file=sys.stderr)
                sys.exit(2)
        if arg.startswith("--config."):
            key = arg[len("--config."):].split("=")[0].split(".")[0]
            if key not in valid:
                print(f"error: unknown config key {key!r}; valid keys: {', '.join(sorted(valid))}", file=sys.stderr)
                sys.exit(2)


check_override_keys(sys.argv)  # before the config flag is defined: defining it applies the overrides
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

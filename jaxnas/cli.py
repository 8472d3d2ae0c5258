"""The shared shape of `python -m jaxnas.search` and `python -m jaxnas.train`: absl flags
`--config` (an ml_collections config file, default the package's own) and `--workdir`, one-line
errors for bad input, Orbax's per-save INFO logs silenced."""

from __future__ import annotations

import logging as std_logging
import os
import sys
from collections.abc import Callable
from types import ModuleType

from absl import app, flags, logging
from ml_collections import config_flags

from jaxnas.data.pipeline import DataError
from jaxnas.parallel import initialize_distributed
from jaxnas.runs import (
    DiskFullError,
    NonFiniteError,
    disk_full_message,
    is_disk_full,
    newest_checkpoint_bytes,
    resolve_workdir,
)
from jaxnas.search.config import ConfigError


def check_override_keys(argv: list[str], valid: set[str]) -> None:
    """`--config.<key>=...` for a key that does not exist: one line naming the valid keys (ml_collections
    would raise a traceback from inside flag parsing)."""
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


def define_flags(default_config: ModuleType, default_workdir: str, what: str):
    """Define --config (default: `default_config`'s file) and --workdir; returns both flag holders."""
    check_override_keys(sys.argv, set(default_config.get_config().keys()))  # defining --config applies overrides
    config = config_flags.DEFINE_config_file("config", os.path.abspath(default_config.__file__),
                                             f"{what} config file (get_config() -> ConfigDict)", lock_config=True)
    workdir = flags.DEFINE_string("workdir", default_workdir, "where checkpoints, metrics and outputs go")
    return config, workdir


def quiet_orbax() -> None:
    """Orbax logs every save at INFO level; keep its warnings and errors only."""
    logging.get_absl_handler().addFilter(lambda r: r.levelno >= std_logging.WARNING or "orbax" not in r.pathname)


def _fail(message: str, now: bool = False) -> None:
    """The one line `error: ...` on stderr, exit status 2 (`now`: without Python's exit handlers)."""
    logging.flush()
    print(f"error: {message}", file=sys.stderr, flush=True)
    if now:
        sys.stdout.flush()
        os._exit(2)
    sys.exit(2)


def main_for(run: Callable, config_flag, workdir_flag) -> Callable:
    """The absl main: run(config, workdir), bad input reported as one line (exit status 2)."""

    def main(argv) -> None:
        quiet_orbax()
        if len(argv) > 1:
            raise app.UsageError(f"unexpected arguments {argv[1:]}; use --config, --workdir and --config.key=value")
        initialize_distributed()
        workdir = workdir_flag.value
        try:
            workdir = resolve_workdir(workdir, workdir_flag.default)  # before any expensive work
            run(config_flag.value, workdir)
        except (ConfigError, DataError, NonFiniteError) as e:
            _fail(str(e))
        except Exception as e:
            if not is_disk_full(e):
                raise
            # One line, then out at once: at exit Orbax's and TensorBoard's threads would add pages of
            # tracebacks about the same full disk. What is saved stays; the lock dies with the process.
            _fail(str(e) if isinstance(e, DiskFullError) else
                  disk_full_message(os.path.abspath(workdir), newest_checkpoint_bytes(workdir)), now=True)

    return main

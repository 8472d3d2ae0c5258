"""The shared shape of `python -m jaxnas.search` and `python -m jaxnas.train` (and study, compare):
absl flags `--config` (an ml_collections config file, default the package's own) and `--workdir`,
`--help` listing every config key, the workdir checked before any work, one-line errors for bad
input and a full disk, Orbax's per-save INFO logs silenced."""

from __future__ import annotations

import inspect
import io
import logging as std_logging
import os
import re
import sys
import tokenize
from collections.abc import Callable
from types import ModuleType

import jax
from absl import app, flags, logging
from ml_collections import config_flags

from jaxnas import config_blocks
from jaxnas.data.pipeline import DataError
from jaxnas.errors import ConfigError
from jaxnas.parallel import initialize_distributed
from jaxnas.runs import (
    DISK_FULL_TEXTS,
    EXIT_BAD_INPUT,
    EXIT_DIVERGED,
    EXIT_STOPPED,
    DiskFullError,
    NonFiniteError,
    disk_full_message,
    is_disk_full,
    newest_checkpoint_bytes,
    resolve_workdir,
)
from jaxnas.search import config as search_config
from jaxnas.search.config import load_config_file

HELP_FLAGS = ("-h", "-help", "--help", "--helpshort", "-?")
_GROUP = re.compile(r"#\s*---\s*(\w+)\s*---\s*(.*)")
_KEY = re.compile(r"c\.(\w+)\s*=")


def describe_keys(get_config: Callable) -> list[tuple[str, str, str]]:
    """(group, key, description) of every key `get_config` sets, in its order, read from its source:
    a key's description is its line's trailing comment, or else the comment lines right above it;
    its group is the last `# --- group --- [what]` line above it. The defaults and their help
    live in one place, the config module."""
    source = inspect.getsource(get_config)
    comments = {}  # line number -> (comment, whether the line holds only the comment)
    lines = source.splitlines()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            only = not lines[tok.start[0] - 1][:tok.start[1]].strip()
            comments[tok.start[0]] = (tok.string, only)
    out, group, above = [], "", []
    for number, line in enumerate(lines, 1):
        comment, only = comments.get(number, ("", False))
        if only:
            header = _GROUP.match(comment)
            if header:
                group, above = header.group(1) + (f" — {header.group(2)}" if header.group(2) else ""), []
            else:
                above.append(comment.lstrip("#").strip())
            continue
        key = _KEY.match(line.strip())
        if key:
            text = comment.lstrip("#").strip() if comment else " ".join(above)
            out.append((group, key.group(1), text))
        above = []
    return out


def _module_path(module: ModuleType) -> str:
    return module.__name__.replace(".", "/") + ".py"


def _shown(value) -> str:
    """A value as `--help` shows it: a block by its choice (`gdas {…}`), a nested config as `{…}`."""
    if hasattr(value, "keys"):
        return f"{value['name']} {{…}}" if "name" in value else "{…}"
    return repr(value)


def config_help(config_module: ModuleType, argv: list[str]) -> str:
    """The config keys grouped, each with its value and description; the values of the --config
    file in `argv` if there is one, else the defaults."""
    values, source = config_module.get_config(), _module_path(config_module)
    for arg in argv[1:]:
        if arg.startswith("--config="):
            try:
                values, source = load_config_file(arg[len("--config="):]), arg[len("--config="):]
            except Exception as e:  # a broken file: show the defaults, say why
                source += f" (--config {arg[len('--config='):]!r} did not load: {type(e).__name__})"
    rows = [(group, key, _shown(values[key]), text)
            for group, key, text in describe_keys(config_module.get_config)]
    width = max(len(k) for _, k, _, _ in rows)
    shown = max(min(len(v), 22) for _, _, v, _ in rows)
    out, last = [f"config keys (--config.<key>=VALUE), with the values of {source}:"], None
    for group, key, value, text in rows:
        if group != last:
            out.append(f"{group or 'other'}:")
            last = group
        value = value if len(value) <= shown else value[:shown - 1] + "…"
        out.append(f"  {key:<{width}}  {value:<{shown}}  {text}")
    blocks = {key: choices for key, choices in _blocks(config_module).items() if key in values}
    for key, choices in blocks.items():
        out.append(f"{key} block (--config.{key}.name=CHOICE, then --config.{key}.OPTION=VALUE), choices and "
                   "their options:")
        out += [f"  {line}" for line in config_blocks.describe(choices)]
    return "\n".join(out)


def print_help(config_module: ModuleType, default_workdir: str, what: str, argv: list[str]) -> None:
    """`--help`: the command's docstring, its flags, and every config key with its value and one
    line (absl's own --help lists only its flags; `--helpfull` still does)."""
    doc = (sys.modules["__main__"].__doc__ or "").strip()
    flags_text = (f"flags:\n  --config=FILE[:ARG]  {what} config file (get_config() -> ConfigDict); default "
                  f"{_module_path(config_module)}\n"
                  f"  --workdir=DIR        where checkpoints, metrics and outputs go; default {default_workdir}\n"
                  f"  --config.KEY=VALUE   change one key of the config (below)\n"
                  f"  --helpfull           absl's flags too")
    print(f"{doc}\n\n{flags_text}\n\n{config_help(config_module, argv)}")


def _overrides(argv: list[str]) -> list[tuple[str, str | None]]:
    """The `--config.<path>[=VALUE]` arguments of `argv` as (path, value or None)."""
    out = []
    for arg in argv[1:]:
        if arg.startswith("--config."):
            path, sep, value = arg[len("--config."):].partition("=")
            out.append((path, value if sep else None))
    return out


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
    for path, _ in _overrides(argv):
        key = path.split(".")[0]
        if key not in valid:
            print(f"error: unknown config key {key!r}; valid keys: {', '.join(sorted(valid))}", file=sys.stderr)
            sys.exit(2)


def _config_file_arg(argv: list[str]) -> tuple[str | None, list[str]]:
    """(the `--config=FILE[:ARG]` of `argv` or None, `argv` without it)."""
    spec, rest, i = None, [argv[0]], 1
    while i < len(argv):
        arg = argv[i]
        if arg.startswith("--config="):
            spec = arg[len("--config="):]
        elif arg == "--config" and i + 1 < len(argv):
            spec, i = argv[i + 1], i + 1
        else:
            rest.append(arg)
        i += 1
    return spec, rest


def _blocks(config_module: ModuleType) -> dict:
    """The config blocks ({name, ...options}) a command's config may hold, by their key."""
    return {**search_config.BLOCKS, **getattr(config_module, "BLOCKS", {})}


def apply_block_names(config, argv: list[str], blocks: dict) -> None:
    """`--config.<...>.<block>.name=X` in `argv`: that block becomes X's, with X's default options,
    before the overrides apply (so `--config.strategy.tau_max=5` exists once the name is gdas). A
    block already of choice X keeps its options."""
    for path, value in _overrides(argv):
        parts = path.split(".")
        if value is None or len(parts) < 2 or parts[-1] != "name" or parts[-2] not in blocks:
            continue
        *parents, key, _ = parts
        holder = config
        for part in parents:
            holder = holder[part]
        if key in holder and holder[key].get("name") != value:
            with holder.unlocked():
                holder[key] = config_blocks.complete({"name": value}, blocks[key], path[:-len(".name")])


def expand_block_names(argv: list[str], blocks: dict) -> list[str]:
    """`argv` with `--config.<...>.<block>=X` (a bare choice name, as users type it) written as
    `--config.<...>.<block>.name=X`: the block becomes X's with X's default options. A value that
    is a literal dict (`{...}`) is left to ml_collections."""
    out = []
    for arg in argv:
        path, sep, value = arg[len("--config."):].partition("=") if arg.startswith("--config.") else ("", "", "")
        if sep and path.split(".")[-1] in blocks and not value.lstrip().startswith("{"):
            arg = f"--config.{path}.name={value}"
        out.append(arg)
    return out


# What a `--config.KEY=VALUE` of a key holding a value of this type must look like.
_VALUE_PARSERS = {bool: (flags.BooleanParser(), "true or false"), int: (flags.IntegerParser(), "an integer"),
                  float: (flags.FloatParser(), "a number")}


def check_override_values(config, argv: list[str]) -> None:
    """ConfigError naming the key and the expected type for a `--config.KEY=VALUE` whose value does
    not parse as the key's type (absl would exit 1 with "invalid literal for int()")."""
    for path, value in _overrides(argv):
        holder = config
        for part in path.split("."):
            holder = holder[part]
        expected = _VALUE_PARSERS.get(type(holder))
        if value is None or expected is None:
            continue
        parser, what = expected
        try:
            parser.parse(value)
        except (ValueError, flags.Error):
            raise ConfigError(f"--config.{path}={value}: {path} takes {what}, e.g. {holder!r}") from None


def check_override_paths(config, argv: list[str]) -> None:
    """ConfigError naming the valid keys for a `--config.a.b=...` whose path `config` lacks (inside a
    block: the options of the block's choice)."""
    for path, value in _overrides(argv):
        if value is None:
            continue
        holder, done = config, []
        for part in path.split("."):
            if not hasattr(holder, "keys") or part not in holder:
                where = f"{'.'.join(done)}" if done else "the config"
                choice = f" ({holder['name']!r})" if hasattr(holder, "keys") and "name" in holder else ""
                valid = ", ".join(holder.keys()) if hasattr(holder, "keys") else "none (it is a value)"
                raise ConfigError(f"unknown config key {path!r}: {where}{choice} has keys {valid}")
            holder, done = holder[part], done + [part]


def define_flags(default_config: ModuleType, default_workdir: str, what: str):
    """Define --config (default: `default_config`'s file) and --workdir; returns both flag holders.
    `--help` prints the config keys (see `print_help`) and exits. The config is loaded here (the
    --config file, else the default), its blocks set by `--config.<block>.name=X`, and the other
    `--config.<key>=VALUE` overrides apply to it when the flags are parsed."""
    if any(arg in HELP_FLAGS for arg in sys.argv[1:]):
        print_help(default_config, default_workdir, what, sys.argv)
        sys.exit(0)
    check_override_keys(sys.argv, set(default_config.get_config().keys()))  # defining --config applies overrides
    spec, sys.argv[:] = _config_file_arg(sys.argv)
    sys.argv[:] = expand_block_names(sys.argv, _blocks(default_config))
    try:
        config = load_config_file(spec) if spec else default_config.get_config()
        apply_block_names(config, sys.argv, _blocks(default_config))
        check_override_paths(config, sys.argv)
        check_override_values(config, sys.argv)
    except ConfigError as e:
        _fail(str(e))
    config = config_flags.DEFINE_config_dict("config", config, f"{what} config (--config=FILE[:ARG], a file whose "
                                             "get_config() returns it)", lock_config=True)
    workdir = flags.DEFINE_string("workdir", default_workdir, "where checkpoints, metrics and outputs go")
    return config, workdir


def quiet_orbax() -> None:
    """Orbax logs every save at INFO level: keep its warnings and errors only. A full disk is
    reported by `main_for` in one line: drop Orbax's per-thread tracebacks about it, and the
    "Event loop is closed" tracebacks TensorStore prints for each write still in flight when
    Orbax gives up a failed save (the issue counted 119 and 232 of them)."""

    def keep(record) -> bool:
        if "orbax" not in record.pathname:
            return True
        if record.levelno < std_logging.WARNING:
            return False
        return not any(text in record.getMessage() for text in DISK_FULL_TEXTS)

    logging.get_absl_handler().addFilter(keep)
    previous = sys.unraisablehook

    def unraisablehook(unraisable) -> None:
        if unraisable.exc_type is RuntimeError and str(unraisable.exc_value) == "Event loop is closed":
            return
        previous(unraisable)

    sys.unraisablehook = unraisablehook


def _fail(message: str, now: bool = False, status: int = EXIT_BAD_INPUT) -> None:
    """The one line `error: ...` on stderr, exit `status` (`now`: without Python's exit handlers)."""
    logging.flush()
    print(f"error: {message}", file=sys.stderr, flush=True)
    if now:
        sys.stdout.flush()
        os._exit(status)
    sys.exit(status)


def main_for(run: Callable, config_flag, workdir_flag, closing: Callable | None = None) -> Callable:
    """The absl main: run(config, workdir), then its closing block (`closing(config, workdir, result)`:
    at most three lines: the result, where the outputs are, the next command). Bad input is one line
    (exit status 2), divergence one line (3); a run a signal stopped exits 130 (SIGINT) or 143 (SIGTERM)."""

    def main(argv) -> None:
        quiet_orbax()
        if len(argv) > 1:
            raise app.UsageError(f"unexpected arguments {argv[1:]}; use --config, --workdir and --config.key=value")
        initialize_distributed()
        workdir = workdir_flag.value
        try:
            workdir = resolve_workdir(workdir, workdir_flag.default)  # before any expensive work
            result = run(config_flag.value, workdir)
        except (ConfigError, DataError) as e:
            _fail(str(e))
        except NonFiniteError as e:
            _fail(str(e), status=EXIT_DIVERGED)
        except KeyboardInterrupt:  # a second Ctrl-C while the first waited for a step or a point to finish
            _fail("interrupted (a second Ctrl-C): stopped without saving the step in progress; rerun the same "
                  "command to resume from the last checkpoint", now=True, status=EXIT_STOPPED["SIGINT"])
        except Exception as e:
            if not is_disk_full(e):
                raise
            # One line, then out at once: at exit Orbax's and TensorBoard's threads would add pages of
            # tracebacks about the same full disk. What is saved stays; the lock dies with the process.
            _fail(str(e) if isinstance(e, DiskFullError) else
                  disk_full_message(os.path.abspath(workdir), newest_checkpoint_bytes(workdir)), now=True)
        stopped = result.get("stopped") if isinstance(result, dict) else None
        if stopped:
            logging.flush()
            sys.exit(EXIT_STOPPED[stopped])
        if closing is not None and jax.process_index() == 0:
            logging.flush()
            print("\n".join(closing(config_flag.value, workdir, result)), flush=True)

    return main

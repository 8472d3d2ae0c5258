"""What every long run (search, train) shares around its loop: a workdir checked before any
expensive work, locked while a run uses it, and refused when it holds a run with a different
config; a restart from scratch that keeps the old history; SIGTERM / Ctrl-C turned into "exit at
once" before the first step and "finish this step, save, exit" after it; and the one-line
messages for divergence and a full disk."""

from __future__ import annotations

import dataclasses
import errno
import fcntl
import json
import os
import re
import shutil
import signal
import socket
import tempfile
import threading
from collections.abc import Callable

import ml_collections
from absl import logging

from jaxnas.errors import ConfigError


class NonFiniteError(RuntimeError):
    """Too many consecutive non-finite steps; the last good checkpoint is kept."""


# The exit status of every command: 0 done, 2 bad input (one line), 3 diverged (one line), and a run
# stopped by a signal exits as the shell reports a process killed by it (128 + the signal's number),
# so a scheduler never reads a preempted run as finished. A cluster's preemption notice counts as SIGTERM.
EXIT_BAD_INPUT = 2
EXIT_DIVERGED = 3
EXIT_STOPPED = {"SIGINT": 128 + signal.SIGINT, "SIGTERM": 128 + signal.SIGTERM, "preemption": 128 + signal.SIGTERM}


class WorkdirError(ConfigError):
    """A workdir that cannot hold this run (empty name, a file, not writable, in use, another run's)."""


URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")  # gs://bucket/x, s3://..., file://...


def resolve_workdir(workdir: str, example: str = "runs/search") -> str:
    """`workdir` as an absolute path, checked before any expensive work: named, a folder (or a new
    one inside a folder) and writable. Creates nothing (a probe file is created and removed)."""
    if URL.match(workdir):
        raise WorkdirError(f"--workdir {workdir}: a URL workdir (gs://, s3://, ...) is not supported yet; use a local "
                           "folder, or one on a file system every host mounts (e.g. the bucket through gcsfuse)")
    if not workdir.strip():
        raise WorkdirError("--workdir is empty; name a folder for the run's checkpoints and outputs, e.g. "
                           f"--workdir={example}")
    path = os.path.abspath(os.path.expanduser(workdir))
    existing = path
    while not os.path.isdir(existing):
        if os.path.lexists(existing):
            what = "--workdir" if existing == path else f"--workdir {path}: its parent"
            raise WorkdirError(f"{what} {existing} is a file, not a folder; name a new folder or one holding a run")
        existing = os.path.dirname(existing)
    try:
        fd, probe = tempfile.mkstemp(prefix=".jaxnas-write-check-", dir=existing)
        os.close(fd)
        os.remove(probe)
    except OSError as e:
        where = f"--workdir {path}" if existing == path else f"--workdir {path} cannot be created: {existing}"
        raise WorkdirError(f"{where} is not writable ({e.strerror}); use a folder you can write to") from None
    return path


def has_checkpoint(workdir: str) -> bool:
    """Whether `<workdir>/checkpoints` holds a finished checkpoint (a step folder; Orbax's
    unfinished saves carry a temporary suffix)."""
    d = os.path.join(workdir, "checkpoints")
    return os.path.isdir(d) and any(n.isdigit() and os.path.isdir(os.path.join(d, n)) for n in os.listdir(d))


def config_differences(workdir: str, config: ml_collections.ConfigDict, runtime_keys: tuple[str, ...] = (),
                       defaults: ml_collections.ConfigDict | None = None,
                       upgrade: Callable[[dict], dict] | None = None) -> list[str]:
    """The keys in which `config` differs from the workdir's config.json, as 'key: saved x, now y'
    ([] without a config.json). `runtime_keys` only change how a run is watched or stored and may
    differ. A key the saved config lacks (added to jaxnas after the run started) counts as its
    value in `defaults`, and `upgrade` turns a saved config of an older layout into today's, so
    runs started by an older version still resume."""
    path = os.path.join(workdir, "config.json")
    if not os.path.exists(path):
        return []
    try:
        with open(path, encoding="utf-8") as f:
            saved = json.load(f)
        if not isinstance(saved, dict):
            raise ValueError(f"a JSON {type(saved).__name__}, not an object")
    except (UnicodeDecodeError, ValueError) as e:
        if has_checkpoint(workdir):  # which run its checkpoints belong to is unknown: touch nothing
            raise WorkdirError(f"workdir {workdir} holds checkpoints but its config.json is damaged "
                               f"({type(e).__name__}: {str(e)[:80]}); restore config.json, or use a new --workdir") \
                from None
        return ["config.json: damaged, unreadable"]  # no progress to lose: `open_workdir` sets it aside
    if upgrade is not None:
        saved = upgrade(saved)
    now = json.loads(config.to_json())
    saved = {**(json.loads(defaults.to_json()) if defaults is not None else {}), **saved}
    diff = sorted(k for k in set(saved) | set(now) if k not in runtime_keys and saved.get(k) != now.get(k))
    return [f"{k}: saved {saved.get(k)!r}, now {now.get(k)!r}" for k in diff]


def check_workdir(workdir: str, config: ml_collections.ConfigDict, runtime_keys: tuple[str, ...] = (),
                  defaults: ml_collections.ConfigDict | None = None,
                  upgrade: Callable[[dict], dict] | None = None) -> None:
    """Refuse a workdir whose checkpoints belong to a run with a different config (names the
    differing keys). A workdir without a checkpoint holds no progress and takes any config
    (`open_workdir` keeps the old config.json aside)."""
    diff = config_differences(workdir, config, runtime_keys, defaults, upgrade)
    if diff and has_checkpoint(workdir):
        raise WorkdirError(f"workdir {workdir} holds a run with a different config ({'; '.join(diff[:4])}); use a new "
                           f"--workdir or the saved config")


def set_aside(path: str) -> str:
    """Rename `dir/name.ext` to the first free `dir/name.<n>.ext` (n = 1, 2, ...); returns the new path."""
    stem, ext = os.path.splitext(path)
    n = 1
    while os.path.lexists(f"{stem}.{n}{ext}"):
        n += 1
    os.replace(path, f"{stem}.{n}{ext}")
    return f"{stem}.{n}{ext}"


def write_atomically(path: str, text: str) -> None:
    """Write `text` to `path` through a temporary file: a reader (or a rerun after a kill) never
    sees half of it."""
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


class WorkdirLock:
    """An exclusive lock on a workdir while a run uses it (`flock` on `<workdir>/lock`, holding the
    owner's PID and host): a second run on the same workdir is refused with one line instead of
    crashing inside a checkpoint save. The kernel drops the lock when its process dies, so a lock
    file left by a killed run is simply taken over. Each process of a multi-host run locks its own
    file (`lock` for process 0, `lock.<i>` for the others): the processes of one run never block
    each other, and a second run is refused on every process."""

    def __init__(self, workdir: str, process_index: int = 0):
        self.path = os.path.join(workdir, "lock" if process_index == 0 else f"lock.{process_index}")
        self._fd = None

    def __enter__(self) -> WorkdirLock:
        if self._fd is None:
            self.acquire()
        return self

    def acquire(self) -> None:
        """Take the lock, or raise WorkdirError naming the process that holds it."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                os.close(fd)
                raise
            holder = os.read(fd, 200).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise WorkdirError(f"workdir {os.path.dirname(self.path)} is in use by {holder}; wait for that run to end "
                               "or stop it, or use another --workdir") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"process {os.getpid()} on {socket.gethostname()}\n".encode())
        self._fd = fd

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def open_workdir(workdir: str, config: ml_collections.ConfigDict, runtime_keys: tuple[str, ...] = (),
                 defaults: ml_collections.ConfigDict | None = None, process_index: int = 0,
                 writer: bool = True, upgrade: Callable[[dict], dict] | None = None) -> WorkdirLock:
    """Create `workdir` (called once the data is ready, so a failed start leaves nothing behind),
    lock it, check its config again under the lock, and record the config: a workdir without a
    checkpoint takes a new config, its old config.json kept as config.<n>.json (one line says so).
    Returns the held lock (a context manager that releases it)."""
    os.makedirs(workdir, exist_ok=True)
    lock = WorkdirLock(workdir, process_index)
    lock.acquire()
    try:
        check_workdir(workdir, config, runtime_keys, defaults, upgrade)
        path = os.path.join(workdir, "config.json")
        if writer and config_differences(workdir, config, runtime_keys, defaults, upgrade):
            kept = set_aside(path)
            logging.warning("workdir %s holds no checkpoint: starting afresh with this config (the previous "
                            "config.json is kept as %s)", workdir, os.path.basename(kept))
        if writer and not os.path.exists(path):
            write_atomically(path, config.to_json(indent=2))
    except BaseException:
        lock.__exit__()
        raise
    return lock


def keep_old_metrics(workdir: str) -> None:
    """A run starting from step 0 in a workdir that holds epoch records (its checkpoints were
    deleted or all damaged): move `metrics.jsonl` to `metrics.<n>.jsonl` (one line says so)
    instead of overwriting the history."""
    path = os.path.join(workdir, "metrics.jsonl")
    if os.path.exists(path) and os.path.getsize(path) > 0:
        kept = set_aside(path)
        logging.warning("starting from step 0: the previous run's metrics.jsonl is kept as %s", os.path.basename(kept))


def nonfinite_message(count: int, step: int, checkpoints: str, steps: list[int], knobs: str) -> str:
    """What a diverged run says: where it stopped, what is kept, and what to do next."""
    head = f"{count} consecutive non-finite steps (loss or gradient NaN/inf) up to step {step}; stopped without saving"
    helps = f"a lower {knobs} or a tighter gradient clip (clip_norm)"
    if not steps:
        return (f"{head}; no checkpoint was saved yet, so the workdir holds no progress: rerun on it with {helps} "
                "(a workdir without a checkpoint takes a new config)")
    return (f"{head}; the last good checkpoint (step {steps[-1]}) is kept in {checkpoints}, but resuming it with the "
            f"same settings diverges again: start over in a new --workdir with {helps}")


def _chain(e: BaseException):
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        yield e
        e = e.__cause__ or e.__context__


DISK_FULL_TEXTS = ("No space left on device", "Disk quota exceeded")  # strerror(ENOSPC), strerror(EDQUOT)


def is_disk_full(e: BaseException) -> bool:
    """Whether `e` (or an exception it came from) is a full disk or an exceeded quota; Orbax's
    TensorStore reports them as ValueError("RESOURCE_EXHAUSTED: ... No space left on device")."""
    for x in _chain(e):
        if isinstance(x, OSError) and x.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if any(text in str(x) for text in DISK_FULL_TEXTS):
            return True
    return False


def tree_bytes(tree) -> int:
    """The bytes of a pytree's arrays (about what a checkpoint of it takes on disk)."""
    import jax

    return int(sum(getattr(x, "nbytes", 0) for x in jax.tree.leaves(tree)))


def newest_checkpoint_bytes(workdir: str) -> int | None:
    """The size on disk of the newest finished checkpoint in `<workdir>/checkpoints`, or None."""
    d = os.path.join(workdir, "checkpoints")
    steps = sorted(int(n) for n in os.listdir(d) if n.isdigit()) if os.path.isdir(d) else []
    if not steps:
        return None
    return sum(os.path.getsize(os.path.join(p, f)) for p, _, fs in os.walk(os.path.join(d, str(steps[-1])))
               for f in fs)


class DiskFullError(RuntimeError):
    """The disk holding the workdir is full; what is saved stays, and a rerun resumes."""

    def __init__(self, workdir: str, needed: int | None):
        super().__init__(disk_full_message(workdir, needed))


def save_checkpoint(ckpt, workdir: str, step: int, state, record: dict, healthy: bool = True) -> None:
    """`ckpt.save(step, state, record, healthy)`; a full disk becomes a DiskFullError naming the
    space a checkpoint needs (the checkpoints saved before stay)."""
    try:
        ckpt.save(step, state, record, healthy=healthy)
    except Exception as e:
        if not is_disk_full(e):
            raise
        raise DiskFullError(workdir, max(tree_bytes(state), newest_checkpoint_bytes(workdir) or 0)) from None


def _size(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return ""


def disk_full_message(workdir: str, needed: int | None) -> str:
    """One line: the workdir, its free space, what a checkpoint needs, and that a rerun resumes."""
    d = workdir
    while not os.path.isdir(d) and os.path.dirname(d) != d:
        d = os.path.dirname(d)
    free = shutil.disk_usage(d).free
    need = f"a checkpoint needs about {_size(needed)}" if needed else "free space for at least one checkpoint"
    kept = "its checkpoints are kept" if has_checkpoint(workdir) else "no checkpoint was saved yet"
    return (f"no space left on the device of workdir {workdir}: {_size(free)} free, {need}; {kept}; free some space "
            f"and rerun the same command to resume")


class StopSignal:
    """SIGTERM / Ctrl-C.

    Before `step_done()` (data, initialisation, the first compilation: minutes, mostly inside XLA,
    where a Python handler waits until the compile returns) the process exits at once with one
    line: no step has run since the start or the last checkpoint, so nothing needs saving (a VM
    being preempted gives ~30 s). A helper thread does it: the signal wakes it through Python's
    wakeup fd, which is written by the C-level handler without waiting for the main thread.

    After `step_done()` the request is remembered; the loop finishes the step, saves and exits.
    """

    def __init__(self):
        self.requested = None
        self._previous = {}
        self._stepped = False
        self._exiting = threading.Lock()
        self._pipe = None
        self._previous_fd = None

    def __enter__(self) -> StopSignal:
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: signals stay with the caller
                pass
        if self._previous:
            r, w = os.pipe()
            os.set_blocking(w, False)
            self._pipe = (r, w)
            self._previous_fd = signal.set_wakeup_fd(w)
            threading.Thread(target=self._watch, args=(r,), daemon=True, name="jaxnas-stop-signal").start()
        return self

    def _watch(self, r: int) -> None:
        while True:
            data = os.read(r, 1)
            if not data:  # step_done closed the pipe
                os.close(r)
                return
            if not self._stepped and data[0] in (signal.SIGTERM, signal.SIGINT):
                self._exit_now(data[0])

    def _exit_now(self, signum: int) -> None:
        if not self._exiting.acquire(blocking=False):
            threading.Event().wait()  # the other thread is exiting the process
        name = signal.Signals(signum).name
        os.write(2, f"{name} received before the first step finished: exiting now; no step has run since the start "
                    f"or the last checkpoint, so nothing needs saving (rerun the same command to go on)\n".encode())
        os._exit(128 + signum)

    def _handle(self, signum, frame):
        if not self._stepped:
            self._exit_now(signum)
        if self.requested is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C stops at once
        self.requested = signal.Signals(signum).name
        logging.warning("%s received: finishing this step, saving a checkpoint, then exiting", self.requested)

    def _close_pipe(self) -> None:
        if self._pipe is not None:
            signal.set_wakeup_fd(self._previous_fd)
            os.close(self._pipe[1])  # the helper thread reads EOF and ends
            self._pipe = None

    def step_done(self) -> None:
        """A step has run: from now on a signal means "finish this step, save, exit"."""
        if not self._stepped:
            self._stepped = True
            self._close_pipe()

    def __exit__(self, *exc):
        self._close_pipe()
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


@dataclasses.dataclass
class EpochSums:
    """Running sums of the per-step metrics of the current epoch (checkpointed mid-epoch)."""

    sums: dict
    finite_steps: int = 0
    steps: int = 0
    consecutive_nonfinite: int = 0

    @classmethod
    def empty(cls, keys) -> EpochSums:
        return cls({k: 0.0 for k in keys})

    def add(self, metrics: dict) -> None:
        self.steps += 1
        if bool(metrics["finite"]):
            self.finite_steps += 1
            self.consecutive_nonfinite = 0
            for k in self.sums:
                self.sums[k] += float(metrics[k])
        else:
            self.consecutive_nonfinite += 1

    def means(self) -> dict:
        """Per-step means over the finite steps; NaN when every step was non-finite (not 0, which
        reads as a real loss)."""
        return {k: v / self.finite_steps if self.finite_steps else float("nan") for k, v in self.sums.items()}


def skipped_note(sums: EpochSums) -> str:
    """What the epoch's log line adds when steps were skipped: its means leave them out (NaN if all were)."""
    skipped = sums.steps - sums.finite_steps
    return f" | {skipped} of {sums.steps} steps non-finite, skipped" if skipped else ""

"""What every long run (search, train) shares around its loop: refusing a workdir that holds a
different run, and turning SIGTERM / Ctrl-C into "finish this step, save, exit"."""

from __future__ import annotations

import dataclasses
import json
import os
import signal

import ml_collections
from absl import logging

from jaxnas.search.config import ConfigError


class NonFiniteError(RuntimeError):
    """Too many consecutive non-finite steps; the last good checkpoint is kept."""


def check_workdir(workdir: str, config: ml_collections.ConfigDict, runtime_keys: tuple[str, ...] = (),
                  defaults: ml_collections.ConfigDict | None = None) -> None:
    """Refuse a workdir that holds a run with a different config (names the differing keys);
    `runtime_keys` only change how a run is watched or stored and may differ. A key the saved
    config lacks (added to jaxnas after the run started) counts as its value in `defaults`, so
    runs started by an older version still resume."""
    path = os.path.join(workdir, "config.json")
    if not os.path.exists(path):
        return
    with open(path) as f:
        saved = json.load(f)
    now = json.loads(config.to_json())
    saved = {**(json.loads(defaults.to_json()) if defaults is not None else {}), **saved}
    diff = sorted(k for k in set(saved) | set(now) if k not in runtime_keys and saved.get(k) != now.get(k))
    if diff:
        shown = "; ".join(f"{k}: saved {saved.get(k)!r}, now {now.get(k)!r}" for k in diff[:4])
        raise ConfigError(f"workdir {workdir} holds a run with a different config ({shown}); use a new --workdir "
                          f"or the saved config")


class StopSignal:
    """SIGTERM / Ctrl-C: remember the request; the loop finishes the step, saves and exits."""

    def __init__(self):
        self.requested = None
        self._previous = {}

    def __enter__(self):
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: signals stay with the caller
                pass
        return self

    def _handle(self, signum, frame):
        if self.requested is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C stops at once
        self.requested = signal.Signals(signum).name
        logging.warning("%s received: finishing this step, saving a checkpoint, then exiting", self.requested)

    def __exit__(self, *exc):
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

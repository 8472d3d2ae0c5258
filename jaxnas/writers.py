"""Where a run's numbers go: `metrics.jsonl` (one object per epoch), TensorBoard event files, and a
progress line with step rate and ETA. Only process 0 writes; the others get no-op writers."""

from __future__ import annotations

import json
import os
import time

from absl import logging


def read_metrics(path: str) -> list[dict]:
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


class MetricsWriter:
    """Append per-epoch records to `<workdir>/metrics.jsonl` and TensorBoard (`<workdir>/tensorboard`)."""

    def __init__(self, workdir: str, enabled: bool = True):
        self.enabled = enabled
        self.path = os.path.join(workdir, "metrics.jsonl")
        self._tb = None
        if enabled:
            from tensorboardX import SummaryWriter

            self._tb = SummaryWriter(os.path.join(workdir, "tensorboard"))

    def keep_epochs_before(self, epoch: int) -> None:
        """Drop records of epochs >= `epoch` (written after the checkpoint a resumed run starts from)."""
        if not self.enabled:
            return
        kept = [r for r in read_metrics(self.path) if r["epoch"] < epoch]
        with open(self.path + ".tmp", "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in kept)
        os.replace(self.path + ".tmp", self.path)

    def write(self, record: dict, step: int) -> None:
        if not self.enabled:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        for key, value in record.items():
            if isinstance(value, (int, float)) and key != "epoch":
                self._tb.add_scalar(key, value, step)
        self._tb.flush()

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()


def _clock(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class Progress:
    """Logs `epoch e/E step s/S | x steps/s, y images/s | loss | ETA` as steps complete.

    The rate excludes the first step after a (re)start, which includes compilation: that line
    says so instead of showing a rate that is not known yet.
    """

    def __init__(self, total_steps: int, steps_per_epoch: int, epochs: int, batch_size: int, enabled: bool = True):
        self.total, self.per_epoch, self.epochs, self.batch_size = total_steps, steps_per_epoch, epochs, batch_size
        self.enabled = enabled
        self._t0 = None
        self._s0 = 0

    def update(self, step: int, loss: float) -> None:
        """`step` = global steps completed so far."""
        now = time.perf_counter()
        first = self._t0 is None
        if first:
            self._t0, self._s0 = now, step
        if not self.enabled:
            return
        epoch, in_epoch = divmod(step - 1, self.per_epoch)
        if first or step == self._s0:
            logging.info("epoch %d/%d step %d/%d | compiled; steps/s and ETA from the next update | train loss %.4f",
                         epoch + 1, self.epochs, in_epoch + 1, self.per_epoch, loss)
            return
        rate = (step - self._s0) / max(now - self._t0, 1e-9)
        logging.info("epoch %d/%d step %d/%d | %.2f steps/s, %.0f images/s | train loss %.4f | ETA %s",
                     epoch + 1, self.epochs, in_epoch + 1, self.per_epoch, rate, rate * self.batch_size, loss,
                     _clock((self.total - step) / rate))

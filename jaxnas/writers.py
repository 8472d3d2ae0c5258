"""Where a run's numbers go: `metrics.jsonl` (one object per epoch), TensorBoard event files, and a
progress line with step rate and ETA. Only process 0 writes; the others get no-op writers."""

from __future__ import annotations

import json
import math
import os
import time

from absl import logging


def json_safe(value):
    """`value` with every NaN/inf float replaced by None: JSON has no NaN or Infinity (Python's
    json writes them, strict parsers refuse them), so a non-finite metric is written as null."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def read_metrics(path: str) -> list[dict]:
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def _read_kept_metrics(path: str) -> list[dict]:
    """metrics.jsonl's records, less a last line torn by a kill during its write (never the
    epoch a resumed run restarts before: the checkpoint is saved after the line is written)."""
    if not os.path.exists(path):
        return []
    with open(path) as f:
        lines = [line for line in f if line.strip()]
    records = []
    for i, line in enumerate(lines):
        try:
            records.append(json.loads(line))
        except ValueError:
            if i != len(lines) - 1:
                raise
            logging.warning("metrics.jsonl: dropped a last line cut short by the interruption")
    return records


def _scalars(record: dict) -> dict[str, float]:
    """The TensorBoard scalars of an epoch record: its numbers (null: NaN), not `epoch` (the x-axis is `step`)."""
    return {k: math.nan if v is None else float(v) for k, v in record.items()
            if k != "epoch" and (v is None or isinstance(v, int | float))}


class MetricsWriter:
    """Append per-epoch records to `<workdir>/metrics.jsonl` and TensorBoard (`<workdir>/tensorboard`).

    metrics.jsonl is the record; TensorBoard mirrors it. Each `write` reaches the files before it
    returns (tensorboardX's SummaryWriter queues events to a thread, and a SIGKILL lost them), and a
    resumed run rewrites TensorBoard from metrics.jsonl (`keep_epochs_before`), so every scalar
    appears exactly once whatever the moment of the interruption.
    """

    def __init__(self, workdir: str, enabled: bool = True):
        self.enabled = enabled
        self.path = os.path.join(workdir, "metrics.jsonl")
        self.tb_dir = os.path.join(workdir, "tensorboard")
        self._events = None

    def _event_file(self):
        if self._events is None:
            from tensorboardX.event_file_writer import EventsWriter

            os.makedirs(self.tb_dir, exist_ok=True)
            self._events = EventsWriter(os.path.join(self.tb_dir, "events"))
        return self._events

    def _add_scalars(self, record: dict, step: int) -> None:
        from tensorboardX.proto.event_pb2 import Event
        from tensorboardX.proto.summary_pb2 import Summary

        values = [Summary.Value(tag=k, simple_value=v) for k, v in _scalars(record).items()]
        self._event_file().write_event(Event(wall_time=time.time(), step=step, summary=Summary(value=values)))

    def keep_epochs_before(self, epoch: int, records: list[dict] | None = None) -> None:
        """Make the files hold the epochs before `epoch` (the ones the checkpoint a resumed run starts
        from has seen): `records` when the checkpoint kept them, which restores lines a crash cut or
        lost (a power cut can lose a line written before the checkpoint); else the file's own lines
        of those epochs. TensorBoard is rewritten from them."""
        if not self.enabled:
            return
        if records is None:  # a checkpoint from before they were kept
            records = _read_kept_metrics(self.path)
        kept = [r for r in records if r["epoch"] < epoch]
        with open(self.path + ".tmp", "w") as f:
            f.writelines(json.dumps(r, allow_nan=False) + "\n" for r in kept)
        os.replace(self.path + ".tmp", self.path)
        self.close()
        if os.path.isdir(self.tb_dir):
            for name in os.listdir(self.tb_dir):
                if ".tfevents." in name:
                    os.remove(os.path.join(self.tb_dir, name))
        for r in kept:
            self._add_scalars(r, r["step"])
        self._event_file().flush()

    def write(self, record: dict, step: int) -> None:
        """Append `record` (the epoch ending at global step `step`) to both; on disk when it returns."""
        if not self.enabled:
            return
        record = json_safe(record)
        with open(self.path, "a") as f:
            f.write(json.dumps(record, allow_nan=False) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self._add_scalars(record, step)
        self._event_file().flush()

    def close(self) -> None:
        if self._events is not None:
            self._events.close()
            self._events = None


def _clock(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class Progress:
    """Logs `epoch e/E step s/S | x steps/s, y images/s | loss | ETA` as steps complete (`unit`:
    what a step reads `batch_size` of, e.g. tokens for a language model).

    The rate excludes the first step after a (re)start, which includes compilation: that line
    says so instead of showing a rate that is not known yet.
    """

    def __init__(self, total_steps: int, steps_per_epoch: int, epochs: int, batch_size: int, enabled: bool = True,
                 unit: str = "images"):
        self.total, self.per_epoch, self.epochs, self.batch_size = total_steps, steps_per_epoch, epochs, batch_size
        self.enabled, self.unit = enabled, unit
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
        logging.info("epoch %d/%d step %d/%d | %.2f steps/s, %.0f %s/s | train loss %.4f | ETA %s",
                     epoch + 1, self.epochs, in_epoch + 1, self.per_epoch, rate, rate * self.batch_size, self.unit,
                     loss, _clock((self.total - step) / rate))

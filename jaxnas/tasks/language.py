"""Language modelling: next-word prediction on a token stream, scored by perplexity (the task of
DARTS's recurrent search and of AWD-LSTM, Merity et al., 2018).

- Data: each split batchified into B columns, `(T, B)`; a step reads one BPTT window of search-train
  (weights) and one of valid (α), as the DARTS code does (`rnn/train_search.py`: α reads the
  valid stream from the train window's position, modulo its length, always `bptt` tokens).
- Window lengths: `bptt`, or half of it with probability `half_window_prob` (the search script;
  the training script draws around `bptt`). Under `jit` shapes are fixed, so every window is padded
  to `bptt` tokens and carries its length: the loss and TAR count the window's tokens only, and the
  carried hidden state and BN statistics stop at its end. The weight update is scaled by
  length/bptt, as the authors scale the learning rate (docs/design.md says why padding).
- Carried state: the hidden state of each stream, `(B, D)`, kept in the search state (whole on every
  device; each device reads its rows) and reset at each epoch's start. The train stream's comes
  from the weight step's pass; the valid stream's from a pass at the α step's (w, α) with its
  dropout masks, which is what the authors' first-order architect step hands on.
- Loss: mean NLL per token plus TAR, `tar·mean((h_t − h_{t−1})²)` over the cell's outputs before
  output dropout (β = 1e-3 in the paper), for the weight step; the α step's losses (L_val, and
  L_train inside the second-order estimators) are NLL alone, as in the authors' architect.
  Perplexity is exp of the mean NLL.
- Evaluation: the whole valid split at `eval_batch_size` columns in `bptt` windows with the hidden
  state carried, no dropout, BN's running statistics (the authors' `evaluate`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import PartitionSpec as P

from jaxnas.data.errors import DataError
from jaxnas.data.text import Corpus, batchify, check_corpus, load_corpus, vocab_size
from jaxnas.parallel import DATA_AXIS, cross_device_mean, host_batch

# The task block's options (`config.task`), with DARTS's search settings as defaults.
# `length_sd` > 0 draws lengths as the training script does (normal around bptt or bptt/2, at
# least 5, at most bptt + max_length_delta); `pad_multiple` > 0 pads each window to a multiple of it
# (one compile per padded length) instead of to the longest length.
OPTIONS = {"bptt": 35, "half_window_prob": 0.05, "tar": 1e-3, "dropout": 0.75, "dropouth": 0.25,
           "dropoutx": 0.75, "dropouti": 0.2, "dropoute": 0.0, "length_sd": 0.0, "max_length_delta": 20,
           "pad_multiple": 0}
MIN_LENGTH = 5  # the training script's shortest window


@dataclasses.dataclass(frozen=True)
class Windows:
    """BPTT windows over one batchified stream `(T, B)`: `batch(epoch, step)` is a function of
    (seed, stream, epoch, step), so a resumed run reads the same windows."""

    data: np.ndarray  # (T, B) token ids, all processes' columns
    bptt: int
    seed: int
    stream: int
    half_window_prob: float
    process_index: int = 0
    process_count: int = 1
    length_sd: float = 0.0
    max_length_delta: int = 20
    pad_multiple: int = 0

    @property
    def max_length(self) -> int:
        return self.bptt + self.max_length_delta if self.length_sd > 0 else self.bptt

    @property
    def steps_per_epoch(self) -> int:
        """Fixed-length windows: as many as fit. Drawn lengths (`length_sd`): as many as fit in the
        stream unless the draws are 3.1 standard deviations long (p ≈ 0.001), so an epoch reads
        nearly all of the stream and almost never runs past it (docs/design.md)."""
        if self.length_sd <= 0:
            return (len(self.data) - 1) // self.bptt
        pmf = self.length_pmf()
        mean = sum(k * p for k, p in pmf.items())
        sd = math.sqrt(sum((k - mean) ** 2 * p for k, p in pmf.items()))
        n = int((len(self.data) - 1) / mean)
        while n > 1 and n * mean + 3.1 * sd * math.sqrt(n) > len(self.data) - 1:
            n -= 1
        return max(1, n)

    def length_pmf(self) -> dict[int, float]:
        """The drawn length's distribution: int(N(b, sd)) (rounded toward zero, as `int` does)
        clipped to [5, max_length], b = bptt, or bptt/2 with `half_window_prob`."""
        pmf = {k: 0.0 for k in range(MIN_LENGTH, self.max_length + 1)}
        for b, p in ((self.bptt, 1.0 - self.half_window_prob), (self.bptt / 2, self.half_window_prob)):
            cdf = [0.5 * (1 + math.erf((k - b) / (self.length_sd * math.sqrt(2)))) for k in range(self.max_length + 2)]
            pmf[MIN_LENGTH] += p * cdf[MIN_LENGTH + 1]
            pmf[self.max_length] += p * (1 - cdf[self.max_length])
            for k in range(MIN_LENGTH + 1, self.max_length):
                pmf[k] += p * (cdf[k + 1] - cdf[k])
        return pmf

    def lengths(self, epoch: int) -> np.ndarray:
        """The epoch's window lengths: a function of (seed, stream, epoch). Drawn lengths that would
        run past the stream's end are cut there (later windows: length 0, a step that changes nothing)."""
        rng = np.random.default_rng([self.seed, self.stream, epoch])
        half = rng.random(self.steps_per_epoch) < self.half_window_prob
        base = np.where(half, self.bptt // 2, self.bptt)
        if self.length_sd <= 0:
            return base
        centre = np.where(half, self.bptt / 2, self.bptt)
        drawn = np.clip(np.trunc(rng.normal(centre, self.length_sd)), MIN_LENGTH, self.max_length).astype(np.int64)
        ends = np.minimum(np.cumsum(drawn), len(self.data) - 1)
        return np.diff(ends, prepend=0)

    def starts(self, epoch: int) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.lengths(epoch))[:-1]])

    def padded(self, length: int) -> int:
        """The window's length under `jit`: the longest length, or `length` rounded up to `pad_multiple`."""
        if self.pad_multiple <= 0:
            return self.max_length
        return int(min(self.max_length, max(1, math.ceil(length / self.pad_multiple)) * self.pad_multiple))

    def window(self, start: int, length: int, reset: bool) -> tuple[np.ndarray, ...]:
        """This process's (x, y, length, reset), `(B_local, padded)` tokens padded with 0 after `length`."""
        length = int(max(0, min(length, len(self.data) - 1 - start)))
        local = self.data.shape[1] // self.process_count
        cols = slice(self.process_index * local, (self.process_index + 1) * local)
        pad = self.padded(length)
        x = np.zeros((pad, local), np.int32)
        y = np.zeros((pad, local), np.int32)
        x[:length] = self.data[start:start + length, cols]
        y[:length] = self.data[start + 1:start + 1 + length, cols]
        return (np.ascontiguousarray(x.T), np.ascontiguousarray(y.T), np.full(local, length, np.int32),
                np.full(local, reset, bool))

    def batch(self, epoch: int, step: int) -> tuple[np.ndarray, ...]:
        epoch, step = epoch + step // self.steps_per_epoch, step % self.steps_per_epoch
        return self.window(int(self.starts(epoch)[step]), int(self.lengths(epoch)[step]), step == 0)


@dataclasses.dataclass(frozen=True)
class AlphaWindows:
    """The valid stream as the α step reads it: `bptt` tokens from the train window's start, modulo
    the stream's length (the DARTS search script)."""

    train: Windows
    data: np.ndarray

    def batch(self, epoch: int, step: int) -> tuple[np.ndarray, ...]:
        epoch, step = epoch + step // self.train.steps_per_epoch, step % self.train.steps_per_epoch
        start = int(self.train.starts(epoch)[step]) % (len(self.data) - 1)
        return dataclasses.replace(self.train, data=self.data).window(start, self.train.bptt, step == 0)


@dataclasses.dataclass(frozen=True)
class TextSearchData:
    train: Windows
    val: AlphaWindows
    corpus: Corpus
    steps_per_epoch: int
    num_classes: int  # the vocabulary: the decoder's outputs
    batch_size: int
    eval_batch_size: int
    bptt: int
    process_index: int = 0
    process_count: int = 1
    hidden_dim: int = 0  # the carried hidden state's width

    def eval_windows(self, split: str = "valid", batch_size: int | None = None) -> list[tuple[np.ndarray, ...]]:
        """`split` at `batch_size` (default eval_batch_size) columns in consecutive `bptt` windows."""
        stream = batchify(self.corpus.split(split), batch_size or self.eval_batch_size)
        return eval_windows(stream, self.bptt, self.process_index, self.process_count)


def eval_windows(stream: np.ndarray, bptt: int, pid: int = 0, pcount: int = 1) -> list[tuple[np.ndarray, ...]]:
    """A batchified stream in consecutive `bptt` windows (the last one shorter, padded), as the
    authors evaluate: this process's (x, y, length, reset) columns."""
    w = Windows(stream, bptt, 0, 0, 0.0, pid, pcount)
    return [w.window(start, bptt, start == 0) for start in range(0, len(stream) - 1, bptt)]


def _local_rows(tree, axis_name, rows: int):
    """This device's rows of arrays held whole on every device."""
    if axis_name is None:
        return tree
    start = jax.lax.axis_index(axis_name) * rows
    return jax.tree.map(lambda a: jax.lax.dynamic_slice_in_dim(a, start, rows, 0), tree)


def all_rows(tree, axis_name):
    """Every device's rows, gathered whole onto each (unchanged without `axis_name`)."""
    return tree if axis_name is None else jax.tree.map(lambda a: jax.lax.all_gather(a, axis_name, tiled=True), tree)


@dataclasses.dataclass(frozen=True)
class LanguageModel:
    bptt: int = 35
    half_window_prob: float = 0.05
    tar: float = 1e-3
    dropout: float = 0.75
    dropouth: float = 0.25
    dropoutx: float = 0.75
    dropouti: float = 0.2
    dropoute: float = 0.0
    length_sd: float = 0.0
    max_length_delta: int = 20
    pad_multiple: int = 0
    name: str = "language_model"
    step_metrics: tuple[str, ...] = ("train_nll",)
    eval_metrics: tuple[str, ...] = ("val_loss", "val_ppl")
    ranking: tuple[str, str, bool] = ("val_ppl", "valid ppl", False)  # (record key, its name, higher is better)

    def network_options(self) -> dict:
        return {k: getattr(self, k) for k in ("dropout", "dropouth", "dropoutx", "dropouti", "dropoute")}

    def check_data(self, config) -> None:
        check_corpus(config.dataset)

    def search_data(self, config, pid: int = 0, pcount: int = 1) -> TextSearchData:
        corpus = load_corpus(config.dataset, config.data_dir)
        train = self.windows(batchify(corpus.train, config.batch_size), config.seed, 0, pid, pcount)
        val = AlphaWindows(train, batchify(corpus.valid, config.batch_size))
        if train.steps_per_epoch < 1:
            raise DataError(f"the {config.dataset} train split at batch size {config.batch_size} is shorter than one "
                            f"window of {self.bptt} tokens")
        return TextSearchData(train, val, corpus, train.steps_per_epoch, corpus.vocab_size, config.batch_size,
                              config.eval_batch_size, self.bptt, pid, pcount, hidden_dim=config.channels)

    def windows(self, stream: np.ndarray, seed: int, stream_id: int, pid: int = 0, pcount: int = 1) -> Windows:
        """Windows over a batchified stream, lengths drawn as this task's options say."""
        return Windows(stream, self.bptt, seed, stream_id, self.half_window_prob, pid, pcount, self.length_sd,
                       self.max_length_delta, self.pad_multiple)

    def random_batches(self, config, n: int, key: jax.Array) -> tuple[None, int, list]:
        """(None, vocabulary size, `n` random full windows): what a benchmark of the step needs; the
        vocabulary of PTB and WikiText-2 is known without their data."""
        vocab = vocab_size(config.dataset, config.data_dir)
        batches = [(jax.random.randint(k, (config.batch_size, self.bptt), 0, vocab),
                    jax.random.randint(jax.random.fold_in(k, 1), (config.batch_size, self.bptt), 0, vocab),
                    jnp.full(config.batch_size, self.bptt, jnp.int32), jnp.zeros(config.batch_size, bool))
                   for k in jax.random.split(key, n)]
        return None, vocab, batches

    def sample_inputs(self, config, input_shape=None) -> tuple:
        """What the supernet is initialised with: a window of 2 columns and their hidden state."""
        return jnp.zeros((self.bptt, 2), jnp.int32), jnp.zeros((2, config.channels), jnp.float32)

    def init_carry(self, config) -> Any:
        zeros = jnp.zeros((config.batch_size, config.channels), jnp.float32)
        return {"train": zeros, "val": zeros}

    def rngs(self, key: jax.Array) -> dict:
        return {"dropout": key}

    def attach(self, carry: Any, batch: Any, axis_name=None, stream: str = "train") -> Any:
        """The batch with its stream's carried hidden state (this device's rows; zeros at a reset)."""
        x, y, length, reset = batch
        hidden = _local_rows(carry[stream], axis_name, x.shape[0])
        return x, y, length, reset, jnp.where(reset[:, None], 0.0, hidden).astype(hidden.dtype)

    def carry_after(self, carry: Any, outputs: Any, val_pass: Callable, axis_name=None) -> Any:
        """The hidden states after this step: the weight step's pass (train) and the α step's valid
        pass (`val_pass()`), gathered whole onto every device."""
        hidden = {"train": outputs["hidden"], "val": val_pass()["hidden"]}
        return {k: all_rows(h, axis_name).astype(carry[k].dtype) for k, h in hidden.items()}

    def loss(self, net, batch_stats, rngs: dict | None = None, regularised: bool = True, **forward) -> Callable:
        """loss_fn(w, α, (x, y, length, reset, hidden)) -> (NLL + TAR, ({"nll", "hidden"}, BN statistics));
        without `regularised`, NLL alone: the α step's losses, as the authors' architect computes them."""
        tar = self.tar if regularised else 0.0

        def loss_fn(w, a, batch):
            x, y, length, _, hidden = batch
            n = length[0]
            (logits, out), upd = net.apply({"params": w, "batch_stats": batch_stats}, x.T, hidden, a, train=True,
                                           length=n, mutable=["batch_stats"], rngs=rngs, **forward)
            live = (jnp.arange(x.shape[1]) < n).astype(logits.dtype)[:, None]  # (T, 1)
            nll = optax.softmax_cross_entropy_with_integer_labels(logits, y.T)
            nll = jnp.sum(nll * live) / (jnp.maximum(n, 1) * x.shape[0])
            steps = out["outputs"]
            pairs = live[1:]  # (h_t − h_{t−1})² for t = 1 .. n−1
            tar_term = jnp.sum(jnp.square(steps[1:] - steps[:-1]) * pairs[..., None]) / (
                jnp.maximum(n - 1, 1) * steps.shape[1] * steps.shape[2])
            return nll + tar * tar_term, ({"nll": nll, "hidden": out["hidden"]}, upd.get("batch_stats", batch_stats))

        return loss_fn

    def window_nll(self, net, variables, path, batch, train_mode: bool, with_hidden: bool = False):
        """(NLL summed over the window's tokens, their count), dropout off; with `with_hidden`, also
        the hidden state at the window's end."""
        x, y, length, reset, hidden = batch
        n = length[0]
        (logits, out), _ = net.apply(variables, x.T, jnp.where(reset[:, None], 0.0, hidden), path, train=train_mode,
                                     length=n, use_dropout=False, mutable=["batch_stats"])
        live = (jnp.arange(x.shape[1]) < n).astype(logits.dtype)[:, None]
        totals = jnp.sum(optax.softmax_cross_entropy_with_integer_labels(logits, y.T) * live), n * x.shape[0] * 1.0
        return (*totals, out["hidden"]) if with_hidden else totals

    def score(self, net, variables: dict, path: Any, batch: Any, train_mode: bool) -> tuple[jax.Array, jax.Array]:
        """(exp(−NLL), 1) of one architecture on a window: summed over devices, their ratio is the
        devices' mean 1/perplexity, so a higher score is a lower perplexity."""
        nll, count = self.window_nll(net, variables, path, batch, train_mode)
        return jnp.exp(-nll / count), jnp.ones(())

    def reward(self, net, variables: dict, path: Any, batch: Any, axis_name=None) -> jax.Array:
        """ENAS's reward of a sampled cell: c / perplexity on a valid window, c = 80 (Pham et al.,
        2018), BN on the batch, no dropout."""
        nll, count = self.window_nll(net, variables, path, batch, True)
        nll = cross_device_mean(nll / count, axis_name)
        return 80.0 * jnp.exp(-nll)

    def score_batch(self, data: TextSearchData) -> tuple:
        """The window sampled cells are scored on: the first of valid, from a zero hidden state."""
        x, y, length, reset = data.eval_windows()[0]
        return x, y, length, reset, np.zeros((x.shape[0], data.hidden_dim), np.float32)

    def update_scale(self, batch: Any) -> jax.Array:
        """The factor of a window's weight update: its length over `bptt` (the authors' lr scaling)."""
        return batch[2][0].astype(jnp.float32) / self.bptt

    def metrics(self, outputs: Any, batch: Any, mean: Callable) -> dict:
        return {"train_nll": mean(outputs["nll"])}

    def epoch_metrics(self, means: dict) -> dict:
        return {"train_loss": means["train_loss"], "train_ppl": math.exp(min(means["train_nll"], 50.0))}

    def evaluator(self, net, mesh, train_mode: bool) -> Callable:
        """evaluate(state, α, data) -> {"val_loss", "val_ppl"}: valid in order, hidden state carried."""

        def window_totals(state_and_alphas, *batch):
            state, alphas = state_and_alphas
            variables = {"params": state.params, "batch_stats": state.batch_stats}
            nll, count, hidden = self.window_nll(net, variables, alphas, batch, train_mode, with_hidden=True)
            return jax.lax.psum(jnp.stack([nll, count]), DATA_AXIS), hidden

        mapped = jax.jit(jax.shard_map(window_totals, mesh=mesh, in_specs=(P(),) + (P(DATA_AXIS),) * 5,
                                       out_specs=(P(), P(DATA_AXIS)), check_vma=False))

        def evaluate(state, alphas, data: TextSearchData) -> dict:
            windows = data.eval_windows()
            hidden = host_batch(np.zeros((windows[0][0].shape[0], data.hidden_dim), np.float32), mesh)
            totals = np.zeros(2)
            for window in windows:
                t, hidden = mapped((state, alphas), *host_batch(window, mesh), hidden)
                totals += np.asarray(jax.device_get(t), np.float64)
            loss = totals[0] / totals[1]
            return {"val_loss": loss, "val_ppl": math.exp(min(loss, 50.0))}

        return evaluate

    def throughput(self, config) -> tuple[int, str]:
        return config.batch_size * self.bptt, "tokens"

    def headline(self, record: dict) -> str:
        return f"valid perplexity {record['val_ppl']:.2f}"

    def progress(self, record: dict) -> str:
        return (f"train loss {record['train_loss']:.4f} ppl {record['train_ppl']:.2f} | valid ppl "
                f"{record['val_ppl']:.2f}")


"""Training a recurrent cell as a language model (`python -m jaxnas.train` with the language_model
task): windows drawn as the authors' training script draws them, the SGD step against the update
written out here, NT-ASGD's trigger and its uniform average, the LSTM baseline against a numpy
LSTM, and a run that switches to averaging, resumes exactly and reports test perplexity."""

import json
import os
import shutil

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from jaxnas import config_blocks
from jaxnas.errors import ConfigError
from jaxnas.nn.rnn import LstmNetwork, lstm_cell_params, matching_lstm, rnn_network
from jaxnas.search.config import load_config_file
from jaxnas.tasks import TASK_OPTIONS, get_task
from jaxnas.tasks.language import Windows
from jaxnas.train import language
from jaxnas.train import loop as train_loop
from jaxnas.train.step import optimizer
from jaxnas.vocabulary.darts_rnn import DARTS_V2

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_drawn_windows_follow_the_training_script():
    """Lengths int(N(35 or 17.5, 5)) in [5, 55] (the authors' `train.py`), a function of (seed,
    epoch); consecutive, never past the stream; padded to multiples of 8 up to 55."""
    stream = np.arange(14_000 * 4, dtype=np.int32).reshape(4, 14_000).T
    w = Windows(stream, 35, seed=3, stream=0, half_window_prob=0.05, length_sd=5.0, max_length_delta=20,
                pad_multiple=8)
    lengths = w.lengths(2)
    assert np.array_equal(lengths, w.lengths(2)) and not np.array_equal(lengths, w.lengths(3))
    assert lengths.min() >= 5 and lengths.max() <= 55 and lengths.sum() <= len(stream) - 1
    # The epoch reads nearly all of the stream: its windows are as many as fit with a margin of
    # 3.1 standard deviations of their sum, so the unread tail is within a few of them.
    pmf = w.length_pmf()
    mean = sum(k * p for k, p in pmf.items())
    sd = np.sqrt(sum((k - mean) ** 2 * p for k, p in pmf.items()))
    n = len(lengths)
    assert n == w.steps_per_epoch and (n + 1) * mean > len(stream) - 1 - 3.2 * sd * np.sqrt(n + 1)
    assert len(stream) - 1 - lengths.sum() < mean + 7.2 * sd * np.sqrt(n)
    # The distribution against a Monte Carlo of the script's own draw.
    rng = np.random.default_rng(0)
    centre = np.where(rng.random(400_000) < 0.95, 35.0, 17.5)
    draws = np.minimum(np.maximum(5, np.trunc(rng.normal(centre, 5))), 55)
    assert abs(draws.mean() - mean) < 0.05
    assert abs(np.mean(draws == 5) - pmf[5]) < 2e-3 and abs(np.mean(draws == 35) - pmf[35]) < 2e-3
    x, y, length, reset = w.batch(2, 1)
    n = int(lengths[1])
    assert x.shape == (4, -(-n // 8) * 8) and length[0] == n and not reset[0]
    np.testing.assert_array_equal(x[:, :n], stream[lengths[0]:lengths[0] + n].T)
    np.testing.assert_array_equal(y[:, :n], stream[lengths[0] + 1:lengths[0] + 1 + n].T)
    assert np.all(x[:, n:] == 0) and w.batch(2, 0)[3][0]
    assert {w.padded(k) for k in range(5, 56)} == {8, 16, 24, 32, 40, 48, 55}


@pytest.mark.parametrize("history,switch", [
    ([5.0, 4.0, 3.0], False),  # improving
    ([5.0, 4.0, 6.0], False),  # worse than all, but only 2 earlier epochs (needs more than nonmono=2)
    ([5.0, 4.0, 3.9, 4.5], False),  # the epochs before the last 2 hold only 5.0, and 4.5 is better
    ([5.0, 4.0, 3.9, 3.8, 4.5], True),  # worse than 4.0, the best before the last 2
    ([5.0, 4.0, 3.9, 3.8, 3.95], False),  # worse than the last ones, not than 4.0
    ([5.0, 4.0, 3.9, 3.8, 6.0], False),  # already averaging (the last record says so)
])
def test_nt_asgd_switches_as_the_authors_rule(history, switch):
    """`len(best) > nonmono and val > min(best[:-nonmono])` over the non-averaged epochs."""
    records = [{"val_loss": v, "averaged": False} for v in history]
    if history[-1] == 6.0 and len(history) == 5:
        records[-1]["averaged"] = True
    assert language.should_switch(records, 2) is switch
    assert not language.should_switch(records, 0)


def _tiny(vocab=11, dim=6):
    task = get_task(config_blocks.block(TASK_OPTIONS, "language_model", bptt=7, dropout=0.3, dropouth=0.2,
                                       dropoutx=0.1, dropouti=0.2, dropoute=0.1, tar=1e-2))
    net = rnn_network(DARTS_V2, vocab, dim, **task.network_options())
    return task, net


def _batch(key, b=4, t=7, vocab=11, n=5):
    x = jax.random.randint(key, (b, t), 0, vocab)
    y = jax.random.randint(jax.random.fold_in(key, 1), (b, t), 0, vocab)
    return x, y, jnp.full(b, n, jnp.int32), jnp.zeros(b, bool)


def test_train_step_is_clipped_sgd_scaled_by_the_window_and_averages_uniformly():
    """One step = p − lr·(n/bptt)·(clip(∇) + wd·p), ∇ of NLL + TAR at the carried hidden state with
    the step's dropout key; once averaging, `average` is the plain mean of the iterates since."""
    task, net = _tiny()
    lr, wd, clip = 3.0, 1e-3, 0.5
    opt = optimizer(lambda _: lr, 0.0, wd, clip)
    state = language.init_state(net, jax.random.key(0), opt, 4)
    state = state.replace(hidden=jax.random.normal(jax.random.key(5), state.hidden.shape) * 0.3)
    step = jax.jit(language.make_train_step(net, task, opt))
    batch = _batch(jax.random.key(1))
    new, metrics = step(state, batch)

    _, key = jax.random.split(state.rng)
    x, y, length, reset = batch

    def loss(w):
        (logits, out), _ = net.apply({"params": w}, x.T, state.hidden, None, train=True, length=5,
                                     mutable=["batch_stats"], rngs={"dropout": key})
        nll = optax.softmax_cross_entropy_with_integer_labels(logits[:5], y.T[:5]).mean()
        h = out["outputs"][:5]
        return nll + 1e-2 * jnp.mean(jnp.square(h[1:] - h[:-1]))

    g = jax.grad(loss)(state.params)
    norm = np.sqrt(sum(float(jnp.sum(jnp.square(v))) for v in jax.tree.leaves(g)))
    want = jax.tree.map(lambda p, d: p - lr * 5 / 7 * (d * min(1.0, clip / norm) + wd * p), state.params, g)
    for a, b in zip(jax.tree.leaves(new.params), jax.tree.leaves(want), strict=True):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-6)
    np.testing.assert_allclose(metrics["train_loss"], loss(state.params), rtol=1e-5)
    for a, b in zip(jax.tree.leaves(new.average), jax.tree.leaves(new.params), strict=True):
        np.testing.assert_array_equal(a, b)  # before the switch the average follows the weights

    state = new.replace(averaging=jnp.array(True))
    iterates = []
    for i in range(3):
        state, _ = step(state, _batch(jax.random.key(10 + i)))
        iterates.append(state.params)
    mean = jax.tree.map(lambda *ps: np.mean(np.stack(ps), 0), *iterates)
    for a, b in zip(jax.tree.leaves(state.average), jax.tree.leaves(mean), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    assert int(state.averaged_steps) == 3
    # A window past the stream's end (length 0) moves nothing and is not averaged.
    empty = (*_batch(jax.random.key(20))[:2], jnp.zeros(4, jnp.int32), jnp.zeros(4, bool))
    after, _ = step(state, empty)
    for a, b in zip(jax.tree.leaves((after.params, after.average)), jax.tree.leaves((state.params, state.average)),
                    strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-7)
    assert int(after.averaged_steps) == 3


def test_epoch_update_keeps_the_best_evaluated_weights_and_switches():
    task, net = _tiny()
    opt = optimizer(lambda _: 1.0, 0.0, 0.0, 1.0)
    state = language.init_state(net, jax.random.key(0), opt, 4)
    moved = state.replace(params=jax.tree.map(lambda p: p + 1.0, state.params), averaging=jnp.array(True))
    better = language.epoch_update(moved, jnp.float32(3.0), jnp.array(False))
    assert float(better.best_val) == 3.0  # the average (still the initial weights) was evaluated and kept
    for a, b in zip(jax.tree.leaves(better.best), jax.tree.leaves(state.average), strict=True):
        np.testing.assert_array_equal(a, b)
    worse = language.epoch_update(better.replace(averaging=jnp.array(False)), jnp.float32(4.0), jnp.array(True))
    assert float(worse.best_val) == 3.0 and bool(worse.averaging)
    for a, b in zip(jax.tree.leaves(worse.best), jax.tree.leaves(better.best), strict=True):
        np.testing.assert_array_equal(a, b)


def _numpy_lstm(params, x, h1, c1, h2, c2):
    def sig(v):
        return 1 / (1 + np.exp(-v))

    def layer(w, b, inp, h, c):
        n = h.shape[-1]
        z = np.concatenate([inp, h], -1) @ w + b
        i, f, g, o = z[:, :n], z[:, n:2 * n], z[:, 2 * n:3 * n], z[:, 3 * n:]
        c = sig(f) * c + sig(i) * np.tanh(g)
        return sig(o) * np.tanh(c), c

    outs = []
    for t in range(x.shape[0]):
        h1, c1 = layer(params["W1"], params["b1"], x[t], h1, c1)
        h2, c2 = layer(params["W2"], params["b2"], h1, h2, c2)
        outs.append(h2)
    return np.stack(outs), np.concatenate([h1, c1, c2, h2], -1)


def test_lstm_baseline_against_numpy_and_sized_to_the_cell():
    vocab, dim, hidden = 13, 5, 7
    net = LstmNetwork(vocab_size=vocab, dim=dim, hidden=hidden)
    tokens = jax.random.randint(jax.random.key(0), (6, 3), 0, vocab)
    state = jax.random.normal(jax.random.key(1), (3, net.state_size)) * 0.5
    params = net.init(jax.random.key(2), tokens, state)["params"]
    params = jax.tree.map(lambda p: p + 0.1 * jax.random.normal(jax.random.key(3), p.shape), params)
    logits, out = net.apply({"params": params}, tokens, state)
    p = jax.tree.map(np.asarray, params)
    emb = p["embedding"][np.asarray(tokens)]
    s = np.asarray(state)
    h1, c1, c2, h2 = s[:, :hidden], s[:, hidden:2 * hidden], s[:, 2 * hidden:2 * hidden + dim], s[:, -dim:]
    outs, last = _numpy_lstm(p, emb, h1, c1, h2, c2)
    np.testing.assert_allclose(out["outputs"], outs, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out["hidden"], last, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(logits, outs @ p["embedding"].T + p["bias"], rtol=1e-5, atol=1e-5)
    # At the paper's size the LSTM's weights match the cell's 20·850² within one unit of width.
    cell = 20 * 850**2
    width = matching_lstm(850, cell)
    assert abs(lstm_cell_params(850, width) - cell) <= lstm_cell_params(850, width + 1) - lstm_cell_params(850, width)
    counted = sum(v.size for v in jax.tree.leaves(params)) - vocab * dim - vocab
    assert counted == lstm_cell_params(dim, hidden)


def test_bad_network_or_cell_is_one_line():
    config = load_config_file(os.path.join(ROOT, "configs", "train_rnn_offline.py"))
    config.network = "cifar"
    with pytest.raises(ConfigError, match="unknown network 'cifar'; valid choices: cell, lstm$"):
        train_loop.run(config, "/nonexistent/never-created")
    config.network, config.genotype = "cell", "DARTS_V3"
    with pytest.raises(ConfigError, match="unknown recurrent cell 'DARTS_V3'"):
        train_loop.run(config, "/nonexistent/never-created")
    assert not os.path.exists("/nonexistent")


def _tiny_config(xla_cache: str, network: str = "cell") -> ml_collections.ConfigDict:
    c = load_config_file(os.path.join(ROOT, "configs", "train_rnn_offline.py"))
    c.channels, c.batch_size, c.epochs, c.eval_batch_size = 8, 512, 2, 64
    c.task.bptt, c.task.length_sd, c.task.max_length_delta = 12, 2.0, 4  # one padded length: one compile
    c.test_batch_size = 16
    c.asgd_nonmono = 1
    c.network = network
    c.checkpoint_every_steps, c.keep_checkpoints = 5, 100
    c.compilation_cache = xla_cache
    return c


def test_offline_training_switches_to_averaging_and_resumes_exactly(tmp_path, xla_cache, monkeypatch):
    """A run that averages from its second epoch (the trigger forced), killed mid-epoch and resumed
    from that checkpoint, ends as the uninterrupted run; its result holds test perplexity."""
    monkeypatch.setattr(language, "should_switch", lambda history, nonmono: len(history) == 1)
    full = tmp_path / "full"
    result = train_loop.run(_tiny_config(xla_cache), str(full))
    metrics = [json.loads(line) for line in open(full / "metrics.jsonl")]
    assert [m["averaged"] for m in metrics] == [False, True]
    assert result["averaging_from_epoch"] == 2 and 1 < result["test_ppl"] < 2002
    assert result["valid_ppl"] == pytest.approx(min(m["val_ppl"] for m in metrics), rel=1e-6)
    assert result["genotype"] == DARTS_V2.to_dict()
    spe = metrics[0]["step"]
    mid = [s for s in sorted(int(n) for n in os.listdir(full / "checkpoints") if n.isdigit()) if spe < s < 2 * spe
           and s % spe][0]
    resumed = tmp_path / "resumed"
    os.makedirs(resumed / "checkpoints")
    shutil.copy(full / "config.json", resumed)
    shutil.copytree(full / "checkpoints" / str(mid), resumed / "checkpoints" / str(mid))
    again = train_loop.run(_tiny_config(xla_cache), str(resumed))
    assert again == result
    assert [{k: v for k, v in json.loads(line).items() if k != "seconds"} for line in open(resumed / "metrics.jsonl")] \
        == [{k: v for k, v in m.items() if k != "seconds"} for m in metrics]

"""The language-model task on the shared engine: BPTT windows as the DARTS loop walks the stream,
padded windows scored as short ones, NLL + TAR against a hand computation, first-order and exact
unrolled α gradients against float64 central differences (the first order of the per-edge numpy
loop in test_rnn), and `python -m jaxnas.search` on the offline corpus: perplexity falls, and a run
resumed from a mid-epoch checkpoint (hidden states carried in it) ends as the uninterrupted one."""

import os
import shutil
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import search_outputs, subprocess_env
from test_rnn import ref_search

from jaxnas.nn.rnn import RnnSupernet
from jaxnas.search import hypergrad
from jaxnas.search.state import inner_optimizer
from jaxnas.tasks.language import AlphaWindows, LanguageModel, Windows
from jaxnas.vocabulary.darts_rnn import RNN_OPS, num_edges

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_windows_walk_the_stream_as_the_darts_loop():
    stream = np.arange(400, dtype=np.int32).reshape(100, 4)
    w = Windows(stream, bptt=10, seed=3, stream=0, half_window_prob=0.3)
    val = AlphaWindows(w, np.arange(120, dtype=np.int32).reshape(30, 4) + 1000)
    for epoch in (0, 1):
        rng = np.random.default_rng([3, 0, epoch])
        lengths = np.where(rng.random(9) < 0.3, 5, 10)
        assert 5 in lengths and 10 in lengths
        i = 0
        for step in range(w.steps_per_epoch):
            x, y, length, reset = w.batch(epoch, step)
            n = lengths[step]
            assert x.shape == (4, 10) and (length == n).all() and (reset == (step == 0)).all()
            np.testing.assert_array_equal(x[:, :n], stream[i:i + n].T)
            np.testing.assert_array_equal(y[:, :n], stream[i + 1:i + 1 + n].T)
            assert (x[:, n:] == 0).all()
            vx, vy, vlength, _ = val.batch(epoch, step)
            j = i % 29
            m = min(10, 29 - j)
            assert (vlength == m).all()
            np.testing.assert_array_equal(vx[:, :m], val.data[j:j + m].T)
            i += n
    assert w.batch(0, w.steps_per_epoch)[0].tolist() == w.batch(1, 0)[0].tolist()  # a step past the end wraps


V, D, T, B = 13, 4, 4, 3
TASK = LanguageModel(bptt=T, tar=0.3, dropout=0.0, dropouth=0.0, dropoutx=0.0, dropouti=0.0, dropoute=0.0)


@pytest.fixture(scope="module")
def problem():
    k = jax.random.split(jax.random.key(0), 6)
    net = RnnSupernet(vocab_size=V, dim=D, **TASK.network_options())
    alpha = jax.random.normal(k[0], (num_edges(), len(RNN_OPS)), jnp.float64)
    x = jax.random.randint(k[1], (B, T), 0, V)
    variables = net.init(k[2], x.T, jnp.zeros((B, D)), {"recurrent": alpha})
    params = jax.tree.map(lambda a: a.astype(jnp.float64) * 5, variables["params"])  # larger than ±0.04: a real test
    stats = {"mean": jnp.zeros(D, jnp.float64), "var": jnp.ones(D, jnp.float64)}

    def batch(key, length):
        kx, ky, kh = jax.random.split(key, 3)
        return (jax.random.randint(kx, (B, T), 0, V), jax.random.randint(ky, (B, T), 0, V), jnp.full(B, length),
                jnp.zeros(B, bool), jax.random.normal(kh, (B, D), jnp.float64) * 0.3)

    return net, params, stats, {"recurrent": alpha}, batch(k[3], T), batch(k[4], T - 1)


def _ref_loss(params, stats, alpha, batch):
    """NLL per token + tar·mean((h_t − h_{t−1})²) of the numpy loop, over the window's `length` tokens."""
    x, y, length, _, hidden = (np.asarray(a) for a in batch)
    n = int(length[0])
    p = jax.tree.map(np.asarray, params)
    logits, _, _ = ref_search(p, np.asarray(alpha), x.T[:n], hidden, (np.asarray(stats["mean"]),
                                                                       np.asarray(stats["var"])))
    z = logits - logits.max(-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
    nll = -np.take_along_axis(logp, y.T[:n, :, None], -1).mean()
    # the outputs (hidden states) again, for TAR: the logits are outputs @ E.T + b
    outputs = np.linalg.lstsq(p["embedding"], (logits - p["bias"]).reshape(-1, V).T, rcond=None)[0].T.reshape(n, B, D)
    tar = np.mean(np.square(outputs[1:] - outputs[:-1]))
    return nll + TASK.tar * tar


def test_loss_is_nll_plus_tar_over_the_window_length(problem):
    net, params, stats, alphas, full, short = problem
    for batch in (full, short):
        loss, (out, _) = TASK.loss(net, stats)(params, alphas, batch)
        assert abs(float(loss) - _ref_loss(params, stats, alphas["recurrent"], batch)) < 1e-9
    # padding changes nothing: the short window's loss with other tokens after its end
    x, y, length, reset, hidden = short
    changed = (x.at[:, -1].set(0), y.at[:, -1].set(1), length, reset, hidden)
    a, (out_a, _) = TASK.loss(net, stats)(params, alphas, short)
    b, (out_b, _) = TASK.loss(net, stats)(params, alphas, changed)
    assert float(a) == float(b) and np.array_equal(out_a["hidden"], out_b["hidden"])


def _central(f, alpha, entries, eps=1e-6):
    out = []
    for row, k in entries:
        d = np.zeros(alpha.shape)
        d[row, k] = eps
        out.append((f(alpha + d) - f(alpha - d)) / (2 * eps))
    return np.asarray(out)


ENTRIES = [(0, 0), (0, 2), (5, 1), (17, 4), (35, 3), (30, 0)]


def test_first_order_alpha_gradient_against_the_loop(problem):
    net, params, stats, alphas, train, val = problem
    d_alpha, _ = hypergrad.first_order(TASK.loss(net, stats), params, alphas, None, None, (train,), val)
    fd = _central(lambda a: _ref_loss(params, stats, a, val), np.asarray(alphas["recurrent"]), ENTRIES)
    got = np.asarray([d_alpha["recurrent"][r, k] for r, k in ENTRIES])
    np.testing.assert_allclose(got, fd, rtol=1e-6, atol=1e-9)


def test_unrolled_alpha_gradient_against_central_differences(problem):
    """dα of L_val(w'(α), α), w' one step of SGD with weight decay through a BPTT window."""
    net, params, stats, alphas, train, val = problem
    inner = inner_optimizer(lambda count: 0.5, momentum=0.0, weight_decay=1e-3)
    loss_fn = TASK.loss(net, stats)
    state = inner.init(params)
    d_alpha, _ = hypergrad.unrolled(loss_fn, params, alphas, inner, state, (train,), val, steps=1)

    @jax.jit
    def val_after_step(a):
        a = {"recurrent": a}
        g = jax.grad(lambda w: loss_fn(w, a, train)[0])(params)
        updates, _ = inner.update(g, state, params)
        return loss_fn(optax.apply_updates(params, updates), a, val)[0]

    fd = _central(lambda a: float(val_after_step(jnp.asarray(a))), np.asarray(alphas["recurrent"]), ENTRIES)
    got = np.asarray([d_alpha["recurrent"][r, k] for r, k in ENTRIES])
    np.testing.assert_allclose(got, fd, rtol=1e-6, atol=1e-9)


# 9 steps an epoch (the corpus at 512 columns, windows of 20 tokens), checkpoints inside epochs
TINY = ["--config=" + os.path.join(ROOT, "configs", "search_rnn_offline.py"), "--config.channels=8",
        "--config.epochs=2", "--config.batch_size=512", "--config.eval_batch_size=64", "--config.task.bptt=20",
        "--config.checkpoint_every_steps=4", "--config.plots=False"]


def _search(workdir, cache, *flags):
    r = subprocess.run([sys.executable, "-m", "jaxnas.search", f"--workdir={workdir}",
                        f"--config.compilation_cache={cache}", *TINY, *flags], env=subprocess_env(),
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    return r


_outputs = search_outputs


def test_offline_search_learns_and_resumes_exactly(tmp_path, xla_cache):
    full = str(tmp_path / "full")
    r = _search(full, xla_cache)
    assert "search done: valid perplexity" in r.stdout
    alphas, genotype, metrics = _outputs(full)
    assert [m["epoch"] for m in metrics] == [1, 2]
    assert metrics[1]["val_ppl"] < metrics[0]["val_ppl"] < 2002  # below a uniform guess over the vocabulary
    assert len(genotype["recurrent"]) == 8
    checkpoints = sorted(int(n) for n in os.listdir(os.path.join(full, "checkpoints")) if n.isdigit())
    mid = [s for s in checkpoints if s % metrics[0]["step"]][0]  # inside an epoch: hidden states in flight
    resumed = str(tmp_path / "resumed")
    os.makedirs(os.path.join(resumed, "checkpoints"))
    shutil.copy(os.path.join(full, "config.json"), resumed)
    shutil.copytree(os.path.join(full, "checkpoints", str(mid)), os.path.join(resumed, "checkpoints", str(mid)))
    r = _search(resumed, xla_cache)
    assert f"resumed from checkpoint at step {mid}" in r.stderr
    a2, g2, m2 = _outputs(resumed)
    np.testing.assert_array_equal(a2["recurrent"], alphas["recurrent"])
    assert g2 == genotype and m2 == metrics


def test_enas_reward_and_candidate_score_are_inverse_perplexities(problem):
    """ENAS's reward of a cell on a valid window is 80/perplexity (Pham et al.); the score that ranks
    candidate cells is 1/perplexity; both without dropout and from the window's tokens only."""
    from jaxnas.spaces.darts_rnn import DartsRnnSpace

    net, params, stats, _, _, short = problem
    space = DartsRnnSpace(channels=D, mixing="path")
    path = space.path(space.decisions_of(space.arch_from_decisions([0, 1] + [1, 2] * 7)))
    path_net = net.clone(mixing="path")
    variables = {"params": params, "batch_stats": stats}
    nll = path_net.apply(variables, short[0].T, short[4], path, train=True, length=short[2][0],
                         mutable=["batch_stats"])[0][0]
    n = int(short[2][0])
    logp = jax.nn.log_softmax(nll[:n])
    mean_nll = -float(jnp.take_along_axis(logp, short[1].T[:n, :, None], -1).mean())
    assert abs(float(TASK.reward(path_net, variables, path, short)) - 80 * np.exp(-mean_nll)) < 1e-9
    score, count = TASK.score(path_net, variables, path, short, True)
    assert abs(float(score / count) - np.exp(-mean_nll)) < 1e-12


def test_two_devices_equal_one_device_in_float64():
    """The recurrent search step (hidden states carried by rows, dropout masks drawn per global batch,
    BatchNorm statistics over all devices) and the cell's training step on 2 devices end where 1
    device does, to float64 rounding. (In float32 runs, rounding differences grow over an epoch at
    lr 5-20: the curves of a 1- and a 2-device run part after the first epoch.)"""
    env = subprocess_env(devices=2, x64=True, PYTHONPATH=ROOT)
    out = subprocess.run([sys.executable, os.path.join(ROOT, "tests", "lm_parallel_check.py"), "first_order"],
                         capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    fields = dict(kv.split("=") for kv in out.stdout.split())
    assert fields["devices"] == "2" and fields["x64"] == "True"
    assert float(fields["alpha_moved"]) > 1e-4  # the steps did something
    assert float(fields["search_diff"]) < 1e-10 and float(fields["train_diff"]) < 1e-10, out.stdout

"""The hypergradient study on the recurrent supernet (darts_rnn, the language model task), on a tiny
corpus: at a mid-epoch checkpoint the study's first-order estimate is the α gradient the search step
itself took there (its logged norm), its exact reference (`unrolled_k1`) equals jax.grad through one
SGD step written out here from the task's windows, the carried hidden states and the step's dropout
key, and DARTS's finite difference of the second-order term at a tiny ε equals the exact one in
float64. A language model's study runs at the search's batch size only. The cell has one node (its
five ops mixed on one edge): every node's trace is compiled several times, and the test must stay
under a minute."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxnas.checkpoint import Checkpointer
from jaxnas.data import text
from jaxnas.errors import ConfigError
from jaxnas.search import config as search_config
from jaxnas.study import config as study_config
from jaxnas.study import loop
from jaxnas.tasks import get_task

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEPS_PER_EPOCH = 17  # 4,390 train tokens at 32 columns, windows of 8


def _tiny_corpus(data_dir: str) -> None:
    """A 42-word corpus (pydoc's first lines, words outside its 40 most frequent as <unk>; 4,390 /
    523 / 104 tokens) written as a prepared corpus (`text.corpus_dir`), so no archive is read."""
    splits = text.pydoc_splits(vocab_size=40)
    corpus = text.build_corpus("ptb", {s: splits[s][:n] for s, n in (("train", 375), ("valid", 50), ("test", 12))})
    folder = text.corpus_dir("ptb", data_dir)
    os.makedirs(folder)
    for s in text.SPLITS:
        np.save(os.path.join(folder, f"{s}.npy"), corpus.split(s))
    with open(os.path.join(folder, "vocab.txt"), "w", encoding="utf-8") as f:
        f.write("".join(f"{t}\n" for t in corpus.vocab))


def _config(tmp_path, cache: str):
    config = study_config.get_config()
    config.search = search_config.load_config_file(os.path.join(ROOT, "configs", "search_rnn_offline.py"))
    s = config.search
    s.update(dict(dataset="ptb", data_dir=str(tmp_path / "data"), channels=8, layers=1, batch_size=32,
                  eval_batch_size=32, epochs=1, checkpoint_every_steps=1, keep_checkpoints=1000, plots=False))
    s.task.bptt = 8
    config.estimators = [{"name": "first_order"}]  # (darts_fd's difference alone: mixed_eps)
    config.fast_compile = True
    config.reference = {"name": "unrolled", "steps": 1}
    config.mixed_eps = "1e-6"
    config.points = "0.5"  # step 8: inside the epoch, so the carried hidden states are not reset
    config.compilation_cache = cache
    return config


@pytest.fixture
def search_precision():
    """The search in float32, as `python -m jaxnas.study` runs it (the suite turns x64 on; the
    recurrent supernet's α would then be float64); the study turns float64 on itself."""
    before = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", False)
    yield
    jax.config.update("jax_enable_x64", before)


def _unrolled_by_hand(config, state, net, task):
    """dα of L_val(w − lr·(∇w L_train + wd·w), α) in float64 (momentum 0, as the recipe), from the
    state before the studied step: its windows, the hidden states it carries, the α step's dropout key."""
    s = config.search
    data = task.search_data(s)
    epoch, i = divmod(int(state.step), data.steps_per_epoch)
    key = jax.random.split(jax.random.fold_in(state.rng, state.step))[0]  # (α step, weight step)
    f64 = lambda t: jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), t)  # noqa: E731
    w, stats, alphas = f64(state.params), f64(state.batch_stats), f64(state.alphas)

    def window(batch, hidden):
        x, y, length, reset = batch
        assert not reset.any()
        return jnp.asarray(x), jnp.asarray(y), int(length[0]), f64(hidden)

    train = window(data.train.batch(epoch, i), state.carry["train"])
    val = window(data.val.batch(epoch, i), state.carry["val"])

    def nll(w, a, batch):
        x, y, n, hidden = batch
        (logits, _), _ = net.apply({"params": w, "batch_stats": stats}, x.T, hidden, a, train=True, length=n,
                                   mutable=["batch_stats"], rngs={"dropout": key})
        return optax.softmax_cross_entropy_with_integer_labels(logits[:n], y.T[:n]).mean()

    def val_after_sgd(a):
        g = jax.grad(nll)(w, a, train)
        w1 = jax.tree.map(lambda p, d: p - s.lr * (d + s.weight_decay * p), w, g)
        return nll(w1, a, val)

    assert s.momentum == 0 and task.tar > 0  # (the α step's losses leave TAR out: the weight step's has it)
    return jax.jit(jax.grad(val_after_sgd))(alphas)


def test_the_study_on_the_recurrent_supernet_evaluates_the_search_steps_losses(tmp_path, xla_cache, monkeypatch,
                                                                                search_precision):
    _tiny_corpus(str(tmp_path / "data"))
    config = _config(tmp_path, xla_cache)
    estimates, points = {}, []
    call, evaluate = loop._Estimators.__call__, loop._evaluate_step

    def spy_call(self, spec, *args, **kwargs):
        out = call(self, spec, *args, **kwargs)
        estimates[spec.label] = jax.tree.map(np.asarray, out[0])
        return out

    def spy_evaluate(*args):
        points.append(args[-1])
        return evaluate(*args)

    monkeypatch.setattr(loop._Estimators, "__call__", spy_call)
    monkeypatch.setattr(loop, "_evaluate_step", spy_evaluate)
    workdir = str(tmp_path / "study")
    summary = loop.run(config, workdir)
    assert os.path.getsize(os.path.join(workdir, "summary.md")) > 0
    (point,) = points
    state = point.state
    assert int(state.step) == STEPS_PER_EPOCH // 2

    # The search step's own first-order α gradient at this state: its norm, from the running sums
    # the checkpoints before and after the step hold (a float32 step against the study's float64).
    ckpt = Checkpointer(os.path.join(workdir, "search", "checkpoints"))
    sums = [ckpt.restore(s, state)[1]["sums"]["sums"]["hypergrad_norm"] for s in (8, 9)]
    norm = np.sqrt(sum(np.sum(np.square(v)) for v in jax.tree.leaves(estimates["first_order"])))
    np.testing.assert_allclose(norm, sums[1] - sums[0], rtol=1e-4)

    # The exact reference, against the one-step hypergradient written out here.
    s_config = search_config.resolve(config.search)
    space, _ = search_config.space_and_strategy(s_config)
    task = get_task(s_config.task)
    net = space.supernet(task.search_data(s_config).num_classes)
    expected = _unrolled_by_hand(config, state, net, task)
    np.testing.assert_allclose(estimates["unrolled_k1"]["recurrent"], expected["recurrent"], rtol=1e-9, atol=1e-15)

    # DARTS's finite difference of the second-order term is exact as ε -> 0 in float64.
    assert summary["mixed_fd_eps1e-06"]["cosine"][0] > 1 - 1e-9
    assert summary["mixed_fd_eps1e-06"]["rel_l2"][0] < 1e-6
    assert summary["first_order"]["rel_l2"][0] > 1e-3  # the second-order term is there to be measured


def test_a_language_model_is_studied_at_the_search_batch_size_only():
    config = search_config.load_config_file(os.path.join(ROOT, "configs", "study_rnn_offline.py"))
    study_config.validate(config)
    config.batch_sizes = f"{config.search.batch_size}"
    study_config.validate(config)
    config.batch_sizes = "8,64"
    with pytest.raises(ConfigError, match="studied at that size only"):
        study_config.validate(config)


def test_the_recurrent_study_configs():
    offline = search_config.load_config_file(os.path.join(ROOT, "configs", "study_rnn_offline.py"))
    ptb = search_config.load_config_file(os.path.join(ROOT, "configs", "study_darts_ptb.py"))
    for config in (offline, ptb):
        study_config.validate(config)
        s = config.search
        assert (s.space, s.estimator.name, s.task.name) == ("darts_rnn", "first_order", "language_model")
        assert study_config.reference_spec(config).label == "unrolled_k1" and config.batch_sizes == ""
        assert {"first_order", "darts_fd"} <= {e.label for e in study_config.estimator_specs(config)}
    assert (offline.search.dataset, ptb.search.dataset) == ("pydoc", "ptb")
    assert (ptb.search.channels, ptb.search.batch_size, ptb.search.epochs, ptb.search.lr) == (300, 256, 50, 20.0)
    assert [e.label for e in study_config.estimator_specs(ptb)] == [
        e.label for e in study_config.estimator_specs(offline)]

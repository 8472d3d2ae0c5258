"""The sampling strategies' parts against independent computations: decision sequences and their
paths, the one-hot path supernets, ENAS's controller and REINFORCE, PNAS's progressive search.

The end-to-end runs (4 devices, exact resume) are in test_search_run.
"""

import functools
import itertools
import math

import jax
import jax.flatten_util
import jax.numpy as jnp
import jax.test_util
import numpy as np
import optax
import pytest
import scipy.stats

from jaxnas.compilation import FAST_COMPILE
from jaxnas.nn.nb201 import NB201Cell
from jaxnas.search import config as config_lib
from jaxnas.search.config import ConfigError, get_config
from jaxnas.search.strategies import enas_controller as ctl
from jaxnas.search.strategies import pnas_surrogate as pnas
from jaxnas.spaces import darts, nb201
from jaxnas.spaces.base import get_space
from jaxnas.spaces.decisions import Decision, check_values, sample_uniform
from jaxnas.vocabulary.darts import DARTS_V2

# --- decisions and paths ------------------------------------------------------------------------


def test_uniform_darts_cells_are_valid_and_uniform():
    """Every uniformly drawn DARTS cell is a genotype with two distinct inputs per node, its path
    has exactly those edges (all others `none`), decisions round-trip, and the draws are uniform."""
    decisions = darts.decisions()
    values = np.asarray(jax.jit(jax.vmap(lambda k: sample_uniform(decisions, k)))(
        jax.random.split(jax.random.key(0), 4000)))
    for v in values[:50]:
        check_values(decisions, v)
        genotype = darts.decisions_to_genotype(v)
        np.testing.assert_array_equal(darts.genotype_to_decisions(genotype), v)
        path = darts.decisions_to_path(v)
        for kind, pairs in (("normal", genotype.normal), ("reduce", genotype.reduce)):
            expected = np.zeros(darts.NUM_EDGES, int)  # `none` everywhere but the chosen edges
            for k, (op, j) in enumerate(pairs):
                expected[darts.edge_inputs().index((k // 2, j))] = darts.PRIMITIVES.index(op)
            np.testing.assert_array_equal(np.argmax(path[kind], -1), expected)
            assert np.all(np.asarray(path[kind]).sum(-1) == 1)
    # Node 3's first input is uniform over its 5 states; its second never repeats the first.
    first, second = values[:, 12], values[:, 14]
    assert np.all(first != second)
    freq = np.bincount(first, minlength=5) / len(values)
    np.testing.assert_allclose(freq, 0.2, atol=4 * math.sqrt(0.2 * 0.8 / len(values)))
    ops = np.bincount(values[:, 1::2].ravel(), minlength=7) / values[:, 1::2].size
    np.testing.assert_allclose(ops, 1 / 7, atol=0.01)


def test_malformed_decisions_are_named():
    with pytest.raises(ValueError, match="decision 2 .input. is 0; valid values 0..1 except decision 0's"):
        check_values(darts.decisions()[:4], [0, 3, 0, 1])
    with pytest.raises(ValueError, match="op 'none' is not a sampled op"):
        darts.genotype_to_decisions(darts.Genotype((("none", 0), ("skip_connect", 1)) * 4, (2, 3, 4, 5),
                                                   DARTS_V2.reduce, (2, 3, 4, 5)))


@pytest.mark.parametrize("name, options", [
    ("chain", dict(channels=4, layers=3)),
    ("nb201", dict(channels=4, cells_per_stage=1)),
    ("darts", dict(channels=4, layers=1, impl="reference")),
])
def test_path_supernet_equals_the_softmax_supernet_at_a_one_hot(name, options):
    """`mixing='path'` (only the chosen op of each edge runs, behind a switch) computes what the
    softmax supernet computes when softmax(α) is that one-hot (α = 1e4·one-hot), on the same weights."""
    soft, path_space = get_space(name, **options), get_space(name, mixing="path", **options)
    x = jax.random.normal(jax.random.key(1), (4, 8, 8, 3), jnp.float32)
    net_soft, net_path = soft.supernet(10), path_space.supernet(10)
    # Per-edge layouts initialise eagerly in seconds; a jitted init compiles ~400 initialisers.
    variables = net_soft.init(jax.random.key(0), x, soft.init_alphas(jax.random.key(0)), train=False)
    apply_soft = jax.jit(lambda a: net_soft.apply(variables, x, a, train=True, mutable=["batch_stats"])[0],
                         compiler_options=FAST_COMPILE)
    apply_path = jax.jit(lambda p: net_path.apply(variables, x, p, train=True, mutable=["batch_stats"])[0],
                         compiler_options=FAST_COMPILE)
    for seed in (3, 4):
        values = sample_uniform(path_space.decisions(), jax.random.key(seed))
        path = jax.tree.map(lambda p: p.astype(jnp.float32), path_space.path(values))
        y_soft = apply_soft({k: 1e4 * p for k, p in path.items()})
        np.testing.assert_allclose(apply_path(path), y_soft, rtol=1e-5, atol=1e-5)
        arch = path_space.arch_from_decisions(values)
        np.testing.assert_array_equal(path_space.decisions_of(arch), values)


def test_scanned_nb201_path_cell_equals_the_unrolled_cell():
    """The NB201 path cell's scan over its 6 edges (one compiled switch) computes what the unrolled
    edges compute: output, every op's BN statistics and the weight gradients (float64)."""
    x = jax.random.normal(jax.random.key(0), (2, 8, 8, 4), jnp.float64)
    unrolled, scanned = (NB201Cell(4, path=True, scan_edges=s) for s in (False, True))
    uniform = jnp.full((len(nb201.EDGES), len(nb201.OPS)), 1.0 / len(nb201.OPS), jnp.float64)
    v = jax.tree.map(lambda t: t.astype(jnp.float64), unrolled.init(jax.random.key(1), x, uniform, False))
    for seed in (2, 3):
        path = jax.nn.one_hot(jax.random.randint(jax.random.key(seed), (len(nb201.EDGES),), 0, len(nb201.OPS)),
                              len(nb201.OPS), dtype=jnp.float64)

        def run(cell, params, path=path):
            out, upd = cell.apply({"params": params, "batch_stats": v["batch_stats"]}, x, path, True,
                                  mutable=["batch_stats"])
            return jnp.sum(jnp.sin(out)), (out, upd["batch_stats"])

        reference = jax.value_and_grad(functools.partial(run, unrolled), has_aux=True)  # eager
        (_, (want, want_stats)), want_g = reference(v["params"])
        (_, (got, got_stats)), got_g = jax.jit(jax.value_and_grad(functools.partial(run, scanned), has_aux=True),
                                               compiler_options=FAST_COMPILE)(v["params"])
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
        assert jax.tree.structure((got_stats, got_g)) == jax.tree.structure((want_stats, want_g))
        for a, b in zip(jax.tree.leaves((got_stats, got_g)), jax.tree.leaves((want_stats, want_g))):
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


# --- ENAS's controller --------------------------------------------------------------------------


def _enumerate(decisions):
    """Every valid value sequence of a small decision space."""
    out = []
    for v in itertools.product(*(range(d.choices) for d in decisions)):
        if all(d.exclude is None or v[i] != v[d.exclude] for i, d in enumerate(decisions)):
            out.append(v)
    return np.asarray(out, np.int32)


def test_controller_probabilities_sum_to_one_and_respect_exclusions():
    decisions = (Decision("input", 3), Decision("op", 2), Decision("input", 3, exclude=0))
    c = ctl.Controller(decisions, hidden=4)
    params = ctl.init_controller(c, jax.random.key(0))
    archs = _enumerate(decisions)
    logp = jax.jit(jax.vmap(lambda v: c.apply({"params": params}, values=v)[1]))(archs)
    np.testing.assert_allclose(float(jnp.sum(jnp.exp(logp))), 1.0, rtol=1e-10)
    drawn = jax.jit(lambda k: ctl.sample(c, params, k, 500))(jax.random.key(1))
    assert np.all(drawn[:, 0] != drawn[:, 2])


def test_reinforce_gradient_is_the_exact_policy_gradient_on_a_tiny_controller():
    """On a space small enough to enumerate (3 layers of 2 ops), the REINFORCE loss's gradient is, in
    expectation, −∇E[R] with E[R] = Σ_a p(a)·R(a) computed exactly; checked on many samples (baseline
    0, no entropy bonus), within 5 standard errors. The loss's own gradient is checked against
    float64 finite differences."""
    decisions = tuple(Decision("op", 2) for _ in range(3))
    c = ctl.Controller(decisions, hidden=3, temperature=1.0, tanh_constant=2.0)
    params = jax.tree.map(lambda p: p.astype(jnp.float64), ctl.init_controller(c, jax.random.key(0)))
    archs = _enumerate(decisions)
    table = jnp.asarray(np.random.default_rng(0).uniform(size=len(archs)))
    index = jnp.asarray([4, 2, 1])

    def reward_fn(values):
        return table[values @ index]

    def expected_reward(p):
        logp = jax.vmap(lambda v: c.apply({"params": p}, values=v)[1])(archs)
        return jnp.sum(jnp.exp(logp) * table[archs @ index])

    exact = jax.grad(expected_reward)(params)
    n, chunks = 4000, 10
    estimate = jax.jit(lambda k: jax.flatten_util.ravel_pytree(ctl.reinforce_gradient(
        c, params, reward_fn, jnp.zeros((), jnp.float64), k, n, entropy_weight=0.0, baseline_decay=1.0)[0])[0])
    estimates = [estimate(jax.random.key(10 + i)) for i in range(chunks)]
    estimates = -np.stack(estimates)  # the loss is −(R − b)·log p: its gradient estimates −∇E[R]
    flat_exact = np.asarray(jax.flatten_util.ravel_pytree(exact)[0])
    mean, sem = estimates.mean(0), estimates.std(0, ddof=1) / math.sqrt(chunks)
    assert np.all(np.abs(mean - flat_exact) <= 5 * sem + 1e-6), np.abs(mean - flat_exact) / (sem + 1e-12)
    assert np.abs(flat_exact).max() > 10 * sem.max()  # the check has the power to see a wrong gradient

    values = ctl.sample(c, params, jax.random.key(3), 5)
    adv = jnp.asarray(np.random.default_rng(1).normal(size=5))
    jax.test_util.check_grads(lambda p: ctl.reinforce_loss(c, p, values, adv, 0.1), (params,), order=1,
                              modes=("rev",), eps=1e-6)


def test_controller_learns_a_preferred_op():
    """With a reward that counts how many edges carry op 3, the controller's probability of op 3
    rises above 0.9 within 200 steps (NB201 cell, 6 op decisions of 5 values)."""
    c = ctl.Controller(nb201.decisions(), hidden=16)
    params = ctl.init_controller(c, jax.random.key(0))
    opt = optax.adam(0.01)

    def reward_fn(values):
        return jnp.mean(values == 3, axis=1).astype(jnp.float32)

    @jax.jit
    def update(p, s, b, k):  # one controller step, as ENAS's strategy takes it
        grads, b, metrics = ctl.reinforce_gradient(c, p, reward_fn, b, k, 8, 1e-4, 0.9)
        updates, s = opt.update(grads, s, p)
        return optax.apply_updates(p, updates), s, b, metrics

    state, baseline = opt.init(params), jnp.zeros((), jnp.float32)
    draw = jax.jit(lambda p: ctl.sample(c, p, jax.random.key(9), 1000))
    before = float(jnp.mean(draw(params) == 3))
    for i in range(200):
        params, state, baseline, _ = update(params, state, baseline, jax.random.fold_in(jax.random.key(1), i))
    after = float(jnp.mean(draw(params) == 3))
    assert before < 0.3 and after > 0.9, (before, after)


# --- PNAS ---------------------------------------------------------------------------------------


def test_block_counts_and_encoding():
    assert [len(pnas.blocks_at(n)) for n in range(4)] == [math.comb(n + 2, 2) * 49 for n in range(4)]
    cell = ((0, 1, 1, 2), (0, 3, 2, 4))
    code = pnas.encode([cell])[0]
    assert code.sum() == pytest.approx(4.0) and code[0] == pytest.approx(1.0)  # input 0 used by both blocks
    # A full cell is a DARTS genotype used as both cells; a partial one leaves later nodes empty.
    full = cell + ((1, 0, 3, 5), (2, 6, 4, 6))
    genotype = darts.decisions_to_genotype(pnas.cell_decisions(full))
    assert genotype.normal == genotype.reduce and genotype.normal[2] == ("sep_conv_3x3", 0)
    path = pnas.cell_path(cell)["normal"]
    assert np.argmax(path, -1).tolist() == [2, 3, 4, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0]


def test_spearman_matches_scipy():
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 5, 30), rng.normal(size=30)  # ties in a
    assert pnas.spearman(a, b) == pytest.approx(scipy.stats.spearmanr(a, b).statistic, abs=1e-12)


@pytest.mark.parametrize("seed", [0, 1])
def test_pnas_finds_the_optimum_of_a_synthetic_score_with_few_evaluations(seed):
    """Score = Σ over blocks of per-op scores: the optimum puts the best op everywhere. PNAS (beam 8)
    finds it with 49 + 3·8 evaluations; exhaustive search over 4-block cells needs ~10⁹."""
    op_score = np.random.default_rng(seed).normal(size=7)  # seed 1: the best two ops differ by 0.08
    evaluations = []

    def evaluate(cells):
        evaluations.append(len(cells))
        return np.array([sum(op_score[a] + op_score[b] for _, a, _, b in cell) for cell in cells])

    cell, score, stages = pnas.progressive_search(evaluate, jax.random.key(0), beam=8)
    assert score == pytest.approx(8 * op_score.max())
    assert all(a == b == int(np.argmax(op_score)) for _, a, _, b in cell)
    exhaustive = math.prod(len(pnas.blocks_at(n)) for n in range(4))
    assert sum(evaluations) == 49 + 3 * 8 and exhaustive > 10**9
    assert [s.blocks for s in stages] == [1, 2, 3, 4] and stages[1].candidates == 8 * len(pnas.blocks_at(1))


def test_pnas_surrogate_ranks_unseen_cells():
    """The surrogate fit on one-block cells of an additive score ranks two-block cells it never saw
    (Spearman > 0.9), since a cell is the mean of its blocks' codes."""
    rng = np.random.default_rng(1)
    op_score, in_score = rng.normal(size=7), rng.normal(size=5)

    def score(cell):
        return np.mean([op_score[a] + op_score[b] + in_score[i] + in_score[j] for i, a, j, b in cell])

    seen = [(b,) for b in pnas.blocks_at(0)] + [(b,) for b in pnas.blocks_at(1)[:60]]
    queries = [((0, a, 1, b), (0, c, 2, d)) for a, b, c, d in rng.integers(0, 7, (100, 4))]
    predicted = pnas.MLPEnsemble().fit_predict(jax.random.key(0), pnas.encode(seen),
                                               np.array([score(c) for c in seen]), pnas.encode(queries))
    assert pnas.spearman(predicted, [score(c) for c in queries]) > 0.9


# --- configuration ------------------------------------------------------------------------------


@pytest.mark.parametrize("changes, message", [
    ({"strategy": {"name": "random_ws"}, "estimator": {"name": "unrolled"}},
     "estimator applies to the gradient strategies"),
    ({"strategy": {"name": "enas"}, "cost_weight": 1e-3}, "cost_weight applies to the gradient strategies"),
    ({"strategy": {"name": "pnas"}, "space": "chain"}, "strategy 'pnas' works in space.s. darts, not 'chain'"),
    ({"strategy": {"name": "pnas", "evaluator": "oracle"}},
     "unknown strategy.evaluator 'oracle'; valid: inherited, scratch"),
    ({"strategy": {"name": "enas", "reward_cost": -0.1}, "space": "nb201"}, "strategy.reward_cost must be >= 0"),
    ({"strategy": {"name": "enas", "baseline_decay": 1.0}}, "strategy.baseline_decay must be in"),
    ({"strategy": {"name": "random_ws", "derive_samples": 0}}, "derive_samples must be a positive integer"),
    ({"strategy": {"name": "pnas", "derive_samples": 8}}, "strategy 'pnas' has no option.s. derive_samples"),
])
def test_bad_sampling_configs_are_named(changes, message):
    config = get_config()
    config.update(changes)
    with pytest.raises(ConfigError, match=message):
        config_lib.validate(config)


def test_enas_reward_cost_of_a_path_is_the_genotype_cost():
    """The parameter cost ENAS subtracts from a sampled cell's reward is what the cost tables give
    the same cell as a genotype (`cost.derived_cost`, the resource-aware search's count)."""
    from jaxnas.spaces.cost import darts_costs, derived_cost, path_cost

    costs = darts_costs(4, 3, (8, 8), "params")
    for seed in range(3):
        values = sample_uniform(darts.decisions(), jax.random.key(seed))
        genotype = darts.decisions_to_genotype(values)
        assert float(path_cost(darts.decisions_to_path(values), costs)) == pytest.approx(
            derived_cost(genotype, costs), rel=1e-12)


def test_scratch_evaluation_trains_each_candidate_from_the_same_fresh_weights(tmp_path):
    """PNAS's scratch evaluator: training a path for k steps starts from the initial weights every
    time (no candidate inherits another's training), is deterministic, and changes the weights."""
    from jaxnas.parallel import data_mesh, replicate
    from jaxnas.search import loop

    config = get_config()
    config.update({"space": "chain", "channels": 4, "layers": 2, "strategy": {"name": "random_ws"}, "batch_size": 16,
                   "data_dir": str(tmp_path / "tfds")})
    config = config_lib.resolve(config)
    space, strategy = config_lib.space_and_strategy(config)
    data = loop.search_data(config)
    setup = loop.search_setup(config, space, strategy, data.num_classes, data.image_shape, data.steps_per_epoch)
    mesh = data_mesh()
    context = loop._derive_context(config, setup, mesh, data)
    a, b = (jax.tree.map(np.asarray, space.path(jnp.asarray(v, jnp.int32))) for v in ([0, 1], [3, 2]))
    first = context.train_fresh(a, 3)
    context.train_fresh(b, 3)
    again = context.train_fresh(a, 3)
    initial = replicate(setup.init(), mesh)
    leaves = lambda s: jax.tree.leaves(jax.device_get(s.params))  # noqa: E731
    for p, q in zip(leaves(first), leaves(again)):
        np.testing.assert_array_equal(p, q)
    assert any(not np.array_equal(p, q) for p, q in zip(leaves(first), leaves(initial)))
    accuracy = context.score(first, {k: v[None] for k, v in a.items()})
    assert accuracy.shape == (1,) and 0 <= accuracy[0] <= 1

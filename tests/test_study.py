"""The hypergradient study: its comparison metrics on hand-made vectors, estimator names, the
implicit estimator approaching the exact implicit hypergradient with k (known inner optimum), and a
small offline study end to end (darts_fd against unrolled(1) in float64, reproducible, resumable)."""

import csv
import os
import re
import signal

import numpy as np
import optax
import pytest
from test_hypergrad import quadratic_problem

from jaxnas.search import hypergrad
from jaxnas.search.config import ConfigError
from jaxnas.study import loop
from jaxnas.study.config import estimator_grid, estimator_specs, get_config, reference_spec


def test_compare_on_hand_made_vectors():
    r = {"a": np.array([1.0, 0.0]), "b": np.array([[0.0, 2.0]])}
    same = loop.compare(r, r)
    assert same == pytest.approx({"cosine": 1.0, "rel_l2": 0.0, "sign_agreement": 1.0})
    e = {"a": np.array([1.0, 1.0]), "b": np.array([[0.0, -2.0]])}  # vs (1, 0, 0, 2)
    got = loop.compare(e, r)
    assert got["cosine"] == pytest.approx((1 - 4) / (np.sqrt(6) * np.sqrt(5)))
    assert got["rel_l2"] == pytest.approx(np.sqrt(1 + 16) / np.sqrt(5))
    assert got["sign_agreement"] == pytest.approx(2 / 4)  # the first (+) and third (0) entries agree


def test_estimators_are_config_blocks_with_labels():
    config = get_config()
    specs = estimator_specs(config)
    assert [s.label for s in specs[:3]] == ["first_order", "darts_fd", "darts_fd_eps0.001"]
    assert {"unrolled_k4", "implicit_cg_k20"} <= {s.label for s in specs}
    config.estimators = [{"name": "darts_fd", "eps_scale": 0.1}, {"name": "implicit", "method": "neumann"}]
    (fd, neumann) = estimator_specs(config)
    assert (fd.label, fd.kwargs, fd.weight_steps) == ("darts_fd_eps0.1", {"eps_scale": 0.1}, 1)
    # the options a block leaves out are the search's defaults
    assert neumann.kwargs == {"method": "neumann", "iterations": 5, "step_size": 0.01, "tol": 1e-10}
    bad = [([{"name": "unrolled", "k": 2}], r"estimators\[0\] 'unrolled' has no option.s. k; its options: steps"),
           ([{"name": "second_order"}], r"unknown estimators\[0\].name 'second_order'"),
           ([{"name": "unrolled", "steps": 0}], "estimators.0.: estimator.steps must be a positive"),
           ([{"name": "darts_fd"}, {"name": "darts_fd", "eps_scale": 0.01}], "repeated: darts_fd")]
    for estimators, message in bad:
        config.estimators = estimators
        with pytest.raises(ConfigError, match=message):
            estimator_specs(config)


def test_gdas_searches_cannot_be_studied():
    from jaxnas.study.config import validate

    config = get_config()
    config.search.space, config.search.strategy.name = "darts", "gdas"
    with pytest.raises(ConfigError, match="search.strategy 'gdas' cannot be studied"):
        validate(config)


@pytest.mark.parametrize("method", ["neumann", "cg"])
def test_implicit_cosine_to_the_exact_implicit_hypergradient_rises_with_k(method):
    loss_fn, w, alpha, exact, top_eig = quadratic_problem(n=12, m=4, seed=3)
    opt = optax.sgd(0.1)
    cosines = []
    for k in (1, 3, 10, 100):
        d, _ = hypergrad.implicit(loss_fn, w, alpha, opt, opt.init(w), ["train"], "val", method=method,
                                  iterations=k, step_size=1.0 / top_eig)
        cosines.append(loop.compare({"a": d}, {"a": exact})["cosine"])
    assert all(b >= a - 1e-9 for a, b in zip(cosines, cosines[1:])), cosines
    assert cosines[-1] > 1 - 1e-9 and cosines[0] < cosines[-1], cosines


def _tiny(tmp_path):
    config = get_config()
    s = config.search
    s.update(dict(channels=4, layers=2, epochs=1, checkpoint_every_steps=10, data_dir=str(tmp_path / "tfds")))
    config.estimators = estimator_grid(fd_eps=(0.01, 0.1), unroll_steps=(1, 2), implicit_methods=("cg",),
                                       implicit_iterations=(3,))
    config.compilation_cache = str(tmp_path / "xla")
    return config


def _values(workdir):
    with open(os.path.join(workdir, "study.csv")) as f:
        return [(r["step"], r["estimator"], r["metric"], r["value"]) for r in csv.DictReader(f)
                if r["metric"] not in ("seconds", "peak_memory_mb")]  # as written: exact, and nan equals nan


def test_offline_study_end_to_end(tmp_path):
    config = _tiny(tmp_path)
    a = str(tmp_path / "a")
    os.makedirs(a)
    open(os.path.join(a, "study.csv"), "w").close()  # left empty by a run killed before its first row
    summary = loop.run(config, a)
    assert summary["darts_fd"]["cosine"][0] >= 0.99  # median cosine to unrolled(1), float64
    assert summary["unrolled_k1"]["rel_l2"][0] == 0.0
    for name in ("summary.md", "cosine_over_search.png", "cost_vs_fidelity.png", "cosine_vs_eps.png"):
        assert os.path.getsize(os.path.join(a, name)) > 0
    rows = _values(a)
    assert {r[0] for r in rows} == {"10", "20"}  # checkpoints before the last of 22 steps
    # Resume: drop the last studied step's rows; the rerun computes them again, identically (the
    # search it studies is deterministic too: the search tests compare resumed and uninterrupted runs).
    with open(os.path.join(a, "study.csv")) as f:
        kept = [line for line in f if not line.startswith("20,")]
    with open(os.path.join(a, "study.csv"), "w") as f:
        f.writelines(kept)
    loop.run(config, a)
    assert sorted(_values(a)) == sorted(rows)
    lines = loop.closing_lines(config, a, summary)
    assert len(lines) == 3
    assert re.match(r"study done: 6 estimators; closest to unrolled_k1: [\w.]+ \(median cosine", lines[0])
    assert a in lines[1] and lines[2].startswith("next: ")


def test_ctrl_c_in_the_study_keeps_its_points_and_a_rerun_completes_it(tmp_path, monkeypatch):
    """Issue 35: Ctrl-C in the study was a 200-line KeyboardInterrupt. Now the point in progress
    finishes, the summary of what is done is written, and the run reports the stop (exit 130)."""
    config = _tiny(tmp_path)
    a = str(tmp_path / "a")
    full = loop.run(config, a)  # the search and the study, uninterrupted
    config.search_workdir = os.path.join(a, "search")
    b = str(tmp_path / "b")
    evaluate = loop._evaluate_step

    def interrupted(*args):
        rows = evaluate(*args)
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C while the first point is computed
        return rows

    monkeypatch.setattr(loop, "_evaluate_step", interrupted)
    assert loop.run(config, b) == {"stopped": "SIGINT"}
    assert {r[0] for r in _values(b)} == {"10"} and os.path.getsize(os.path.join(b, "summary.md")) > 0
    monkeypatch.setattr(loop, "_evaluate_step", evaluate)
    assert loop.run(config, b).keys() == full.keys()
    assert sorted(_values(b)) == sorted(_values(a))


def test_study_points_are_the_nearest_checkpoints():
    checkpoints = [0, *range(3, 264, 3), 264]
    assert loop.study_steps(checkpoints, 264, [0, 0.01, 0.05, 0.2, 0.5, 1]) == [0, 3, 12, 54, 132, 264]
    assert loop.study_steps([10, 20, 22], 22, []) == [10, 20]  # every checkpoint before the end


def test_darts_space_study_configs_validate():
    from jaxnas.search.config import load_config_file
    from jaxnas.study.config import validate

    root = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")
    for name in ("study_darts_digits.py", "study_darts_cifar10.py"):
        config = load_config_file(os.path.join(root, name))
        validate(config)
        assert config.search.space == "darts" and config.search.estimator.name == "first_order"
        assert config.batch_sizes == "8,32,64" and reference_spec(config).label == "unrolled_k1"
        assert [s.label for s in estimator_specs(config)] == [
            "first_order", "darts_fd_eps0.1", "darts_fd", "darts_fd_eps0.001", "darts_fd_eps0.0001", "unrolled_k1",
            "unrolled_k2", "implicit_neumann_k10", "implicit_cg_k10"]


def test_on_a_cpu_one_estimator_is_compiled_at_a_time():
    """A new estimator drops the previous one's executables (and jax's caches of them), so a long
    study holds one at a time; the ε sweep of darts_fd shares one; a dropped one comes back with
    the same result."""
    import jax
    import jax.numpy as jnp

    from jaxnas.search.state import cosine_lr
    from jaxnas.spaces.base import get_space

    config = get_config()
    config.float64 = False
    space = get_space("chain", channels=4, layers=2)
    net = space.supernet(3)
    x = jax.random.normal(jax.random.key(0), (4, 6, 6, 1))
    variables = net.init(jax.random.key(1), x[:2], space.init_alphas(jax.random.key(2)), train=False)
    estimators = loop._Estimators(config, net, cosine_lr(0.05, 0.001, 2, 2), 0.9, 3e-4)
    params, stats, alphas = variables["params"], variables["batch_stats"], space.init_alphas(jax.random.key(2))
    args = (params, stats, alphas, estimators.inner.init(params), ((x, jnp.arange(4) % 3),), (x, jnp.arange(4) % 3),
            jnp.asarray(0.05))
    config.estimators = [{"name": "first_order"}, {"name": "darts_fd"}, {"name": "darts_fd", "eps_scale": 0.1}]
    first, fd, fd_wide = estimator_specs(config)
    before = estimators(first, *args)[0]
    estimators(fd, *args)
    estimators(fd_wide, *args)
    assert len(estimators.compiled) == 1  # darts_fd's, for both ε scales
    again = estimators(first, *args)[0]
    assert len(estimators.compiled) == 1
    np.testing.assert_array_equal(np.asarray(again["layers"]), np.asarray(before["layers"]))

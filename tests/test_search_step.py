"""The bilevel search step: hand-checked updates, non-finite handling, and N devices == 1 device."""

import os
import socket
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import subprocess_env

from jaxnas.parallel import data_mesh, data_parallel, replicate, shard_batch
from jaxnas.search.state import alpha_optimizer

sys.path.insert(0, os.path.dirname(__file__))
from search_problem import build, plain_loss  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def one_device_step(estimator, state, batches, train_index=0, val_index=2, **options):
    step, _, _, _ = build(estimator, **options)
    mesh = data_mesh(jax.devices()[:1])
    fn = data_parallel(step, mesh, donate_state=False)
    return fn(replicate(state, mesh), shard_batch((batches[train_index],), mesh), shard_batch(batches[val_index], mesh))


def quadratic_penalty(alphas):  # stands in for λ·E_α[cost]: a term of the α objective free of w
    return 0.7 * jnp.sum(alphas["layers"] ** 2)


@pytest.mark.parametrize("penalty", [None, quadratic_penalty])
def test_first_order_step_matches_hand_computation(penalty):
    step, state, batches, schedule = build("first_order")
    new, metrics = one_device_step("first_order", state, batches, alpha_penalty=penalty)
    net_loss = lambda w, a, b: plain_loss(w, a, b, state.batch_stats)  # noqa: E731
    # α: torch-style Adam (weight decay 1e-3 added to the gradient), lr 3e-4, betas (0.5, 0.999), first step.
    g = np.asarray(jax.grad(net_loss, 1)(state.params, state.alphas, batches[2])["layers"], np.float64)
    a = np.asarray(state.alphas["layers"], np.float64)
    g = g + 1e-3 * a + (1.4 * a if penalty else 0.0)
    m, v = (1 - 0.5) * g / (1 - 0.5), (1 - 0.999) * g**2 / (1 - 0.999)
    expected_alpha = a - 3e-4 * m / (np.sqrt(v) + 1e-8)
    np.testing.assert_allclose(new.alphas["layers"], expected_alpha, rtol=1e-5, atol=1e-7)
    # w: gradient at the *new* α, clipped to norm 5, weight decay 3e-4 added, SGD momentum (first step: no
    # momentum yet), lr = cosine schedule at 0 = 0.05.
    gw = jax.grad(net_loss, 0)(state.params, new.alphas, batches[0])
    norm = float(np.sqrt(sum(np.sum(np.square(t)) for t in jax.tree.leaves(gw))))
    scale = min(1.0, 5.0 / norm)
    expected_w = jax.tree.map(lambda w, g: w - 0.05 * (scale * g + 3e-4 * w), state.params, gw)
    for got, want in zip(jax.tree.leaves(new.params), jax.tree.leaves(expected_w)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    assert float(metrics["lr"]) == pytest.approx(float(schedule(0)))
    assert int(new.step) == 1 and int(new.nonfinite_steps) == 0


def test_alpha_optimizer_is_torch_adam_with_l2_not_adamw():
    a0 = np.array([0.5, -1.0, 2.0])
    grads = [np.array([0.1, 0.2, -0.3]), np.array([-0.05, 0.4, 0.1]), np.array([0.2, -0.1, 0.0])]
    lr, b1, b2, wd, eps = 3e-4, 0.5, 0.999, 1e-3, 1e-8
    opt = alpha_optimizer(lr, b1, b2, wd)
    a, state = jnp.asarray(a0), opt.init(jnp.asarray(a0))
    m = v = np.zeros(3)
    expected = a0.copy()
    for t, g in enumerate(grads, start=1):  # torch.optim.Adam(weight_decay=wd), written out
        gt = g + wd * expected
        m = b1 * m + (1 - b1) * gt
        v = b2 * v + (1 - b2) * gt**2
        expected = expected - lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
        updates, state = opt.update(jnp.asarray(g), state, a)
        a = a + updates
    np.testing.assert_allclose(a, expected, rtol=1e-12, atol=1e-14)


def test_nonfinite_batch_leaves_state_unchanged():
    _, state, batches, _ = build("first_order")
    bad = (batches[0][0].at[0, 0, 0, 0].set(jnp.nan), batches[0][1])
    new, metrics = one_device_step("first_order", state, [bad] + batches[1:])
    assert not bool(metrics["finite"])
    assert int(new.nonfinite_steps) == 1 and int(new.step) == 1
    for got, want in zip(jax.tree.leaves((new.params, new.alphas, new.batch_stats, new.weight_opt_state,
                                          new.alpha_opt_state)),
                         jax.tree.leaves((state.params, state.alphas, state.batch_stats, state.weight_opt_state,
                                          state.alpha_opt_state))):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("estimator", ["first_order", "darts_fd", "unrolled", "implicit"])
def test_four_devices_equal_one_device(estimator):
    env = subprocess_env(devices=4, x64=True, PYTHONPATH=ROOT)
    out = subprocess.run([sys.executable, os.path.join(ROOT, "tests", "parallel_check.py"), estimator],
                         capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    fields = dict(kv.split("=") for kv in out.stdout.split())
    assert fields["devices"] == "4"
    assert float(fields["alpha_moved"]) > 1e-5  # the steps did something
    assert float(fields["max_diff"]) < 1e-5, out.stdout  # weights, α and BN statistics after 3 steps


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.xdist_group("multiprocess")  # never beside test_search_run's: see there
def test_two_processes_equal_one_process(tmp_path):
    """2 processes x 2 CPU devices over loopback (jax.distributed + gloo) == 1 process x 4 devices."""
    env = subprocess_env(devices=2, x64=True, PYTHONPATH=ROOT)
    port = str(free_port())
    script = os.path.join(ROOT, "tests", "multihost_check.py")
    logs = [open(tmp_path / f"process{i}.log", "w+") for i in range(2)]
    procs = [subprocess.Popen([sys.executable, script, str(i), port, "darts_fd", str(tmp_path / "multi.npy")],
                              stdout=log, stderr=subprocess.STDOUT, text=True, env=env) for i, log in enumerate(logs)]
    for p, log in zip(procs, logs):
        p.wait(timeout=600)
        log.seek(0)
        assert p.returncode == 0, log.read()[-2000:]
        log.close()
    single = subprocess.run([sys.executable, os.path.join(ROOT, "tests", "parallel_check.py"), "darts_fd",
                             str(tmp_path / "single.npy")], capture_output=True, text=True, timeout=600,
                            env=subprocess_env(devices=4, x64=True, PYTHONPATH=ROOT))
    assert single.returncode == 0, single.stderr[-2000:]
    multi, one = np.load(tmp_path / "multi.npy"), np.load(tmp_path / "single.npy")
    assert multi.shape == one.shape
    np.testing.assert_allclose(multi, one, rtol=1e-5, atol=1e-6)


def test_bfloat16_compute_keeps_float32_state_and_follows_the_float32_step():
    """`compute_dtype='bfloat16'` runs the supernet in bfloat16 (the loss differs from float32's in
    its low bits) while weights, α and optimizer states keep their dtypes (float32; α is float64
    here, where the suite enables x64), and one search step moves them in the direction the float32
    step does; darts_fd, whose finite difference bfloat16 cannot resolve, is refused with the
    alternatives named."""
    from jaxnas.search import config as config_lib
    from jaxnas.search.config import ConfigError, get_config
    from jaxnas.search.loop import search_setup

    kx, kv = jax.random.split(jax.random.key(0))
    train = ((jax.random.normal(kx, (16, 8, 8, 1), jnp.float32), jnp.arange(16) % 10),)
    val = (jax.random.normal(kv, (16, 8, 8, 1), jnp.float32), jnp.arange(16)[::-1] % 10)
    runs = {}
    for dtype in ("float32", "bfloat16"):
        c = get_config()
        c.space, c.channels, c.layers, c.compute_dtype = "chain", 4, 2, dtype
        config_lib.validate(c)
        setup = search_setup(c, *config_lib.space_and_strategy(c), 10, (8, 8, 1), steps_per_epoch=10, axis_name=None)
        state = setup.init()
        new, metrics = jax.jit(setup.step)(state, train, val)
        kept = [(new.params, new.alphas, new.batch_stats, new.weight_opt_state, new.alpha_opt_state),
                (state.params, state.alphas, state.batch_stats, state.weight_opt_state, state.alpha_opt_state)]
        assert [a.dtype for a in jax.tree.leaves(kept[0])] == [b.dtype for b in jax.tree.leaves(kept[1])], dtype
        assert jnp.dtype(jnp.float32) in {leaf.dtype for leaf in jax.tree.leaves(kept[0])}
        assert jnp.dtype(jnp.bfloat16) not in {leaf.dtype for leaf in jax.tree.leaves(kept[0])}
        runs[dtype] = state, new, metrics
    (s32, n32, m32), (s16, n16, m16) = runs["float32"], runs["bfloat16"]
    for a, b in zip(jax.tree.leaves((s32.params, s32.alphas)), jax.tree.leaves((s16.params, s16.alphas))):
        np.testing.assert_array_equal(a, b)  # the same float32 start
    assert float(m16["train_loss"]) != float(m32["train_loss"])
    np.testing.assert_allclose(float(m16["train_loss"]), float(m32["train_loss"]), rtol=2e-2)
    def cosine(a, b):
        return float(np.vdot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))

    def steps(after):
        return [np.ravel(a - b) for a, b in zip(jax.tree.leaves(after), jax.tree.leaves((s32.params, s32.alphas)))]

    steps32, steps16 = steps((n32.params, n32.alphas)), steps((n16.params, n16.alphas))
    # bfloat16 keeps 8 bits of mantissa: through this tiny network's BNs single conv kernels' updates
    # agree only to a cosine of about 0.7, the whole update to about 0.97, α's to 1.
    assert cosine(np.concatenate(steps16), np.concatenate(steps32)) > 0.9
    assert all(cosine(a, b) > 0.5 for a, b in zip(steps16, steps32))
    assert cosine(steps16[-1], steps32[-1]) > 0.999  # α (the last leaf)
    c = get_config()
    c.compute_dtype, c.estimator.name = "bfloat16", "darts_fd"
    with pytest.raises(ConfigError, match="darts_fd needs compute_dtype float32.*first_order, unrolled or implicit"):
        config_lib.validate(c)
    c.compute_dtype = "float16"
    with pytest.raises(ConfigError, match="unknown compute_dtype 'float16'; valid choices: float32, bfloat16"):
        config_lib.validate(c)


ON_HOST_CHECK = """
import jax, numpy as np
from jaxnas.parallel import on_host_cpu
seen = []
def init():
    key = jax.random.key(3)
    return {"x": jax.random.normal(key, (5,)), "key": jax.random.split(key)[0]}
def jitted_init():  # where the jitted computation ran, read off its output
    out = jax.jit(init)()
    seen.append(out["x"].devices())
    return out
with jax.default_device(jax.devices()[1]):  # stands in for an accelerator as the default device
    out = on_host_cpu(jitted_init, jax.devices()[1])()
want = init()
assert seen[0] == {jax.local_devices(backend="cpu")[0]} != {jax.devices()[1]}, seen
assert out["x"].devices() == {jax.devices()[1]} and out["key"].devices() == {jax.devices()[1]}
np.testing.assert_array_equal(out["x"], want["x"])
assert jax.random.key_data(out["key"]).tolist() == jax.random.key_data(want["key"]).tolist()
print("ok")
"""


def test_on_host_cpu_computes_on_the_host_and_places_the_result_on_the_device():
    """Initialisation on an accelerator runs on the host CPU: computed there, keys included, then moved."""
    out = subprocess.run([sys.executable, "-c", ON_HOST_CHECK], capture_output=True, text=True, timeout=300,
                         env=subprocess_env(devices=2, PYTHONPATH=ROOT))
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def _precisions(hlo: str) -> list[str]:
    """The precision of every dot and convolution in a StableHLO text, in order."""
    found = []
    for line in hlo.splitlines():
        if "stablehlo.dot_general" in line:
            found.append(line.split("precision = [")[1].split(",")[0] if "precision = [" in line else "unset")
        elif "stablehlo.convolution" in line:
            found.append(line.split("#stablehlo<precision ")[1].split(">")[0] if "#stablehlo<precision" in line
                         else "unset")
    return found


def test_every_matmul_and_convolution_of_the_search_step_has_the_configured_precision():
    """Issue 35: a float32 search on a TPU or an Ampere GPU computed its dots and convolutions in
    bfloat16 or TF32 passes, because none of them set a precision (the old code wrote DEFAULT
    everywhere). Every dot and convolution of the DARTS search step (stem, depthwise and pointwise
    convolutions, classifier; forward and backward) carries `matmul_precision`."""
    from jaxnas.search import config as config_lib
    from jaxnas.search.config import get_config
    from jaxnas.search.loop import search_setup

    c = get_config()
    c.channels, c.layers, c.matmul_precision = 4, 2, "highest"
    config_lib.validate(c)
    setup = search_setup(c, *config_lib.space_and_strategy(c), 10, (8, 8, 1), steps_per_epoch=10, axis_name=None)
    state = jax.eval_shape(setup.init)
    batch = (jax.ShapeDtypeStruct((4, 8, 8, 1), jnp.float32), jax.ShapeDtypeStruct((4,), jnp.int32))
    found = _precisions(jax.jit(setup.step).lower(state, (batch,), batch).as_text())
    assert len(found) > 50, found  # the network's convolutions and dots, forward and backward
    assert set(found) == {"HIGHEST"}, found


def test_hypergradient_inner_products_are_float32_at_any_matmul_precision():
    """‖∇‖ in darts_fd's ε and the CG solves' inner products: float32 even where the network's
    matmuls run at the backend's fast default."""
    from jaxnas.search.hypergrad import tree_dot

    tree = {"a": jax.ShapeDtypeStruct((3, 4), jnp.float32), "b": jax.ShapeDtypeStruct((5,), jnp.float32)}
    with jax.default_matmul_precision("bfloat16"):
        found = _precisions(jax.jit(tree_dot).lower(tree, tree).as_text())
    assert found == ["HIGHEST", "HIGHEST"], found


def test_matmul_precision_is_one_of_three_names():
    from jaxnas.search import config as config_lib
    from jaxnas.search.config import ConfigError, get_config

    c = get_config()
    c.matmul_precision = "tf32"
    with pytest.raises(ConfigError, match="matmul_precision.*highest"):
        config_lib.validate(c)

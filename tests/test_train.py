"""Training a genotype: the paper config's network size, drop path off at evaluation and rampable
without recompiling, cutout on a known image, bfloat16 compute, and exact resume after SIGKILL."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import subprocess_env

from jaxnas.counting import count_params
from jaxnas.data.pipeline import apply_cutout
from jaxnas.nn.network import NetworkCIFAR
from jaxnas.search.config import ConfigError, load_config_file
from jaxnas.train import loop
from jaxnas.train.config import get_config
from jaxnas.train.step import init_state, make_train_step, optimizer
from jaxnas.vocabulary.darts import DARTS_V2

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--config.channels=4", "--config.layers=2", "--config.epochs=3", "--config.batch_size=32",
        "--config.checkpoint_every_steps=10", "--config.log_every_steps=10"]


def test_cifar10_config_builds_the_published_network():
    config = load_config_file(os.path.join(ROOT, "configs", "train_darts_cifar10.py"))
    net = loop.build_network(config, loop.resolve_genotype(config.genotype), 10)
    shapes = jax.eval_shape(lambda: net.init(jax.random.key(0), jnp.zeros((2, 32, 32, 3)), train=False))
    assert count_params(shapes["params"]) == 3_349_342
    assert (config.epochs, config.batch_size, config.cutout, config.drop_path, config.auxiliary_weight) == (
        600, 96, 16, 0.2, 0.4)


def test_drop_path_is_off_at_evaluation_and_ramps_without_recompiling():
    net = NetworkCIFAR(DARTS_V2, 4, 3, 10)
    x = jax.random.normal(jax.random.key(0), (4, 8, 8, 3))
    v = net.init(jax.random.key(1), x, train=False)
    ev = [net.apply(v, x, train=False, drop_rate=r)[0] for r in (0.0, 0.5)]
    np.testing.assert_array_equal(ev[0], ev[1])
    traces = []

    @jax.jit
    def train_logits(rate):
        traces.append(1)
        return net.apply(v, x, train=True, drop_rate=rate, rngs={"dropout": jax.random.key(3)},
                         mutable=["batch_stats"])[0][0]

    a, b = train_logits(np.float32(0.0)), train_logits(np.float32(0.6))
    assert len(traces) == 1 and not np.allclose(a, b)
    assert loop.drop_rate(get_config().copy_and_resolve_references(), 0) == 0.0


def test_cutout_zeroes_one_clipped_square():
    img = np.ones((2, 6, 6, 1), np.float32)
    out = apply_cutout(img, cy=np.array([2, 0]), cx=np.array([3, 5]), size=4)
    expected0 = np.ones((6, 6))
    expected0[0:4, 1:5] = 0  # centre (2, 3), half 2: rows 0..3, cols 1..4
    expected1 = np.ones((6, 6))
    expected1[0:2, 3:6] = 0  # centre (0, 5): clipped at the top and right borders
    np.testing.assert_array_equal(out[0, :, :, 0], expected0)
    np.testing.assert_array_equal(out[1, :, :, 0], expected1)


def test_bad_genotype_is_one_line():
    with pytest.raises(ConfigError, match="unknown architecture 'DARTS_V9'"):
        loop.resolve_genotype("DARTS_V9")


def _cmd(root, workdir, *flags):
    return [sys.executable, "-m", "jaxnas.train", f"--workdir={workdir}", f"--config.data_dir={root / 'tfds'}",
            f"--config.compilation_cache={root / 'xla'}", *flags]


def _final(workdir):
    with open(os.path.join(workdir, "result.json")) as f:
        result = json.load(f)
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        metrics = [{k: v for k, v in json.loads(line).items() if k != "seconds"} for line in f]
    return result, metrics


def test_sigkill_then_rerun_gives_the_same_final_metrics(tmp_path):
    ref, killed = tmp_path / "ref", tmp_path / "killed"
    r = subprocess.run(_cmd(tmp_path, ref, *TINY), env=subprocess_env(), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    last = r.stdout.strip().splitlines()[-3:]  # the closing block
    assert re.match(r"training done: test acc 0\.\d{4} after 3 epochs, [\d,]+ parameters", last[0])
    assert last[1] == f"outputs in {ref}: result.json, metrics.jsonl, tensorboard/"
    assert last[2] == f"next: tensorboard --logdir {ref}"
    p = subprocess.Popen(_cmd(tmp_path, killed, *TINY), env=subprocess_env(), stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    ckpts = killed / "checkpoints"
    while p.poll() is None and not (ckpts.exists() and any(n.isdigit() for n in os.listdir(ckpts))):
        time.sleep(0.02)
    assert p.poll() is None, "the run ended before it could be killed"
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert not (killed / "result.json").exists()
    r = subprocess.run(_cmd(tmp_path, killed, *TINY), env=subprocess_env(), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and "resumed from checkpoint" in r.stderr, r.stderr[-3000:]
    assert _final(ref) == _final(killed)
    result = _final(ref)[0]
    assert result["epochs"] == 3 and result["genotype"] == DARTS_V2.to_dict() and result["params"] > 0
    assert 0.0 <= result["test_acc"] <= 1.0 and result["multiply_adds"] > 0


def test_bfloat16_compute_keeps_float32_parameters(tmp_path):
    config = get_config()
    config.update(dict(channels=4, layers=2, epochs=1, batch_size=64, compute_dtype="bfloat16",
                       data_dir=str(tmp_path / "tfds"), compilation_cache=""))
    result = loop.run(config, str(tmp_path / "bf16"))
    assert np.isfinite(result["test_loss"]) and result["test_acc"] > 0.15  # learning, not chance (0.1)
    # One step by hand: the update happens in float32, the forward pass in bfloat16.
    net = NetworkCIFAR(DARTS_V2, 4, 2, 10)
    opt = optimizer(lambda c: 0.1, 0.9, 3e-4, 5.0)
    state = init_state(net, jnp.zeros((2, 8, 8, 1)), jax.random.key(0), opt)
    batch = (jax.random.normal(jax.random.key(1), (8, 8, 8, 1)), jnp.arange(8) % 10)
    new, metrics = jax.jit(make_train_step(net, opt, 10, compute_dtype=jnp.bfloat16))(state, batch, 0.0)
    for tree in (new.params, new.batch_stats, new.opt_state):
        floats = {x.dtype for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.floating)}
        assert floats == {np.dtype(np.float32)}
    f32, _ = jax.jit(make_train_step(net, opt, 10))(state, batch, 0.0)
    diff = max(float(jnp.max(jnp.abs(a - b)))
               for a, b in zip(jax.tree.leaves(new.params), jax.tree.leaves(f32.params)))
    assert 0 < diff < 0.05  # bfloat16 rounding, not a different computation


def test_random_resized_crop_boxes_respect_area_and_ratio():
    from jaxnas.data.streaming import random_resized_crop_box

    rng = np.random.default_rng(0)
    for h, w in [(100, 80), (30, 300), (224, 224)]:
        for _ in range(50):
            top, left, ch, cw = random_resized_crop_box(rng, h, w)
            assert 0 <= top and top + ch <= h and 0 <= left and left + cw <= w and ch > 0 and cw > 0
    # A 2x400 strip has no crop of >= 99 % of its area with ratio 3/4..4/3: the fallback is the
    # largest central crop within the ratio range (2 x round(2 * 4/3)).
    assert random_resized_crop_box(rng, 2, 400, scale=(0.99, 1.0)) == (0, 198, 2, 3)


def test_eval_transform_is_the_central_square_of_the_resized_image():
    from jaxnas.data.streaming import eval_transform

    img = np.zeros((40, 80, 3), np.uint8)
    img[:, 20:60] = 255  # a white central band, 40 px wide
    out = eval_transform(img, size=16, resize=20)  # -> 20x40, central 16x16 lies inside the band
    assert out.shape == (16, 16, 3) and out.min() == 255


def test_imagenet_recipe_through_mock_data(tmp_path):
    """The streaming ImageNet path (random-resized crops of variable-size images) under
    tfds.testing.mock_data, on a tiny mobile-setting network."""
    import tensorflow_datasets as tfds

    config = load_config_file(os.path.join(ROOT, "configs", "train_darts_imagenet.py"))
    assert (config.channels, config.layers, config.lr, config.weight_decay, config.label_smoothing) == (
        48, 14, 0.1, 3e-5, 0.1)
    config.update(dict(channels=8, layers=2, auxiliary_weight=0.0, image_size=32, eval_resize=36, epochs=1,
                       batch_size=4, eval_batch_size=4, compilation_cache=""))
    with tfds.testing.mock_data(num_examples=8):
        result = loop.run(config, str(tmp_path / "in"))
    assert result["steps"] == 2 and np.isfinite(result["test_loss"]) and result["dataset"] == "imagenet2012"

"""Checkpoints: a bit-exact round trip of a whole SearchState (typed PRNG key and optax states keep
their types), keep-last-k that never deletes the last good checkpoint, and fallback past a damaged,
silently corrupted, non-finite or empty newest checkpoint."""

import os
import re

import jax
import numpy as np
import optax
import pytest
from helpers import flip_bytes
from search_problem import build

from jaxnas.checkpoint import Checkpointer, leaf_checksums
from jaxnas.parallel import data_mesh, data_parallel, replicate, replicated_shapes, shard_batch


def _leaves(state):
    return [np.asarray(jax.random.key_data(x) if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key) else x)
            for x in jax.tree.leaves(state)]


@pytest.fixture(scope="module")
def states():
    step, state, batches, _ = build("first_order")
    mesh = data_mesh(jax.devices()[:1])
    step = data_parallel(step, mesh, donate_state=False)
    state = replicate(state, mesh)
    out = [state]
    for _ in range(3):
        state, _ = step(state, shard_batch((batches[0],), mesh), shard_batch(batches[2], mesh))
        out.append(state)
    return out


def _assert_same(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(_leaves(a), _leaves(b)):
        assert x.dtype == y.dtype
        np.testing.assert_array_equal(x, y)


def test_round_trip_is_bit_exact_and_keeps_types(tmp_path, states):
    ckpt = Checkpointer(str(tmp_path / "ckpt"), keep=2)
    for i, s in enumerate(states[1:], start=1):
        ckpt.save(i, s, {"step": i})
    assert ckpt.steps() == [2, 3]  # keeps the newest two
    restored, record = ckpt.restore_latest(states[0])
    assert record == {"step": 3}
    _assert_same(restored, states[3])
    assert jax.dtypes.issubdtype(restored.rng.dtype, jax.dtypes.prng_key)
    assert isinstance(restored.weight_opt_state[1][1][0], optax.TraceState)


def test_damaged_and_empty_newest_checkpoints_fall_back(tmp_path, states):
    root = tmp_path / "ckpt"
    ckpt = Checkpointer(str(root), keep=5)
    for i in (1, 2):
        ckpt.save(i, states[i], {"step": i})
    # Damage step 2: overwrite every data file with garbage.
    for dirpath, _, files in os.walk(root / "2"):
        for f in files:
            with open(os.path.join(dirpath, f), "wb") as fh:
                fh.write(b"\x00garbage")
    os.makedirs(root / "7")  # an empty step folder, which Orbax lists as the latest
    restored, record = Checkpointer(str(root), keep=5).restore_latest(states[0])
    assert record == {"step": 1}
    _assert_same(restored, states[1])
    damaged = sorted(os.listdir(tmp_path / "damaged"))
    assert [d.split("-")[0] for d in damaged] == ["2", "7"]  # set aside, not deleted
    assert Checkpointer(str(root)).steps() == [1]


def test_a_truncated_checkpoint_is_reported_in_one_readable_line(tmp_path, states, caplog):
    """Issue 35: a truncated data file's reason was a cut-off TensorStore spec dump."""
    root = tmp_path / "ckpt"
    ckpt = Checkpointer(str(root), keep=5)
    for i in (1, 2):
        ckpt.save(i, states[i], {"step": i})
    for dirpath, _, files in os.walk(root / "2" / "state"):
        for f in files:
            if os.path.basename(dirpath) == "d":
                os.truncate(os.path.join(dirpath, f), 10)
    with caplog.at_level("WARNING"):
        _, record = Checkpointer(str(root), keep=5).restore_latest(states[0])
    assert record == {"step": 1}
    [line] = [r.getMessage() for r in caplog.records if "failed to restore" in r.getMessage()]
    assert "\n" not in line and "tensorstore_spec" not in line and "<bound method" not in line, line
    assert re.search(r"checkpoint 2 failed to restore \(ValueError: .*is not valid for value of size 10\); moved to "
                     r".*damaged/2-", line), line
    assert len(line) < 500


def test_nothing_to_restore_returns_none(tmp_path, states):
    assert Checkpointer(str(tmp_path / "empty")).restore_latest(states[0]) is None


def test_restore_or_init_runs_init_only_when_nothing_restores(tmp_path, states):
    """A resumed run restores into the state's abstract shape and never initialises; a fresh run,
    or one whose every checkpoint is damaged, initialises."""
    mesh = data_mesh(jax.devices()[:1])
    calls = []

    def init():
        calls.append(1)
        return jax.device_get(states[0])

    def place(s):
        return replicate(s, mesh)

    def abstract():
        return replicated_shapes(lambda: states[0], mesh)

    ckpt = Checkpointer(str(tmp_path / "ckpt"), keep=2)
    state, record = ckpt.restore_or_init(init, place, abstract)
    assert record is None and len(calls) == 1
    _assert_same(state, states[0])

    ckpt.save(2, states[2], {"step": 2})
    state, record = ckpt.restore_or_init(init, place, abstract)
    assert record == {"step": 2} and len(calls) == 1  # restored without initialising
    _assert_same(state, states[2])
    assert jax.dtypes.issubdtype(state.rng.dtype, jax.dtypes.prng_key)
    assert isinstance(state.weight_opt_state[1][1][0], optax.TraceState)
    assert state.params and jax.tree.leaves(state)[0].sharding == jax.tree.leaves(states[2])[0].sharding

    for dirpath, _, files in os.walk(tmp_path / "ckpt" / "2"):  # damage the only checkpoint
        for f in files:
            with open(os.path.join(dirpath, f), "wb") as fh:
                fh.write(b"garbage")
    state, record = ckpt.restore_or_init(init, place, abstract)
    assert record is None and len(calls) == 2
    _assert_same(state, states[0])


def test_flipped_bytes_are_detected_set_aside_and_the_previous_one_restored(tmp_path, caplog):
    """Orbax restores a checkpoint with 16 inverted bytes in an array's data file without an error
    (the array comes back with other values); its checksums catch it. The array is random, so its
    compressed chunk is large enough to live in a data file of its own."""
    rng = np.random.default_rng(0)
    states = [{"w": rng.normal(size=(64, 64)).astype(np.float32), "b": np.full(3, i, np.float32)} for i in range(3)]
    root = tmp_path / "ckpt"
    ckpt = Checkpointer(str(root), keep=5)
    for i in (1, 2):
        ckpt.save(i, states[i], {"step": i})
    flip_bytes(str(root / "2"))
    restored, record = Checkpointer(str(root), keep=5).restore_latest(states[0])
    assert record == {"step": 1}
    _assert_same(restored, states[1])
    assert "do not match their checksums, e.g. ['w']" in caplog.text
    assert [d.split("-")[0] for d in os.listdir(tmp_path / "damaged")] == ["2"]


def test_a_non_finite_checkpoint_is_set_aside(tmp_path, states, caplog):
    root = tmp_path / "ckpt"
    ckpt = Checkpointer(str(root), keep=5)
    ckpt.save(1, states[1], {"step": 1})
    nan_state = states[2].replace(params=jax.tree.map(lambda x: x * np.nan, states[2].params))
    ckpt.save(2, nan_state, {"step": 2})
    restored, record = Checkpointer(str(root), keep=5).restore_latest(states[0])
    assert record == {"step": 1}
    _assert_same(restored, states[1])
    assert "hold NaN or inf" in caplog.text


def test_rotation_keeps_the_last_good_checkpoint(tmp_path, states):
    """keep=2: the checkpoint restored from stays while only unhealthy saves (after a non-finite
    step, or of a non-finite state) follow it; the first healthy save replaces it."""
    root = tmp_path / "ckpt"
    Checkpointer(str(root), keep=2).save(1, states[1], {"step": 1})
    ckpt = Checkpointer(str(root), keep=2)
    ckpt.restore_latest(states[0])
    nan_state = states[3].replace(params=jax.tree.map(lambda x: x * np.nan, states[3].params))
    ckpt.save(2, states[2], {"step": 2}, healthy=False)
    ckpt.save(3, states[3], {"step": 3}, healthy=False)
    ckpt.save(4, nan_state, {"step": 4}, healthy=True)
    assert ckpt.steps() == [1, 3, 4] and ckpt.good == 1
    ckpt.save(5, states[3], {"step": 5})
    assert ckpt.steps() == [4, 5] and ckpt.good == 5


def test_checksums_are_per_leaf_sha256(states):
    """Independent of the code under test: hashlib over each leaf's dtype, shape and bytes."""
    import hashlib

    state = jax.device_get(states[1].replace(rng=jax.random.key_data(states[1].rng)))
    sums = leaf_checksums(state)
    paths = jax.tree_util.tree_flatten_with_path(state)[0]
    assert len(sums) == len(paths)
    for path, leaf in paths:
        leaf = np.asarray(leaf)
        expected = hashlib.sha256(f"{leaf.dtype.str}{leaf.shape}".encode() + leaf.tobytes()).hexdigest()
        assert sums[jax.tree_util.keystr(path)] == expected


def test_a_checkpoint_written_before_checksums_still_restores(tmp_path, states):
    """Checkpoints of older jaxnas versions have no checksums: they restore after the finiteness check."""
    import shutil

    root = tmp_path / "ckpt"
    Checkpointer(str(root)).save(2, states[2], {"step": 2})
    shutil.rmtree(root / "2" / "checksums")
    restored, record = Checkpointer(str(root)).restore_latest(states[0])
    assert record == {"step": 2}
    _assert_same(restored, states[2])

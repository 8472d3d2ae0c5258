"""Checks shared by the search-space tests, and the environment of the tests' subprocesses."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax


def assert_alpha_gradient_reaches_every_row(net, variables, x, alphas, key: str) -> None:
    """The training loss's gradient w.r.t. `alphas[key]` is finite and non-zero in every row."""

    def loss(a):
        logits, _ = net.apply(variables, x, a, True, mutable=["batch_stats"])
        return optax.softmax_cross_entropy_with_integer_labels(logits, jnp.arange(x.shape[0])).mean()

    g = np.asarray(jax.jit(jax.grad(loss))(alphas)[key])
    assert np.all(np.isfinite(g)) and np.all(np.abs(g).sum(1) > 0)


def subprocess_env(devices: int | None = None, x64: bool = False, **more: str) -> dict[str, str]:
    """The environment for a jaxnas subprocess: float32 as a user runs it (unless `x64`), the
    suite's fast-compile XLA flags, and `devices` simulated CPU devices if given."""
    from conftest import TEST_XLA_FLAGS

    env = {k: v for k, v in os.environ.items() if k != "JAX_ENABLE_X64" or x64}
    env["XLA_FLAGS"] = TEST_XLA_FLAGS + (f" --xla_force_host_platform_device_count={devices}" if devices else "")
    return {**env, **more}


def _restore_anywhere(state_dir: str) -> list:
    """The leaves of the Orbax state item `state_dir`, read from a fresh copy (no cached reads)."""
    import shutil
    import tempfile

    import orbax.checkpoint as ocp

    with tempfile.TemporaryDirectory() as tmp:
        copy = shutil.copytree(state_dir, os.path.join(tmp, "state"))
        return [np.asarray(x) for x in jax.tree.leaves(ocp.StandardCheckpointer().restore(copy))]


def flip_bytes(step_dir: str, count: int = 16) -> tuple[str, int]:
    """Invert `count` bytes of an array data file of the Orbax checkpoint `step_dir` where Orbax still
    reads it without an error, with other values (a disk or a transfer flipping bits: the corruption
    only checksums catch). Tries offsets from the middle of the largest data file outwards and keeps
    the first that restores changed; returns (file, offset).

    Which offsets decode silently depends on how Orbax chunked and compressed (zstd) that save,
    which varies from run to run; that some do was measured on orbax-checkpoint 0.12.8."""
    state_dir = os.path.join(step_dir, "state")
    before = _restore_anywhere(state_dir)
    files = sorted((os.path.join(d, f) for d, _, fs in os.walk(state_dir) if os.path.basename(d) == "d" for f in fs),
                   key=os.path.getsize, reverse=True)
    for path in files:
        with open(path, "rb") as f:
            data = f.read()
        middle = len(data) // 2
        for offset in sorted(range(16, len(data) - count - 16, 37), key=lambda o: abs(o - middle))[:40]:
            with open(path, "wb") as f:
                f.write(data[:offset] + bytes(b ^ 0xFF for b in data[offset:offset + count]) + data[offset + count:])
            try:
                after = _restore_anywhere(state_dir)
            except Exception:  # Orbax noticed: not the silent kind
                after = before
            if any(not np.array_equal(a, b, equal_nan=True) for a, b in zip(before, after)):
                return path, offset
        with open(path, "wb") as f:
            f.write(data)
    raise AssertionError(f"no {count} flipped bytes in {state_dir} restore silently")


def read_scalars(logdir: str) -> list[tuple[str, int, float]]:
    """Every scalar in the TensorBoard event files under `logdir`, as (tag, step, value), file by file
    in name order. Reads the TFRecord framing (length, masked CRCs) itself: TensorBoard is not installed."""
    import struct

    from tensorboardX.crc32c import crc32c
    from tensorboardX.proto.event_pb2 import Event

    def masked(data: bytes) -> int:
        crc = crc32c(data)
        return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF

    out = []
    for name in sorted(f for f in os.listdir(logdir) if "tfevents" in f):
        with open(os.path.join(logdir, name), "rb") as f:
            data = f.read()
        pos = 0
        while pos < len(data):
            header = data[pos:pos + 8]
            (length,) = struct.unpack("<Q", header)
            assert struct.unpack("<I", data[pos + 8:pos + 12])[0] == masked(header), f"{name}: bad length CRC"
            body = data[pos + 12:pos + 12 + length]
            assert struct.unpack("<I", data[pos + 12 + length:pos + 16 + length])[0] == masked(body), f"{name}: bad CRC"
            pos += 16 + length
            event = Event.FromString(body)
            out += [(v.tag, event.step, v.simple_value) for v in event.summary.value]
    return out


def search_outputs(workdir):
    """(α, genotype, metrics without timings) a search left in `workdir`: what two runs that must
    be the same are compared by."""
    with np.load(os.path.join(workdir, "alphas.npz")) as z:
        alphas = {k: z[k] for k in z}
    with open(os.path.join(workdir, "genotype.json")) as f:
        genotype = json.load(f)
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        metrics = [{k: v for k, v in json.loads(line).items() if k != "seconds"} for line in f]
    return alphas, genotype, metrics

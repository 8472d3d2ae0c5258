"""Checks shared by the search-space tests, and the environment of the tests' subprocesses."""

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


def flip_bytes(step_dir: str, count: int = 16) -> str:
    """Invert `count` bytes in the middle of the largest array data file of the Orbax checkpoint
    `step_dir` (a disk or a transfer flipping bits); returns the file. Orbax decodes such a file
    without an error (measured: orbax-checkpoint 0.12.8, zstd-compressed OCDBT chunks)."""
    files = [os.path.join(d, f) for d, _, fs in os.walk(os.path.join(step_dir, "state"))
             if os.path.basename(d) == "d" for f in fs]
    path = max(files, key=os.path.getsize)
    with open(path, "r+b") as f:
        data = bytearray(f.read())
        start = len(data) // 2
        data[start:start + count] = bytes(b ^ 0xFF for b in data[start:start + count])
        f.seek(0)
        f.write(data)
    return path


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

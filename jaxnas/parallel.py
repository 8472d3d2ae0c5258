"""Where parallelism lives: the device mesh, the one data-parallel wrapper, multi-host setup.

The step is written for one device's shard; `data_parallel` maps it over the mesh's `data` axis
with `shard_map`, the state replicated and the batches split along their leading axis. Gradients
are averaged explicitly (`lax.pmean`) inside the step, and `check_vma=False` keeps JAX from
inserting its own reductions for replicated inputs (which would average twice); tests compare
N devices with one.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxnas import xla_workarounds
from jaxnas.errors import ConfigError

DATA_AXIS = "data"


def cross_device_mean(tree, axis_name: str | None):
    """Average `tree` over the devices of `axis_name` (identity when it is None: one device)."""
    return tree if axis_name is None else jax.lax.pmean(tree, axis_name)


def initialize_distributed() -> None:
    """Join a multi-host run; a no-op on one host.

    TPU pods are detected by JAX itself. Elsewhere (GPU clusters, CPU tests) set
    JAX_COORDINATOR_ADDRESS=host:port, JAX_NUM_PROCESSES and JAX_PROCESS_ID on every process.
    """
    address = os.environ.get("JAX_COORDINATOR_ADDRESS")
    if address:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU processes talk over gloo
        jax.distributed.initialize(address, num_processes=int(os.environ["JAX_NUM_PROCESSES"]),
                                   process_id=int(os.environ["JAX_PROCESS_ID"]))
    elif os.environ.get("TPU_WORKER_HOSTNAMES") or os.environ.get("CLOUD_TPU_TASK_ID"):
        jax.distributed.initialize()


def barrier(name: str, timeout_s: int = 6 * 3600) -> None:
    """Wait until every process reaches `name` (a no-op on one process). Unlike a collective over
    devices this may wait for hours, e.g. while process 0 downloads a data set."""
    if jax.process_count() == 1:
        return
    from orbax.checkpoint import multihost

    multihost.get_jax_distributed_client().wait_at_barrier(name, timeout_s * 1000)


def data_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    devices = list(devices if devices is not None else jax.devices())
    return Mesh(np.array(devices), (DATA_AXIS,))


def _global(tree, sharding: NamedSharding):
    # Built from a callback so it also works when the mesh spans other hosts' devices: every
    # process passes the same global value and contributes the pieces its devices hold.
    def put(x):
        if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            return jax.random.wrap_key_data(put(jax.random.key_data(x)), impl=jax.random.key_impl(x))
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            return x
        x = np.asarray(x)
        return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])

    return jax.tree.map(put, tree)


def on_host_cpu(fn: Callable, device: jax.Device | None = None) -> Callable:
    """`fn` computed on this host's CPU, its result then moved to `device` (default: the first local
    device). For one-off computations such as initialisation: on an accelerator, compiling them for it
    can take as long as compiling the search step (87-95 s on one H100 at the DARTS paper config,
    69 s at C=8, 5 cells), where the host compiles and runs them in seconds."""

    def run():
        with jax.default_device(jax.local_devices(backend="cpu")[0]):
            out = fn()
        return jax.device_put(out, device if device is not None else jax.local_devices()[0])

    return run


def replicate(tree, mesh: Mesh):
    """Place `tree` (the same on every process) on every device of `mesh`."""
    return _global(tree, NamedSharding(mesh, P()))


def replicated_shapes(fn, mesh: Mesh):
    """What `replicate(fn(), mesh)` would be, as `jax.ShapeDtypeStruct`s; `fn` is traced, not run."""
    sharding = NamedSharding(mesh, P())
    return jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sharding), jax.eval_shape(fn))


def shard_batch(tree, mesh: Mesh):
    """Split a global batch (the same on every process) along its leading axis over `mesh`."""
    return _global(tree, NamedSharding(mesh, P(DATA_AXIS)))


def host_batch(tree, mesh: Mesh):
    """Assemble a global batch from each process's own slice (multi-host data loading): every
    process passes only its rows, in process order, and the result is split over `mesh`."""
    sharding = NamedSharding(mesh, P(DATA_AXIS))
    return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), tree)


def data_parallel(step: Callable, mesh: Mesh, donate_state: bool = True, replicated_tail: int = 0) -> Callable:
    """jit(shard_map(step)): step(state, *batches, *extras) -> (state, metrics), all outputs replicated.

    The last `replicated_tail` arguments (e.g. a drop-path rate) are passed whole to every device.
    """

    def wrapped(state, *args):
        n_batches = len(args) - replicated_tail
        mapped = jax.shard_map(
            step,
            mesh=mesh,
            in_specs=(P(),) + (P(DATA_AXIS),) * n_batches + (P(),) * replicated_tail,
            out_specs=(P(), P()),
            check_vma=False,
        )
        return mapped(state, *args)

    wrapped.__name__ = f"data_parallel_{getattr(step, '__name__', 'step')}"  # the name XLA's dumps and profiles show
    return xla_workarounds.jit(wrapped, donate_argnums=(0,) if donate_state else ())


def data_parallel_sum(fn: Callable, mesh: Mesh) -> Callable:
    """jit(shard_map(fn)) for reductions: fn(state, *batches) returns totals already summed over
    `DATA_AXIS` (with `lax.psum`), replicated on every device (evaluation)."""

    def wrapped(state, *batches):
        mapped = jax.shard_map(fn, mesh=mesh, in_specs=(P(),) + (P(DATA_AXIS),) * len(batches), out_specs=P(),
                               check_vma=False)
        return mapped(state, *batches)

    wrapped.__name__ = f"data_parallel_sum_{getattr(fn, '__name__', 'fn')}"
    return xla_workarounds.jit(wrapped)


def check_batch_split(config, keys: Sequence[str], device_count: int, process_count: int) -> None:
    """ConfigError for a batch size among `config[keys]` that does not split evenly over the
    devices or the processes (naming a size that does)."""
    for key in keys:
        if config[key] % device_count:
            fits = -(-config[key] // device_count) * device_count
            raise ConfigError(f"{key} {config[key]} does not split over {device_count} devices; use a multiple "
                              f"of {device_count}, e.g. --config.{key}={fits}")
        if config[key] % process_count:
            raise ConfigError(f"{key} {config[key]} does not split over {process_count} processes")

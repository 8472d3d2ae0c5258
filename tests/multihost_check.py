"""One process of a 2-process x 2-device run over loopback (gloo); prints the state after 3 steps.

    python tests/multihost_check.py PROCESS_ID PORT ESTIMATOR
"""

import os
import sys

os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"

import jax  # noqa: E402

jax.config.update("jax_cpu_collectives_implementation", "gloo")
jax.distributed.initialize(f"127.0.0.1:{sys.argv[2]}", num_processes=2, process_id=int(sys.argv[1]))

import numpy as np  # noqa: E402
from jax.experimental import multihost_utils  # noqa: E402
from search_problem import build  # noqa: E402

from jaxnas.parallel import data_mesh, data_parallel, replicate, shard_batch  # noqa: E402

estimator = sys.argv[3]
step, state, batches, _ = build(estimator, **({"steps": 1} if estimator == "unrolled" else {}))
mesh = data_mesh()
fn = data_parallel(step, mesh)
state = replicate(state, mesh)
for i in range(3):
    state, metrics = fn(state, shard_batch((batches[i % 2],), mesh), shard_batch(batches[2 + i % 2], mesh))
leaves = jax.tree.leaves((state.params, state.alphas, state.batch_stats))
flat = np.concatenate([np.asarray(multihost_utils.process_allgather(x, tiled=True)).ravel()[: x.size] for x in leaves])
if jax.process_index() == 0:
    np.save(sys.argv[4], flat)
print(f"process {jax.process_index()} devices {jax.device_count()} local {jax.local_device_count()} ok")

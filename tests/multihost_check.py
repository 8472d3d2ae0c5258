"""One process of a 2-process x 2-device run over loopback (gloo); prints the state after 3 steps.

    python tests/multihost_check.py PROCESS_ID PORT ESTIMATOR
"""

import os
import sys

if "--xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):  # run by hand
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"

import jax  # noqa: E402

jax.config.update("jax_cpu_collectives_implementation", "gloo")
jax.distributed.initialize(f"127.0.0.1:{sys.argv[2]}", num_processes=2, process_id=int(sys.argv[1]))

import numpy as np  # noqa: E402
from parallel_check import flat, run  # noqa: E402

state, _ = run(sys.argv[3], jax.devices())  # all 4 devices of both processes; the state is replicated
if jax.process_index() == 0:
    np.save(sys.argv[4], flat(state))
print(f"process {jax.process_index()} devices {jax.device_count()} local {jax.local_device_count()} ok")

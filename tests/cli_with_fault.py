"""`python tests/cli_with_fault.py FAULT MODULE [ARGS...]`: run `python -m MODULE ARGS...` with one
fault injected, for the CLI fault tests (tests/test_cli_faults.py). FAULT is one of:

- `data_unavailable`: preparing the data set fails as it does without network (no network is used);
- `disk_full_at:<step>`: writing checkpoint <step> or a later one fails with ENOSPC inside Orbax;
- `tensorstore_full_at:<step>`: the same as Orbax's TensorStore reports it on a real full disk
  (a ValueError carrying the OS message; checked on a 200 KB tmpfs).
"""

import errno
import runpy
import sys


def main() -> None:
    fault, module, *args = sys.argv[1:]
    if fault == "data_unavailable":
        from jaxnas.data.pipeline import DataError
        from jaxnas.tasks import image as image_task
        from jaxnas.train import loop as train_loop

        def unavailable(name, *_, **__):
            raise DataError(f"data set {name!r} is not prepared and its download host cannot be resolved (offline?)")

        image_task.load_split = train_loop.load_split = unavailable
    elif fault.startswith(("disk_full_at:", "tensorstore_full_at:")):
        import orbax.checkpoint as ocp

        at, save = int(fault.split(":")[1]), ocp.CheckpointManager.save

        def full_disk(self, step, *a, **k):
            if step < at:
                return save(self, step, *a, **k)
            if fault.startswith("disk_full_at:"):
                raise OSError(errno.ENOSPC, "No space left on device", str(self.directory))
            raise ValueError(f'RESOURCE_EXHAUSTED: Error writing "params/.zarray" in OCDBT database at local file '
                             f'"{self.directory}/{step}.orbax-checkpoint-tmp/": Failed to write 211 bytes to file 18: '
                             "No space left on device [os_error_code='28']")

        ocp.CheckpointManager.save = full_disk
    else:
        raise SystemExit(f"unknown fault {fault!r}")
    sys.argv = [module, *args]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()

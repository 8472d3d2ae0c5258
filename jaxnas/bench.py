"""`python -m jaxnas.bench`: compile time, step time, images/s and peak memory of supernet steps.

    python -m jaxnas.bench --config=configs/darts_cifar10.py --step=darts_fd        # the paper config
    python -m jaxnas.bench --config.channels=16 --config.layers=8 --config.batch_size=64 --config.dataset=cifar10
    python -m jaxnas.bench --config.impl=reference --step=weight --json
    python -m jaxnas.bench --config=configs/darts_cifar10.py --step=unrolled --config.remat=True

The network, optimizers, estimator options and input shape come from a search config (default: the
offline default's; `--config.key=value` overrides any key, as for `python -m jaxnas.search`). Input is random
data of the data set's image shape (read from TFDS metadata, nothing downloaded). Steps: `weight`
(forward + backward + SGD-momentum update of the weights only), or a full search step
(`jaxnas.search.step`: the α update from a hypergradient estimator, then the weight update); the
default is the config's estimator. Times are medians after warm-up steps (1, or 50 where edges run
behind a switch: GDAS and the sampling strategies, whose branches are slow the first time they run); compile time is
`jit(...).lower(...).compile()` wall time; peak memory is the process's peak RSS (compiler
included); step memory is XLA's buffer assignment for the step (what it needs on a device). The time
to build the search setup and to initialise the state (once per run) is reported beside them.
Also reported: the first step's latency (compile + the first run, which is never timed), XLA's cost
analysis of the step (`flops_per_step`) and the FLOP/s achieved against the device's peak
(`PEAK_TFLOPS`, where known), and the optimised HLO's size (instructions and fusions), a CPU-side
proxy for the compile time on any backend.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import resource
import sys
import time

import jax
import ml_collections
import numpy as np
import optax
from absl import app, flags
from ml_collections import config_flags

from jaxnas.parallel import data_mesh, data_parallel, replicate, shard_batch
from jaxnas.search import config as config_lib
from jaxnas.search.hypergrad import ESTIMATORS
from jaxnas.search.loop import search_setup
from jaxnas.search.state import SearchState
from jaxnas.search.step import with_task_rngs
from jaxnas.search.strategies import get_strategy
from jaxnas.tasks import get_task
from jaxnas.tasks.image import ImageClassification

STEPS = ("weight",) + ESTIMATORS


def weight_step(net, opt, forward=None, task=None):
    """Forward, backward and SGD-momentum update of the weights at fixed α (no search);
    `forward` is the strategy's per-step supernet inputs (`SearchSetup.forward`), `task` what is
    learned (default: image classification)."""
    task = task or ImageClassification()

    def step(state: SearchState, train_batches, val_batch):
        options = with_task_rngs(task, forward(state)[1] if forward is not None else {}, state.rng)
        loss = task.loss(net, state.batch_stats, **options)
        batch = task.attach(state.carry, train_batches[0])
        (value, (_, stats)), g = jax.value_and_grad(loss, has_aux=True)(state.params, state.alphas, batch)
        updates, opt_state = opt.update(g, state.weight_opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        return state.replace(params=params, batch_stats=stats, weight_opt_state=opt_state), {"train_loss": value}

    return step


# Untimed steps before timing by default. A supernet whose edges run one op behind `lax.switch`
# (GDAS, the sampling strategies) is slow the first time each branch runs (XLA:CPU loads the
# kernels lazily): one GDAS cell measured 76 ms over a few draws and 13 ms after 100.
WARMUP_STEPS = 1
SWITCH_WARMUP_STEPS = 50


def default_warmup(config: ml_collections.ConfigDict) -> int:
    """`SWITCH_WARMUP_STEPS` where the supernet's edges run behind a switch, else `WARMUP_STEPS`."""
    space, _ = config_lib.space_and_strategy(config_lib.resolve(config))
    return SWITCH_WARMUP_STEPS if space.mixing != "softmax" else WARMUP_STEPS


def run(config: ml_collections.ConfigDict, step: str | None = None, repeats: int = 5,
        warmup: int | None = None, exclusive: contextlib.AbstractContextManager | None = None,
        compiler_options: dict | None = None, profile_dir: str | None = None,
        compile_only: bool = False) -> dict:
    """Compile and time one step of the search `config` on random data of its image shape;
    `warmup` untimed steps first (default: `default_warmup(config)`). `exclusive` is held while the
    steps run (warm-up and timed), so that benchmark processes sharing one accelerator can compile
    at the same time without overlapping their timed steps. `compiler_options` are passed to this
    step's compile (beside jaxnas's XLA workarounds); with `profile_dir`, `PROFILE_STEPS` more steps
    run under `jax.profiler.trace(profile_dir)` and `profile_summary` of the trace is reported;
    `compile_only` stops after the compile (what a compile-only pass that fills the persistent
    compilation cache needs)."""
    config = config_lib.resolve(config)
    step = step or config.estimator.name
    if step not in STEPS:
        raise ValueError(f"unknown step {step!r}; valid steps: {', '.join(STEPS)}")
    own_step = get_strategy(config.strategy.name).own_step
    task = get_task(config.task)
    if own_step and step != "first_order":
        raise ValueError(f"strategy {config.strategy.name!r} has its own step; bench it without --step")
    if step not in ("weight", config.estimator.name):
        config.estimator = config_lib.estimator_block(step)
    config_lib.validate(config, jax.device_count())
    warmup = default_warmup(config) if warmup is None else warmup
    space, strategy = config_lib.space_and_strategy(config)
    batch_size = config.batch_size
    shape, num_classes, batches = task.random_batches(config, 3, jax.random.key(2))
    # The search's own setup (strategy, cost penalty, warm-up and all), as `python -m jaxnas.search` builds it.
    t0 = time.perf_counter()
    setup = search_setup(config, space, strategy, num_classes, shape, steps_per_epoch=100, task=task)
    search_step = weight_step(setup.net, setup.weight_opt, setup.forward, task) if step == "weight" else setup.step
    train = tuple(batches[i % 2] for i in range(config_lib.train_batches_per_step(config)))
    init = setup.init
    setup_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    mesh = data_mesh()
    state = jax.block_until_ready(replicate(init(), mesh))
    init_seconds = time.perf_counter() - t0
    train, val = shard_batch(train, mesh), shard_batch(batches[2], mesh)
    fn = data_parallel(search_step, mesh)
    t0 = time.perf_counter()
    compiled = fn.lower(state, train, val).compile(compiler_options=compiler_options or None)
    compile_seconds = time.perf_counter() - t0
    hlo = hlo_size(compiled)
    flops = step_flops(compiled)
    result = {
        "config": dict(space=config.space, dataset=config.dataset, image_shape=list(shape) if shape else None,
                       task=config.task.name, channels=config.channels,
                       layers=config.layers, batch_size=batch_size, step=config.strategy.name if own_step else step,
                       impl=config.impl, remat=config.remat, compute_dtype=config.compute_dtype,
                       matmul_precision=config.matmul_precision, strategy=config.strategy.name),
        "device": f"{jax.devices()[0].platform} x{jax.device_count()}",
        "device_kind": jax.devices()[0].device_kind,
        "compiler_options": compiler_options or {},
        "setup_seconds": round(setup_seconds, 2),
        "init_seconds": round(init_seconds, 2),
        "compile_seconds": round(compile_seconds, 2),
        "step_memory_mb": _step_memory_mb(compiled),
        "hlo_fusions": hlo["fusions"],
        "hlo_instructions": hlo["instructions"],
        "flops_per_step": flops,
        "peak_flops_per_device": peak_flops(jax.devices()[0].device_kind, config.compute_dtype),
    }
    if compile_only:
        return {**result, "peak_memory_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    times = []
    with exclusive or contextlib.nullcontext():
        # The first call after the compile: what a search waits for before its first step ends.
        t0 = time.perf_counter()
        state, metrics = compiled(state, train, val)
        jax.block_until_ready(metrics)
        first_run_seconds = time.perf_counter() - t0
        for _ in range(max(warmup - 1, 0)):
            state, metrics = compiled(state, train, val)
            jax.block_until_ready(metrics)
        for _ in range(repeats):
            t0 = time.perf_counter()
            state, metrics = compiled(state, train, val)
            jax.block_until_ready(metrics)
            times.append(time.perf_counter() - t0)
        profile = None
        if profile_dir is not None:
            with jax.profiler.trace(profile_dir):
                for i in range(PROFILE_STEPS):
                    with jax.profiler.StepTraceAnnotation("step", step_num=i):
                        state, metrics = compiled(state, train, val)
                        jax.block_until_ready(metrics)
            profile = profile_summary(profile_dir, PROFILE_STEPS, hlo)
    step_seconds = float(np.median(times))
    result.update({
        "first_step_seconds": round(compile_seconds + first_run_seconds, 2),
        "step_seconds": round(step_seconds, 5),
        "step_seconds_min": round(min(times), 5),
        "images_per_second": round(batch_size / step_seconds, 1),  # examples: images, or a language model's windows
        **({"tokens_per_second": round(task.throughput(config)[0] / step_seconds, 1)}
           if task.throughput(config)[1] == "tokens" else {}),
        "flops_per_second": round(flops / step_seconds) if flops else None,
        "timed_steps": repeats,
        "warmup_steps": max(warmup, 1),  # the first run after the compile is never timed
        "peak_memory_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    })
    if result["flops_per_second"] and result["peak_flops_per_device"]:
        result["peak_fraction"] = round(result["flops_per_second"] / result["peak_flops_per_device"], 5)
    if profile is not None:
        result["profile"] = profile
    return result


PROFILE_STEPS = 3

# Dense peak FLOP/s per device (no structured sparsity), from the vendors' spec sheets:
# NVIDIA H100 and H200: nvidia.com/en-us/data-center/h100/ and /h200/ (datasheets: FP32 67 TFLOPS
# SXM, 51 PCIe, 60 H200 NVL; BF16 Tensor Core 1,979 / 1,513 / 1,671 TFLOPS "with sparsity", half
# of it dense); A100: nvidia.com/en-us/data-center/a100/ (FP32 19.5, BF16 312); L4:
# nvidia.com/en-us/data-center/l4/ (FP32 30.3, BF16 242 with sparsity); T4:
# nvidia.com/en-us/data-center/tesla-t4/ (FP32 8.1; no bfloat16); V100: nvidia.com/en-us/data-center/v100/
# (FP32 15.7 SXM2, 14 PCIe; no bfloat16). TPUs: cloud.google.com/tpu/docs/v4, /v5e, /v5p, /v6e
# (BF16 275, 197, 459 and 918 TFLOPS per chip; Google gives no float32 peak: None).
# "float32" is the CUDA-core FP32 peak: an XLA dot or convolution that runs on TF32 tensor cores can
# exceed it. Matched in order against `jax.Device.device_kind` (lower case), first match wins.
PEAK_TFLOPS: list[tuple[str, dict[str, float | None]]] = [
    ("h200 nvl", {"float32": 60.0, "bfloat16": 835.5}),
    ("h200", {"float32": 67.0, "bfloat16": 989.5}),
    ("h100 pcie", {"float32": 51.0, "bfloat16": 756.5}),
    ("h100 nvl", {"float32": 60.0, "bfloat16": 835.5}),
    ("h100", {"float32": 67.0, "bfloat16": 989.5}),  # "NVIDIA H100 80GB HBM3": the SXM part
    ("a100", {"float32": 19.5, "bfloat16": 312.0}),
    ("l4", {"float32": 30.3, "bfloat16": 121.0}),
    ("t4", {"float32": 8.1, "bfloat16": None}),
    ("v100-pcie", {"float32": 14.0, "bfloat16": None}),
    ("v100", {"float32": 15.7, "bfloat16": None}),
    ("tpu v6", {"float32": None, "bfloat16": 918.0}),  # v6e reports "TPU v6 lite"
    ("tpu v5 lite", {"float32": None, "bfloat16": 197.0}),  # v5e
    ("tpu v5e", {"float32": None, "bfloat16": 197.0}),
    ("tpu v5p", {"float32": None, "bfloat16": 459.0}),
    ("tpu v5", {"float32": None, "bfloat16": 459.0}),  # v5p reports "TPU v5"
    ("tpu v4", {"float32": None, "bfloat16": 275.0}),
]


def peak_flops(device_kind: str, dtype: str = "float32") -> float | None:
    """The device's dense peak FLOP/s for `dtype` ("float32" or "bfloat16"), None where unknown."""
    kind = device_kind.lower()
    for key, peaks in PEAK_TFLOPS:
        if key in kind:
            tflops = peaks.get(dtype)
            return None if tflops is None else tflops * 1e12
    return None


def step_flops(compiled) -> float | None:
    """XLA's cost analysis of the compiled step: its floating-point operations (per device). jax
    0.7 and 0.10 return a dict; older versions a list of dicts (one per program)."""
    try:
        analysis = compiled.cost_analysis()
    except Exception:  # noqa: BLE001 - not every backend analyses costs
        return None
    if isinstance(analysis, (list, tuple)):
        analysis = analysis[0] if analysis else None
    flops = (analysis or {}).get("flops")
    return float(flops) if flops and flops > 0 else None


_INSTRUCTION = re.compile(r"^\s*(?:ROOT\s+)?%?[\w.\-]+\s*=\s*\S", re.MULTILINE)


def hlo_size(compiled) -> dict:
    """The optimised HLO's size: `instructions` (every instruction of every computation, fused ones
    included) and `fusions` (each one generated kernel). On XLA:CPU the compile time follows the
    number of fusions (LLVM codegen per kernel); on a GPU they are the kernels a step launches,
    beside library calls (GEMMs, convolutions)."""
    try:
        text = compiled.as_text()
    except Exception:  # noqa: BLE001 - some backends give no text; the counts are informative only
        return {"instructions": None, "fusions": None}
    return {"instructions": len(_INSTRUCTION.findall(text)), "fusions": text.count(" fusion(")}


def _kernel_kind(name: str) -> str:
    """A kernel's kind from its name (a GPU kernel's or an XLA:CPU thunk's HLO op)."""
    n = name.lower()
    for kind, words in [("gemm", ("gemm", "cublas", "xmma", "cutlass", "dot", "matmul")),
                        ("convolution", ("conv", "cudnn", "implicit_", "wgrad", "dgrad")),
                        ("memcpy/memset", ("memcpy", "memset")),
                        ("copy/transpose", ("copy", "transpose")),
                        ("reduction", ("reduce", "reduction")),
                        ("scatter/gather", ("scatter", "gather", "dynamic")),
                        ("fusion", ("fusion",))]:
        if any(w in n for w in words):
            return kind
    return re.sub(r"[._]\d+$", "", n) or "other"


_CONTROL_FLOW = ("while", "conditional", "call")


def profile_summary(directory: str, steps: int, hlo: dict | None = None, top: int = 5) -> dict:
    """Summarise the `jax.profiler` trace of `steps` steps under `directory`: kernels launched per
    step and the share of kernel time of the `top` kernel kinds. Kernels are the events of a GPU or
    TPU plane's streams / XLA ops line where there is one; on a CPU (host events only) the XLA:CPU
    thunks (events that carry an `hlo_op`). Falls back to the optimised HLO's fusion count where the
    trace cannot be read."""
    import glob

    files = sorted(glob.glob(os.path.join(directory, "**", "*.xplane.pb"), recursive=True))
    try:
        data = jax.profiler.ProfileData.from_file(files[-1])
        streams, ops, host = [], [], []
        for plane in data.planes:
            on_device = plane.name.startswith("/device:") and "CPU" not in plane.name
            for line in plane.lines:
                if on_device and line.name.startswith("Stream"):  # GPU: kernels (and copies) per stream
                    streams += [(e.name, e.duration_ns) for e in line.events]
                elif on_device and line.name == "XLA Ops":  # TPU: the HLO ops the chip ran
                    ops += [(e.name, e.duration_ns) for e in line.events]
                elif not on_device:  # XLA:CPU's thunks, not loops (their events nest the body's)
                    host += [(e.name, e.duration_ns) for e in line.events
                             if "hlo_op" in dict(e.stats) and not e.name.startswith(_CONTROL_FLOW)]
        kernels, source = next((k, s) for k, s in [(streams, "device trace (GPU streams)"),
                                                    (ops, "device trace (XLA ops)"),
                                                    (host, "host trace (events with an hlo_op: XLA:CPU's thunks)")]
                               if k or s.startswith("host"))
        if not kernels:
            raise ValueError("no kernel events in the trace")
    except Exception as e:  # noqa: BLE001 - the HLO's fusion count is the fallback
        return {"source": f"HLO fusions (trace not read: {type(e).__name__})",
                "kernels_per_step": (hlo or {}).get("fusions"), "trace": files[-1] if files else None}
    total = sum(d for _, d in kernels) or 1.0
    kinds: dict[str, list[float]] = {}
    for name, duration in kernels:
        k = kinds.setdefault(_kernel_kind(name), [0, 0.0])
        k[0] += 1
        k[1] += duration
    ranked = sorted(kinds.items(), key=lambda kv: -kv[1][1])
    return {
        "source": source,
        "steps": steps,
        "kernels_per_step": round(len(kernels) / steps, 1),
        "kernel_seconds_per_step": round(total / steps / 1e9, 5),
        "top_kinds": [{"kind": kind, "share": round(d / total, 4), "per_step": round(n / steps, 1)}
                      for kind, (n, d) in ranked[:top]],
    }


def _step_memory_mb(compiled) -> float | None:
    """What the compiled step needs on its device (XLA's buffer assignment: arguments, outputs and
    temporaries, less donated aliases); unlike peak RSS it leaves out the compiler's own memory."""
    try:
        m = compiled.memory_analysis()
        total = m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes - m.alias_size_in_bytes
    except (AttributeError, NotImplementedError):  # not every backend reports it
        return None
    return round(total / 2**20, 1)


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}; use --config, --config.key=value, --step, ...")
    try:
        r = run(_CONFIG.value, _STEP.value, _REPEATS.value, _WARMUP.value)
    except ValueError as e:  # ConfigError included
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    if _JSON.value:
        print(json.dumps(r))
        return
    c = r["config"]
    print(f"{c['strategy']} {c['impl']} {c['space']} supernet C={c['channels']} cells={c['layers']} "
          f"batch={c['batch_size']} "
          f"{c['dataset']} {tuple(c['image_shape'] or ())} {c['step']} step{' (remat)' if c['remat'] else ''} "
          f"on {r['device']}")
    print(f"  compile {r['compile_seconds']:.1f} s | step {r['step_seconds']:.3f} s | "
          f"{r['images_per_second']:.1f} images/s | peak RSS {r['peak_memory_mb']:.0f} MB | "
          f"step memory {r['step_memory_mb']} MB | {r['hlo_fusions']} HLO fusions, "
          f"{r['hlo_instructions']} instructions")
    print(f"  first step (compile + first run) {r['first_step_seconds']:.1f} s | "
          f"{(r['flops_per_second'] or 0) / 1e12:.3f} TFLOP/s"
          + (f" ({100 * r['peak_fraction']:.1f} % of peak)" if r.get("peak_fraction") else ""))


if __name__ == "__main__":
    from jaxnas import cli

    cli.check_override_keys(sys.argv, set(config_lib.get_config().keys()))
    _CONFIG = config_flags.DEFINE_config_file("config", os.path.abspath(config_lib.__file__),
                                              "search config file[:variant] (default: the offline default)",
                                              lock_config=True)
    _STEP = flags.DEFINE_string("step", None, f"one of {', '.join(STEPS)} (default: the config's estimator)")
    _REPEATS = flags.DEFINE_integer("repeats", 5, "timed steps (the median is reported)")
    _WARMUP = flags.DEFINE_integer("warmup", None, f"untimed steps after compiling (default: {WARMUP_STEPS}; "
                                   f"{SWITCH_WARMUP_STEPS} for GDAS and the sampling strategies)")
    _JSON = flags.DEFINE_bool("json", False, "print one JSON line")
    app.run(main)

"""`python -m jaxnas.search` end to end, as a user runs it (subprocesses, real signals):
outputs, exact resume after SIGKILL / SIGTERM / a damaged newest checkpoint, bad input, 4 devices.

The loop tests search the tiny chain space on the real digits data, so each run compiles in seconds;
the persistent compilation cache (one per test run, `conftest.xla_cache`) makes reruns skip compilation.
"""

import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from helpers import flip_bytes, read_scalars, search_outputs, subprocess_env

from jaxnas.runs import NonFiniteError
from jaxnas.search import loop
from jaxnas.search.config import ConfigError, get_config
from jaxnas.spaces.cost import darts_costs, derived_cost, expected_cost
from jaxnas.vocabulary.darts import Genotype
from jaxnas.vocabulary.nb201 import NB201Arch

CHAIN = ["--config.space=chain", "--config.channels=4", "--config.layers=2", "--config.batch_size=16",
         "--config.epochs=3", "--config.checkpoint_every_steps=10", "--config.log_every_steps=10"]
EPOCH_KEYS = {"epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "alpha_entropy", "hypergrad_norm",
              "seconds", "devices"}


@pytest.fixture(scope="module")
def shared(tmp_path_factory, xla_cache):
    root = tmp_path_factory.mktemp("search_run")
    return {"data_dir": str(root / "tfds"), "cache": xla_cache}


def _cmd(shared, workdir, *flags):
    return [sys.executable, "-m", "jaxnas.search", f"--workdir={workdir}", f"--config.data_dir={shared['data_dir']}",
            f"--config.compilation_cache={shared['cache']}", *flags]


def _search(shared, workdir, *flags, devices=None, timeout=600):
    r = subprocess.run(_cmd(shared, workdir, *flags), env=subprocess_env(devices), capture_output=True, text=True,
                       timeout=timeout)
    return r


def _ok(r):
    assert r.returncode == 0, r.stderr[-3000:]
    return r


_outputs = search_outputs


def _assert_same_run(a, b):
    (alphas_a, geno_a, metrics_a), (alphas_b, geno_b, metrics_b) = _outputs(a), _outputs(b)
    assert alphas_a.keys() == alphas_b.keys()
    for k in alphas_a:
        np.testing.assert_array_equal(alphas_a[k], alphas_b[k])
    assert geno_a == geno_b
    assert metrics_a == metrics_b


def _checkpoints(workdir):
    d = os.path.join(workdir, "checkpoints")
    return sorted(int(n) for n in os.listdir(d) if n.isdigit()) if os.path.isdir(d) else []


def _start_and_signal(shared, workdir, sig, flags=CHAIN, devices=None):
    """Start a search, send `sig` once its first checkpoint exists; return the finished process' stderr."""
    p = subprocess.Popen(_cmd(shared, workdir, *flags), env=subprocess_env(devices), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while not _checkpoints(workdir) and p.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert p.poll() is None, "the run ended before it could be interrupted"
    p.send_signal(sig)
    _, err = p.communicate(timeout=300)
    assert not os.path.exists(os.path.join(workdir, "genotype.json"))  # it really stopped early
    return p.returncode, err


def _kill_once_checkpointed(shared, workdir, step):
    """Start the chain search and SIGKILL it as soon as a checkpoint at or after `step` exists."""
    p = subprocess.Popen(_cmd(shared, workdir, *CHAIN), env=subprocess_env(), stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while not any(s >= step for s in _checkpoints(workdir)) and p.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    p.kill()
    _, err = p.communicate(timeout=60)
    assert p.returncode == -signal.SIGKILL, err[-2000:]


# The tests that compare with one uninterrupted chain run share one xdist worker, so it runs once.
CHAIN_RESUME = pytest.mark.xdist_group("chain_resume")


def _resume_from_checkpoint(shared, full, step, workdir, flags, devices):
    """Rerun `full`'s search from its checkpoint `step` alone, in a fresh `workdir`: the state a run
    killed after that checkpoint leaves behind (what a kill does to the files is tested above on
    the chain space; what each strategy adds is state that must come back exactly)."""
    os.makedirs(os.path.join(workdir, "checkpoints"))
    shutil.copy(os.path.join(full, "config.json"), workdir)
    shutil.copytree(os.path.join(full, "checkpoints", str(step)), os.path.join(workdir, "checkpoints", str(step)))
    r = _ok(_search(shared, workdir, *flags, devices=devices))
    assert f"resumed from checkpoint at step {step}" in r.stderr


@pytest.fixture(scope="module")
def reference(shared, tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("reference"))
    r = _ok(_search(shared, workdir, *CHAIN))
    return workdir, r.stderr


@CHAIN_RESUME
def test_uninterrupted_run_writes_every_output(reference):
    workdir, log = reference
    _, genotype, metrics = _outputs(workdir)
    assert [m["epoch"] for m in metrics] == [1, 2, 3]
    assert all(EPOCH_KEYS <= set(m) | {"seconds"} for m in metrics)
    assert len(genotype["chain"]) == 2
    assert sorted(os.listdir(os.path.join(workdir, "genotypes"))) == [f"epoch_00{e}.json" for e in (1, 2, 3)]
    assert sorted(os.listdir(os.path.join(workdir, "alphas"))) == [f"epoch_00{e}.npz" for e in (0, 1, 2, 3)]
    assert any(f.startswith("events.out.tfevents") for f in os.listdir(os.path.join(workdir, "tensorboard")))
    _assert_tensorboard_mirrors_metrics(workdir)
    for png in ("cells.png", "alphas.png"):
        with open(os.path.join(workdir, png), "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert re.search(r"steps/s, \d+ images/s .* ETA \d+:\d\d:\d\d", log)
    assert "1 device(s)" in log
    # The final α moved away from its initialisation and the final genotype is derived from it.
    with np.load(os.path.join(workdir, "alphas", "epoch_000.npz")) as z0:
        assert not np.allclose(z0["layers"], _outputs(workdir)[0]["layers"])


@CHAIN_RESUME
def test_rerunning_a_finished_run_changes_nothing(shared, reference, tmp_path):
    workdir = str(tmp_path / "copy")
    shutil.copytree(reference[0], workdir)
    r = _ok(_search(shared, workdir, *CHAIN))
    assert "already complete" in r.stderr
    _assert_same_run(reference[0], workdir)


@CHAIN_RESUME
def test_sigkill_after_a_checkpoint_then_rerun_equals_uninterrupted(shared, reference, tmp_path):
    workdir = str(tmp_path / "killed")
    _start_and_signal(shared, workdir, signal.SIGKILL)
    r = _ok(_search(shared, workdir, *CHAIN))
    assert "resumed from checkpoint" in r.stderr
    _assert_same_run(reference[0], workdir)


@CHAIN_RESUME
def test_sigterm_saves_the_step_it_stopped_at_and_resumes_exactly(shared, reference, tmp_path):
    workdir = str(tmp_path / "terminated")
    rc, err = _start_and_signal(shared, workdir, signal.SIGTERM)
    assert rc == 128 + signal.SIGTERM, err[-2000:]  # a scheduler must not read a preempted run as finished
    stopped = int(re.search(r"stopped at step (\d+)", err).group(1))
    assert _checkpoints(workdir)[-1] == stopped
    _ok(_search(shared, workdir, *CHAIN))
    _assert_same_run(reference[0], workdir)


@CHAIN_RESUME
def test_a_metrics_line_cut_after_its_checkpoint_is_written_again(shared, reference, tmp_path):
    """Issue 35: a power cut after the epoch-2 checkpoint leaves epoch 2's line of metrics.jsonl half
    written (the page cache held it). The resumed run writes it again from the checkpoint's record:
    metrics.jsonl and TensorBoard equal an uninterrupted run's (they had epochs 1 and 3 only)."""
    workdir = str(tmp_path / "cut")
    _kill_once_checkpointed(shared, workdir, 88)
    path = os.path.join(workdir, "metrics.jsonl")
    with open(path) as f:
        lines = f.readlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2]
    with open(path, "w") as f:
        f.writelines(lines[:-1] + [lines[-1][:len(lines[-1]) // 2]])
    r = _ok(_search(shared, workdir, *CHAIN))
    assert "resumed from checkpoint at step 88" in r.stderr or "resumed from checkpoint at step 90" in r.stderr
    _assert_same_run(reference[0], workdir)
    _assert_tensorboard_mirrors_metrics(workdir)


@CHAIN_RESUME
def test_damaged_newest_checkpoint_falls_back_to_the_one_before(shared, reference, tmp_path):
    workdir = str(tmp_path / "damaged")
    shutil.copytree(reference[0], workdir)
    for name in ("genotype.json", "alphas.npz"):
        os.remove(os.path.join(workdir, name))
    newest = _checkpoints(workdir)[-1]
    for dirpath, _, files in os.walk(os.path.join(workdir, "checkpoints", str(newest))):
        for f in files:
            with open(os.path.join(dirpath, f), "wb") as fh:
                fh.write(b"not a checkpoint")
    r = _ok(_search(shared, workdir, *CHAIN))
    assert f"checkpoint {newest} failed to restore" in r.stderr
    assert os.listdir(os.path.join(workdir, "damaged"))  # set aside, not deleted
    _assert_same_run(reference[0], workdir)


@CHAIN_RESUME
def test_flipped_bytes_in_the_newest_checkpoint_are_detected_and_the_run_recovers(shared, reference, tmp_path):
    """16 inverted bytes in an array's data file: Orbax reads the checkpoint without an error; its
    checksums reject it, it is set aside and the run resumes from the one before, exactly."""
    workdir = str(tmp_path / "flipped")
    shutil.copytree(reference[0], workdir)
    for name in ("genotype.json", "alphas.npz"):
        os.remove(os.path.join(workdir, name))
    newest = _checkpoints(workdir)[-1]
    flip_bytes(os.path.join(workdir, "checkpoints", str(newest)))
    r = _ok(_search(shared, workdir, *CHAIN))
    assert re.search(rf"checkpoint {newest} failed to restore \(DamagedCheckpoint: \d+ leaf/leaves do not match their "
                     r"checksums", r.stderr), r.stderr[-3000:]
    assert [d.split("-")[0] for d in os.listdir(os.path.join(workdir, "damaged"))] == [str(newest)]
    assert newest in _checkpoints(workdir)  # saved again from the resumed run
    _assert_same_run(reference[0], workdir)


def _assert_tensorboard_mirrors_metrics(workdir):
    """Every number of every metrics.jsonl record is in TensorBoard exactly once, at the record's step."""
    scalars = read_scalars(os.path.join(workdir, "tensorboard"))
    seen = [(tag, step) for tag, step, _ in scalars]
    assert len(seen) == len(set(seen)), sorted({x for x in seen if seen.count(x) > 1})
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        records = [json.loads(line) for line in f]
    expected = {(k, r["step"]): v for r in records for k, v in r.items()
                if k != "epoch" and isinstance(v, int | float)}
    got = {(tag, step): value for tag, step, value in scalars}
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=1e-6), key


@CHAIN_RESUME
def test_sigkill_between_tensorboard_and_checkpoint_logs_every_scalar_once(shared, reference, tmp_path):
    """SIGKILL once the epoch-1 checkpoint (step 44) exists, then remove the checkpoints from step 44
    on: the files of a run killed after epoch 1 went to metrics.jsonl and TensorBoard but before its
    checkpoint. The resumed run redoes epoch 1; TensorBoard holds each scalar once, none lost."""
    workdir = str(tmp_path / "killed")
    _kill_once_checkpointed(shared, workdir, 44)
    assert read_scalars(os.path.join(workdir, "tensorboard"))  # epoch 1 reached TensorBoard before the kill
    for s in _checkpoints(workdir):
        if s >= 44:
            shutil.rmtree(os.path.join(workdir, "checkpoints", str(s)))
    r = _ok(_search(shared, workdir, *CHAIN))
    assert "resumed from checkpoint at step 40" in r.stderr
    _assert_same_run(reference[0], workdir)
    _assert_tensorboard_mirrors_metrics(workdir)


@pytest.mark.parametrize("flag, message", [
    ("--config.estimator.name=second_order", "unknown estimator.name 'second_order'; valid choices: first_order, "
                                             "darts_fd"),
    ("--config.estimator.steps=2", "unknown config key 'estimator.steps': estimator .'first_order'. has keys name"),
    ("--config.space=nb301", "unknown space 'nb301'; valid choices: darts, nb201, chain"),
    ("--config.dataset=cifar1O", "unknown data set 'cifar1O'.*close matches: .*cifar10"),
    ("--config.learning_rate=0.1", "unknown config key 'learning_rate'; valid keys: .*lr"),
    ("--config.batch_size=0", "batch_size must be a positive integer"),
    ("--config.strategy.name=random_ws --config.strategy.derive_samples=0",
     "derive_samples must be a positive integer"),
    ("--config.strategy.name=gdas", "strategy 'gdas' works in space.s. darts, nb201, not 'chain'"),
    # Issue 35: a block's name stands for the block; a value of the wrong type names the key and its type.
    ("--config.strategy=gdas", "strategy 'gdas' works in space.s. darts, nb201, not 'chain'"),
    ("--config.strategy=bogus", "unknown strategy.name 'bogus'; valid choices: darts, darts_pt, gdas"),
    ("--config.estimator=darts_fd --config.estimator.eps_scale=x",
     r"--config.estimator.eps_scale=x: estimator.eps_scale takes a number, e.g. 0.01"),
    ("--config.epochs=abc", r"--config.epochs=abc: epochs takes an integer, e.g. 12"),
    ("--config.plots=maybe", "--config.plots=maybe: plots takes true or false"),
])
def test_bad_input_is_one_line_before_any_work(shared, tmp_path, flag, message):
    workdir = str(tmp_path / "bad")
    r = _search(shared, workdir, *CHAIN, *flag.split())
    assert r.returncode == 2
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and re.search(message, last), r.stderr[-2000:]
    assert not os.path.exists(os.path.join(workdir, "checkpoints"))


@CHAIN_RESUME
def test_a_workdir_with_a_different_config_is_refused_untouched(shared, reference, tmp_path):
    workdir = str(tmp_path / "other")
    shutil.copytree(reference[0], workdir)
    before = {(d, f, os.stat(os.path.join(d, f)).st_mtime_ns) for d, _, fs in os.walk(workdir) for f in fs}
    r = _search(shared, workdir, *CHAIN, "--config.seed=1")
    assert r.returncode == 2
    assert re.search(r"error: workdir .* holds a run with a different config \(seed: saved 0, now 1\)",
                     r.stderr.strip().splitlines()[-1])
    after = {(d, f, os.stat(os.path.join(d, f)).st_mtime_ns) for d, _, fs in os.walk(workdir) for f in fs}
    assert before == after


def test_consecutive_nonfinite_steps_stop_with_a_clear_error(shared, tmp_path):
    config = get_config()
    config.update(dict(space="chain", channels=4, layers=2, batch_size=16, epochs=2, lr=1e30, clip_norm=1e30,
                       max_nonfinite_steps=3, log_every_steps=1, checkpoint_every_steps=0,
                       data_dir=shared["data_dir"], compilation_cache=shared["cache"], plots=False))
    workdir = str(tmp_path / "nan")
    with pytest.raises(NonFiniteError, match="3 consecutive non-finite steps .* no checkpoint was saved yet"):
        loop.run(config, workdir)
    assert _checkpoints(workdir) == []  # nothing non-finite was saved


def test_an_all_nonfinite_epoch_is_logged_as_null_with_its_skipped_steps(shared, tmp_path, caplog):
    """lr 1e30 makes the weights overflow after the first step and every later step non-finite; with
    max_nonfinite_steps large the run goes on. Epoch 2 has no finite step: its means are null (not
    0.0), its skipped steps are counted, and metrics.jsonl is strict JSON (no NaN/Infinity)."""
    config = get_config()
    config.update(dict(space="chain", channels=4, layers=2, batch_size=16, epochs=2, lr=1e30, clip_norm=1e30,
                       max_nonfinite_steps=10**6, log_every_steps=10, checkpoint_every_steps=0,
                       data_dir=shared["data_dir"], compilation_cache=shared["cache"], plots=False))
    workdir = tmp_path / "nan"
    caplog.set_level(logging.INFO, logger="absl")
    loop.run(config, str(workdir))

    def refuse(name):
        raise ValueError(f"metrics.jsonl holds {name}, which is not JSON")

    with open(workdir / "metrics.jsonl") as f:
        first, second = [json.loads(line, parse_constant=refuse) for line in f]
    spe = second["step"] - first["step"]
    assert first["nonfinite_steps"] == spe - 1 and isinstance(first["train_loss"], float)  # only step 1 was finite
    assert second["nonfinite_steps"] == spe
    assert second["train_loss"] is None and second["train_acc"] is None and second["alpha_step_val_loss"] is None
    assert "train loss nan acc nan" in caplog.text and f"{spe} of {spe} steps non-finite, skipped" in caplog.text


def test_config_validation_names_valid_choices():
    config = get_config()
    config.impl = "fast"
    with pytest.raises(ConfigError, match="unknown impl 'fast'; valid choices: scanned, grouped, reference"):
        loop.config_lib.validate(config)
    config = get_config()
    with pytest.raises(ConfigError, match="batch_size 32 does not split over 3 devices"):
        loop.config_lib.validate(config, device_count=3)


# A tiny DARTS-space search on 4 devices: one (reduction) cell of 4 channels, 11 steps per epoch.
TINY_DARTS = ["--config.channels=4", "--config.layers=1", "--config.batch_size=32", "--config.train_portion=0.25",
              "--config.epochs=2", "--config.checkpoint_every_steps=4", "--config.log_every_steps=4",
              "--config.plots=False"]


@pytest.mark.parametrize("strategy, flags", [
    ("gdas", []),  # the default cell: switch-branch ops, edges scanned (44 s a run with impl=reference, 48 s)
    # PC-DARTS with the resource-aware objective: its relaxed and derived costs are logged.
    ("pcdarts", ["--config.strategy.partial_channels=2", "--config.alpha_warmup_epochs=1",
                 "--config.cost_weight=1e-4"]),
])
def test_strategy_on_four_devices_resumes_exactly(shared, tmp_path, strategy, flags):
    """GDAS and PC-DARTS (with a cost penalty) run end to end on the offline data on 4 devices, and a run resumed from
    a checkpoint in the first epoch writes exactly what the uninterrupted run wrote."""
    flags = [*TINY_DARTS, f"--config.strategy.name={strategy}", *flags, "--config.keep_checkpoints=100"]
    full, resumed = str(tmp_path / "full"), str(tmp_path / "resumed")
    r = _ok(_search(shared, full, *flags, devices=4))
    assert f"darts/{strategy}/first_order" in r.stderr and "4 device(s)" in r.stderr
    alphas, genotype, metrics = _outputs(full)
    genotype = Genotype.from_dict(genotype)  # a valid DARTS genotype
    assert [m["epoch"] for m in metrics] == [1, 2] and all(np.isfinite(m["val_loss"]) for m in metrics)
    assert all(m["devices"] == 4 and 0.0 <= m["val_acc"] <= 1.0 for m in metrics)
    if strategy == "pcdarts":  # the derived genotype's parameter cost, and E_α[cost] of the final α
        costs = darts_costs(4, 1, (8, 8), "params")
        assert metrics[-1]["derived_cost"] == derived_cost(genotype, costs) > 0
        np.testing.assert_allclose(metrics[-1]["expected_cost"], float(expected_cost(alphas, costs)), rtol=1e-6)
    with np.load(os.path.join(full, "alphas", "epoch_000.npz")) as z0, \
            np.load(os.path.join(full, "alphas", "epoch_001.npz")) as z1:
        if strategy == "pcdarts":  # β is learnt with α, and neither moves in the warm-up epoch
            assert set(alphas) == {"normal", "reduce", "normal_edges", "reduce_edges"}
            for k in alphas:
                np.testing.assert_array_equal(z1[k], z0[k])
                assert not np.allclose(alphas[k], z1[k])
        else:
            assert not np.allclose(z1["normal"], z0["normal"])
    _resume_from_checkpoint(shared, full, 4, resumed, flags, devices=4)
    _assert_same_run(full, resumed)


# Each sampling strategy in a space it searches, as small as it compiles fast.
SAMPLED_RUNS = {
    "random_ws": ["--config.space=chain", "--config.channels=4", "--config.layers=2",
                  "--config.strategy.derive_samples=8"],
    "enas": ["--config.space=nb201", "--config.channels=4", "--config.layers=1", "--config.strategy.derive_samples=8",
             "--config.strategy.hidden=16", "--config.epochs=2"],
    "pnas": ["--config.space=darts", "--config.impl=reference", "--config.channels=4", "--config.layers=1",
             "--config.strategy.beam=2", "--config.epochs=1"],  # its epoch-end search is the slow part
}
SAMPLED_COMMON = ["--config.batch_size=32", "--config.train_portion=0.25", "--config.eval_batch_size=64",
                  "--config.checkpoint_every_steps=4", "--config.log_every_steps=4", "--config.plots=False"]


@pytest.mark.parametrize("strategy", list(SAMPLED_RUNS))
def test_sampling_strategy_on_four_devices_resumes_exactly(shared, tmp_path, strategy):
    """Random search with weight sharing, ENAS and PNAS run end to end on the offline data on 4
    devices, log what they chose from, and a run resumed from a checkpoint in the first epoch
    writes exactly what the uninterrupted run wrote."""
    flags = [*SAMPLED_COMMON, "--config.epochs=2", *SAMPLED_RUNS[strategy], f"--config.strategy.name={strategy}",
             "--config.keep_checkpoints=100"]  # the uninterrupted run keeps checkpoint 4 to resume from
    full, resumed = str(tmp_path / "full"), str(tmp_path / "resumed")
    r = _ok(_search(shared, full, *flags, devices=4))
    assert "4 device(s)" in r.stderr
    alphas, genotype, metrics = _outputs(full)
    assert [m["epoch"] for m in metrics] == list(range(1, len(metrics) + 1)) and len(metrics) >= 1
    assert all(0 <= m["val_acc"] <= 1 for m in metrics)
    assert genotype == metrics[-1]["genotype"]
    if strategy == "pnas":  # 49 one-block cells, then beam 2 in each of 3 stages
        Genotype.from_dict(genotype)
        assert metrics[-1]["candidates"] == 49 + 3 * 2 and len(metrics[-1]["pnas_spearman"]) == 3
        assert genotype["normal"] == genotype["reduce"]
    else:
        assert metrics[-1]["candidates"] == 8
    if strategy == "enas":
        NB201Arch.from_string(genotype["nb201"])
        assert 0 <= metrics[-1]["reward"] <= 1 and metrics[-1]["baseline"] > 0 and metrics[-1]["hypergrad_norm"] > 0
    # α on disk is the log of the sampler's op frequencies: a distribution over each edge's ops.
    for v in alphas.values():
        np.testing.assert_allclose(np.exp(v).sum(-1), 1.0, atol=1e-4)
    _resume_from_checkpoint(shared, full, 4, resumed, flags, devices=4)
    _assert_same_run(full, resumed)


def test_enas_on_four_devices_equals_one_device(shared, tmp_path):
    """The sampled step and the controller's reward average over devices exactly once: the first
    epoch on 4 devices logs what it logs on one (same draws, same synchronised BN)."""
    flags = [*CHAIN, "--config.epochs=1", "--config.strategy.name=enas", "--config.strategy.derive_samples=4",
             "--config.plots=False"]
    one, four = str(tmp_path / "one"), str(tmp_path / "four")
    _ok(_search(shared, one, *flags, devices=1))
    _ok(_search(shared, four, *flags, devices=4))
    (_, geno_1, [m1]), (_, geno_4, [m4]) = _outputs(one), _outputs(four)
    assert geno_1 == geno_4
    for k in ("train_loss", "val_loss", "val_acc", "reward", "baseline", "hypergrad_norm", "controller_entropy"):
        assert m4[k] == pytest.approx(m1[k], rel=1e-4), k


# The two-process tests (here and in test_search_step) run on one xdist worker, one after the other:
# their coordinators' loopback ports must not meet (a port is picked free, then bound seconds later).
@pytest.mark.xdist_group("multiprocess")
def test_two_processes_equal_one_process(shared, tmp_path):
    """2 processes x 2 devices (jax.distributed over loopback) search like 1 process x 4 devices:
    each process feeds its own slice of every batch, Orbax saves from both, process 0 writes files."""
    from test_search_step import free_port

    multi, single = str(tmp_path / "multi"), str(tmp_path / "single")
    flags = [*CHAIN, "--config.epochs=1"]
    port = str(free_port())
    procs = []
    for i in range(2):
        env = subprocess_env(2, JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}", JAX_NUM_PROCESSES="2",
                             JAX_PROCESS_ID=str(i))
        procs.append(subprocess.Popen(_cmd(shared, multi, *flags), env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))
    outs = [p.communicate(timeout=600) for p in procs]
    logs = "\n".join(f"--- process {i}:\n{err[-2000:]}" for i, (_, err) in enumerate(outs))
    assert all(p.returncode == 0 for p in procs), logs  # both logs: one process's failure aborts the other
    assert "4 device(s) (cpu), 2 process(es)" in outs[0][1]
    _ok(_search(shared, single, *flags, devices=4))
    (a_multi, g_multi, m_multi), (a_one, g_one, m_one) = _outputs(multi), _outputs(single)
    np.testing.assert_allclose(a_multi["layers"], a_one["layers"], rtol=1e-5, atol=1e-7)
    assert g_multi == g_one and len(m_multi) == len(m_one) == 1
    assert _checkpoints(multi) == _checkpoints(single)


def test_cifar10_search_through_mock_data(shared, tmp_path):
    """The TFDS path for a real data set: CIFAR-10 (mocked: random 32x32x3 images) through the same loop."""
    import tensorflow_datasets as tfds

    config = get_config()
    config.update(dict(dataset="cifar10", crop_padding=4, flip=True, space="chain", channels=4, layers=2,
                       batch_size=8, epochs=1, eval_batch_size=16, compilation_cache=shared["cache"], plots=False))
    with tfds.testing.mock_data(num_examples=40):
        record = loop.run(config, str(tmp_path / "c10"))
    assert record["epoch"] == 1 and record["step"] == 2  # 20 search-train images, batch 8
    assert os.path.exists(tmp_path / "c10" / "genotype.json")


def test_a_run_saved_before_a_config_key_existed_still_resumes(tmp_path):
    """A workdir whose config.json lacks a key added to jaxnas later (saved by an older version)
    is accepted when the key has its default, and refused, naming the key, when it does not."""
    from jaxnas.runs import check_workdir

    config = get_config()
    saved = json.loads(config.to_json())
    del saved["compute_dtype"]
    (tmp_path / "config.json").write_text(json.dumps(saved))
    (tmp_path / "checkpoints" / "10").mkdir(parents=True)  # a run with progress (without one, any config goes)
    check_workdir(str(tmp_path), config, loop.RUNTIME_KEYS, defaults=get_config())
    config.compute_dtype = "bfloat16"
    with pytest.raises(ConfigError, match="compute_dtype: saved 'float32', now 'bfloat16'"):
        check_workdir(str(tmp_path), config, loop.RUNTIME_KEYS, defaults=get_config())
    with pytest.raises(ConfigError, match="compute_dtype: saved None"):  # without defaults: any new key differs
        check_workdir(str(tmp_path), get_config(), loop.RUNTIME_KEYS)

"""The faults a new user hits with `python -m jaxnas.search` / `jaxnas.train` (issues 29 and 30), each
reproduced through the CLI: the answer is one line (`error: ...`, exit status 2, no traceback) and
nothing saved is lost or touched (a checksum of the workdir or the current folder before and after).

The runs search the tiny chain space on digits (as tests/test_search_run.py) with the suite's
persistent compilation cache; the faults that need one are injected by tests/cli_with_fault.py.
"""

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest
from helpers import subprocess_env

from jaxnas.runs import WorkdirError, WorkdirLock

HERE = os.path.dirname(os.path.abspath(__file__))
CHAIN = ["--config.space=chain", "--config.channels=4", "--config.layers=2", "--config.batch_size=16",
         "--config.epochs=1", "--config.checkpoint_every_steps=10", "--config.log_every_steps=10",
         "--config.plots=False"]


@pytest.fixture(scope="module")
def shared(tmp_path_factory, xla_cache):
    root = tmp_path_factory.mktemp("cli_faults")
    return {"data_dir": str(root / "tfds"), "cache": xla_cache}


def _cli(shared, module, workdir, *flags, fault=None, cwd=None, timeout=600):
    """Run `python -m module` (through the fault wrapper when `fault` is given)."""
    head = [sys.executable, os.path.join(HERE, "cli_with_fault.py"), fault, module] if fault else \
        [sys.executable, "-m", module]
    data = [f"--config.data_dir={shared['data_dir']}", f"--config.compilation_cache={shared['cache']}"]
    return subprocess.run([*head, f"--workdir={workdir}", *data, *flags], env=subprocess_env(), cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


def _ok(r):
    assert r.returncode == 0, r.stderr[-3000:]
    return r


def _one_line_error(r, pattern: str, status: int = 2) -> str:
    """Exit `status` (2: bad input), no traceback, and the last line `error: ...` matching `pattern`."""
    assert r.returncode == status, r.stderr[-3000:]
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and re.search(pattern, last), r.stderr[-3000:]
    return last


def checksum(folder) -> str:
    """Every file's path, size and content below `folder` (and that the folder exists)."""
    h = hashlib.sha256(str(os.path.isdir(folder)).encode())
    for d, dirs, files in sorted(os.walk(folder)):
        dirs.sort()
        for name in sorted(files) + [x + "/" for x in dirs]:
            path = os.path.join(d, name)
            h.update(os.path.relpath(path, folder).encode())
            if os.path.isfile(path):
                with open(path, "rb") as f:
                    h.update(f.read())
    return h.hexdigest()


def _metrics(workdir, name="metrics.jsonl"):
    with open(os.path.join(workdir, name)) as f:
        return [{k: v for k, v in json.loads(line).items() if k != "seconds"} for line in f]


def _checkpoints(workdir):
    d = os.path.join(workdir, "checkpoints")
    return sorted(int(n) for n in os.listdir(d) if n.isdigit()) if os.path.isdir(d) else []


@pytest.fixture(scope="module")
def finished(shared, tmp_path_factory):
    """A finished one-epoch chain search (44 steps; checkpoints at 10, 20, 30, 40, 44)."""
    workdir = str(tmp_path_factory.mktemp("finished") / "run")
    r = _ok(_cli(shared, "jaxnas.search", workdir, *CHAIN))
    # Issue 35: the run ends with its result, where the outputs are and the next command.
    last = r.stdout.strip().splitlines()[-3:]
    assert re.match(r"search done: search-val acc 0\.\d{4} after epoch 1; genotype in .*/run/genotype.json$", last[0])
    assert last[1].startswith(f"outputs in {workdir}: genotype.json, metrics.jsonl")
    assert last[2].startswith(f"next: python -m jaxnas.study --config.search_workdir={workdir} ")
    return workdir


# Issue 29, items 1-3 and 5: bad workdirs and unavailable data, refused before any expensive work.
MODULES = ["jaxnas.search", "jaxnas.train"]


@pytest.mark.parametrize("module", MODULES)
def test_a_file_as_workdir_is_one_line(shared, tmp_path, module):
    (tmp_path / "afile").write_text("mine")
    before = checksum(tmp_path)
    for workdir, where in (("afile", "--workdir .*afile is a file"), ("afile/sub", "its parent .*afile is a file")):
        _one_line_error(_cli(shared, module, workdir, cwd=tmp_path), where + ", not a folder")
    assert checksum(tmp_path) == before


@pytest.mark.parametrize("module", MODULES)
def test_a_workdir_that_cannot_be_written_is_one_line(shared, tmp_path, module):
    """/sys refuses new files to every user, root included (chmod does not stop root)."""
    before = checksum(tmp_path)
    _one_line_error(_cli(shared, module, "/sys/kernel", cwd=tmp_path), r"--workdir /sys/kernel is not writable")
    _one_line_error(_cli(shared, module, "/sys/jaxnas-run", cwd=tmp_path),
                    r"--workdir /sys/jaxnas-run cannot be created: /sys is not writable")
    assert checksum(tmp_path) == before
    assert not os.path.exists("/sys/jaxnas-run")


@pytest.mark.parametrize("module", MODULES)
def test_a_url_workdir_is_refused_in_one_line(shared, tmp_path, module):
    """Issue 35: `--workdir=gs://bucket/x` created ./gs:/bucket/x, trained, and died at the first
    checkpoint with a 303-line KeyError."""
    before = checksum(tmp_path)
    _one_line_error(_cli(shared, module, "gs://bucket/x", cwd=tmp_path),
                    r"--workdir gs://bucket/x: a URL workdir \(gs://, s3://, ...\) is not supported yet")
    assert checksum(tmp_path) == before  # no ./gs:


def test_a_damaged_config_json_beside_checkpoints_is_one_line(shared, finished, tmp_path):
    """Issue 35: a damaged config.json was a 27-line UnicodeDecodeError (or JSONDecodeError)."""
    workdir = str(tmp_path / "run")
    shutil.copytree(finished, workdir)
    for damage in (b"\xff\xfe\x00garbage", b'{"lr": 0.05, "epo'):
        with open(os.path.join(workdir, "config.json"), "wb") as f:
            f.write(damage)
        before = checksum(workdir)
        _one_line_error(_cli(shared, "jaxnas.search", workdir, *CHAIN),
                        r"holds checkpoints but its config.json is damaged \((UnicodeDecodeError|JSONDecodeError): "
                        r".*\); restore config.json, or use a new --workdir")
        assert checksum(workdir) == before


@pytest.mark.parametrize("module", MODULES)
def test_an_empty_workdir_is_refused(shared, tmp_path, module):
    before = checksum(tmp_path)
    _one_line_error(_cli(shared, module, "", cwd=tmp_path),
                    "--workdir is empty; name a folder")
    assert checksum(tmp_path) == before


@pytest.mark.parametrize("module", MODULES)
def test_data_that_fails_to_prepare_leaves_no_workdir(shared, tmp_path, module):
    before = checksum(tmp_path)
    r = _cli(shared, module, "runs/new", fault="data_unavailable", cwd=tmp_path)
    _one_line_error(r, "data set 'digits' is not prepared and its download host cannot be resolved")
    assert checksum(tmp_path) == before  # no runs/new


# Issue 29 item 4 (and issue 30 item 7): divergence, and a workdir without a checkpoint takes a new config.
def test_divergence_says_what_to_do_and_the_workdir_takes_a_lower_lr(shared, tmp_path):
    workdir = str(tmp_path / "diverged")
    diverging = ["--config.lr=1e30", "--config.clip_norm=1e30", "--config.max_nonfinite_steps=3",
                 "--config.log_every_steps=1"]
    r = _cli(shared, "jaxnas.search", workdir, *CHAIN, *diverging)
    _one_line_error(r, r"3 consecutive non-finite steps .* no checkpoint was saved yet, so the workdir holds no "
                       r"progress: rerun on it with a lower lr or alpha_lr or a tighter gradient clip \(clip_norm\)",
                    status=3)
    assert _checkpoints(workdir) == []
    with open(os.path.join(workdir, "config.json")) as f:
        diverged_config = f.read()
    r = _ok(_cli(shared, "jaxnas.search", workdir, *CHAIN, "--config.lr=0.01"))
    assert re.search(r"holds no checkpoint: starting afresh with this config \(the previous config.json is kept as "
                     r"config.1.json\)", r.stderr)
    with open(os.path.join(workdir, "config.1.json")) as f:
        assert f.read() == diverged_config  # nothing lost
    with open(os.path.join(workdir, "config.json")) as f:
        assert json.load(f)["lr"] == 0.01


def test_a_failed_start_does_not_hold_the_workdir(shared, finished, tmp_path):
    """Issue 30 item 7: a start that fails (batch larger than the data) leaves nothing; the corrected
    command runs."""
    workdir = str(tmp_path / "run")
    _one_line_error(_cli(shared, "jaxnas.search", workdir, *CHAIN, "--config.batch_size=100000"),
                    "batch_size 100000 is larger than the search-train/val splits")
    assert not os.path.exists(workdir)
    _ok(_cli(shared, "jaxnas.search", workdir, *CHAIN))
    assert _metrics(workdir) == _metrics(finished)


# Issue 30 item 2: a restart from scratch keeps the old history.
def test_a_restart_from_scratch_keeps_the_old_metrics(shared, finished, tmp_path):
    workdir = str(tmp_path / "run")
    shutil.copytree(finished, workdir)
    shutil.rmtree(os.path.join(workdir, "checkpoints"))
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        history = f.read()
    with open(os.path.join(workdir, "config.json"), "wb") as f:  # damaged, and no progress to lose: set aside
        f.write(b"\x00damaged")
    r = _ok(_cli(shared, "jaxnas.search", workdir, *CHAIN))
    assert "starting from step 0: the previous run's metrics.jsonl is kept as metrics.1.jsonl" in r.stderr
    assert "the previous config.json is kept as config.1.json" in r.stderr
    with open(os.path.join(workdir, "config.1.json"), "rb") as f:
        assert f.read() == b"\x00damaged"
    with open(os.path.join(workdir, "metrics.1.jsonl")) as f:
        assert f.read() == history
    assert _metrics(workdir) == _metrics(finished)  # and the new run wrote its own


# Issue 30 item 3: two runs on one workdir.
def test_a_workdir_in_use_is_refused_naming_the_process(shared, finished, tmp_path):
    workdir = str(tmp_path / "run")
    shutil.copytree(finished, workdir)
    with WorkdirLock(workdir):  # this test process plays the running search
        before = checksum(workdir)
        r = _cli(shared, "jaxnas.search", workdir, *CHAIN)
        _one_line_error(r, rf"workdir {re.escape(workdir)} is in use by process {os.getpid()} on ")
        assert checksum(workdir) == before
    # A lock file left by a killed run holds no lock: the next run takes it over.
    with open(os.path.join(workdir, "lock"), "w") as f:
        f.write("process 999999 on gone\n")
    r = _ok(_cli(shared, "jaxnas.search", workdir, *CHAIN))
    assert "already complete" in r.stderr


def test_the_lock_is_per_process_and_released():
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        with WorkdirLock(d), WorkdirLock(d, process_index=1):  # the processes of one run
            with pytest.raises(WorkdirError, match=f"in use by process {os.getpid()}"), WorkdirLock(d):
                pass
        with WorkdirLock(d):  # released
            pass


# Issue 30 item 4: a full disk.
@pytest.mark.parametrize("fault", ["disk_full_at:20", "tensorstore_full_at:20"])
def test_a_full_disk_is_one_line_and_a_rerun_resumes(shared, finished, tmp_path, fault):
    workdir = str(tmp_path / "run")
    r = _cli(shared, "jaxnas.search", workdir, *CHAIN, fault=fault)
    size = r"[\d.]+ (bytes|KB|MB|GB)"
    _one_line_error(r, rf"no space left on the device of workdir {re.escape(workdir)}: {size} free, a checkpoint "
                       rf"needs about {size}; its checkpoints are kept; free some space and rerun the same command")
    assert _checkpoints(workdir) == [10]
    r = _ok(_cli(shared, "jaxnas.search", workdir, *CHAIN))
    assert "resumed from checkpoint at step 10" in r.stderr
    assert _metrics(workdir) == _metrics(finished)


# Issue 30 item 8: SIGTERM while the first step compiles.
def test_sigterm_during_the_first_compile_exits_at_once(shared, tmp_path):
    """A DARTS-space search whose first step compiles for about two minutes on 2 cores (no
    compilation cache; the whole one-epoch run took 2.5 min): SIGTERM a second into the compile
    ends it within seconds (0.06 s measured idle, 1.4 s loaded), with one line."""
    workdir = str(tmp_path / "run")
    cmd = [sys.executable, "-m", "jaxnas.search", f"--workdir={workdir}", f"--config.data_dir={shared['data_dir']}",
           "--config.compilation_cache=", "--config.channels=4", "--config.layers=3",
           "--config.estimator.name=darts_fd"]
    p = subprocess.Popen(cmd, env=subprocess_env(), stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(p.stderr), daemon=True)
    reader.start()
    deadline = time.time() + 300
    while not any("compiling the search step" in line for line in lines) and p.poll() is None \
            and time.time() < deadline:
        time.sleep(0.05)
    assert p.poll() is None, "".join(lines)
    time.sleep(1.0)
    t0 = time.time()
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(timeout=60)
    finally:
        p.kill()
    reader.join(10)
    seconds = time.time() - t0
    err = "".join(lines)
    assert p.returncode == 128 + signal.SIGTERM, err[-3000:]
    assert seconds < 10, seconds  # the compile alone takes minutes
    assert "first step done" not in err and "Traceback" not in err
    assert re.search(r"SIGTERM received before the first step finished: exiting now; .* nothing needs saving",
                     err.strip().splitlines()[-1])
    assert _checkpoints(workdir) == []


# Issue 29 item 7: --help lists the config keys, grouped, with their defaults and one line each.
@pytest.mark.parametrize("module, lines", [
    ("jaxnas.search", [r"^data — what to search on:$", r"^  lr +0\.05 +weight learning rate, cosine to lr_min",
                       r"^estimator — .*:$",
                       r"^  estimator +first_order \{…\} +\{name, ...its options\}: first_order \|",
                       r"^  gdas: tau_max=10.0, tau_min=0.1$", r"^  darts_fd: eps_scale=0.01$"]),
    ("jaxnas.train", [r"^network — what is trained:$", r"^  genotype +'DARTS_V2' +a constant"]),
])
def test_help_lists_the_config_keys_grouped(module, lines, tmp_path):
    r = subprocess.run([sys.executable, "-m", module, "--help"], env=subprocess_env(), cwd=tmp_path,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    for pattern in [r"^  --workdir=DIR ", r"^config keys \(--config.<key>=VALUE\)", *lines]:
        assert re.search(pattern, r.stdout, re.M), (pattern, r.stdout)
    assert not os.listdir(tmp_path)

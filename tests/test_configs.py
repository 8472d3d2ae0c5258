"""Every experiment file in configs/ loads and validates, and the DARTS CIFAR-10 config says what
the paper says."""

import glob
import os

import pytest

from jaxnas.cli import describe_keys
from jaxnas.compare import config as compare_config
from jaxnas.search import config as search_config
from jaxnas.search.config import ConfigError, load_config_file
from jaxnas.study import config as study_config
from jaxnas.train import config as train_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(glob.glob(os.path.join(ROOT, "configs", "*.py")))


@pytest.mark.parametrize("path", CONFIGS, ids=os.path.basename)
def test_config_files_validate(path):
    """configs/train_*.py are training configs, study_*.py study configs, compare_*.py comparison
    configs, the others search configs."""
    base = os.path.basename(path)
    kinds = {"train_": train_config, "study_": study_config, "compare_": compare_config}
    kind = next((k for prefix, k in kinds.items() if base.startswith(prefix)), search_config)
    config = load_config_file(path)
    kind.validate(config)
    assert set(config.keys()) == set(kind.get_config().keys())


def test_darts_cifar10_is_the_paper_search():
    second = load_config_file(os.path.join(ROOT, "configs", "darts_cifar10.py"))
    first = load_config_file(os.path.join(ROOT, "configs", "darts_cifar10.py") + ":first_order")
    assert (second.estimator.name, first.estimator.name) == ("darts_fd", "first_order")
    assert second.estimator.eps_scale == 0.01  # the paper's ε = 0.01 / ‖∇w' L_val‖
    for c in (first, second):
        assert (c.dataset, c.epochs, c.batch_size, c.channels, c.layers, c.train_portion) == ("cifar10", 50, 64, 16, 8,
                                                                                              0.5)
        assert (c.lr, c.lr_min, c.momentum, c.weight_decay, c.clip_norm) == (0.025, 0.001, 0.9, 3e-4, 5.0)
        assert (c.alpha_lr, c.alpha_b1, c.alpha_b2, c.alpha_weight_decay) == (3e-4, 0.5, 0.999, 1e-3)
        assert (c.crop_padding, c.flip) == (4, True)


def test_darts_ptb_is_the_paper_search():
    """The DARTS paper's A.1.2 and the authors' rnn/train_search.py defaults."""
    second = load_config_file(os.path.join(ROOT, "configs", "search_darts_ptb.py"))
    first = load_config_file(os.path.join(ROOT, "configs", "search_darts_ptb.py") + ":first_order")
    for c in (second, first):
        search_config.validate(c)
        size = (c.dataset, c.space, c.channels, c.layers, c.batch_size, c.epochs)
        assert size == ("ptb", "darts_rnn", 300, 8, 256, 50)
        assert (c.lr, c.lr_min, c.momentum, c.weight_decay, c.clip_norm) == (20.0, 20.0, 0.0, 5e-7, 0.25)
        assert (c.alpha_lr, c.alpha_b1, c.alpha_b2, c.alpha_weight_decay) == (3e-3, 0.9, 0.999, 1e-3)
        t = c.task
        assert (t.name, t.bptt, t.tar, t.dropout, t.dropouth, t.dropoutx, t.dropouti, t.dropoute) == (
            "language_model", 35, 1e-3, 0.75, 0.25, 0.75, 0.2, 0.0)
    assert second.estimator.name == "darts_fd" and first.estimator.name == "first_order"


def test_missing_config_file_is_an_error():
    with pytest.raises(ConfigError, match="not found"):
        load_config_file("configs/nope.py")


def test_pcdarts_cifar10_is_the_paper_search():
    c = load_config_file(os.path.join(ROOT, "configs", "pcdarts_cifar10.py"))
    assert c.strategy.to_dict() == {"name": "pcdarts", "partial_channels": 4, "edge_normalization": True}
    assert c.estimator.name == "first_order"
    assert (c.dataset, c.epochs, c.alpha_warmup_epochs, c.batch_size, c.channels, c.layers) == ("cifar10", 50, 15, 256,
                                                                                                16, 8)
    assert (c.lr, c.lr_min, c.weight_decay, c.alpha_lr, c.alpha_weight_decay) == (0.1, 0.0, 3e-4, 6e-4, 1e-3)


@pytest.mark.parametrize("name", ["gdas_cifar10.py", "pcdarts_cifar10.py"])
def test_strategy_configs_have_an_offline_variant(name):
    c = load_config_file(os.path.join(ROOT, "configs", name) + ":digits")
    search_config.validate(c)
    assert c.dataset == "digits" and c.strategy.name == name.split("_")[0]
    with pytest.raises(ValueError, match="unknown variant 'cifar100'; valid variants: cifar10, digits"):
        load_config_file(os.path.join(ROOT, "configs", name) + ":cifar100")


@pytest.mark.parametrize("kind", [search_config, train_config, study_config, compare_config],
                         ids=lambda m: m.__name__)
def test_every_config_key_has_a_group_and_a_description(kind):
    """`--help` reads them from get_config's source (jaxnas.cli.describe_keys): none may be missing."""
    described = describe_keys(kind.get_config)
    assert sorted(key for _, key, _ in described) == sorted(kind.get_config().keys())
    assert all(group and text for group, _, text in described), [d for d in described if not (d[0] and d[2])]


OLD_CONFIG = os.path.join(ROOT, "tests", "data", "config_before_blocks.json")  # written by jaxnas before the blocks


def test_a_config_saved_before_the_blocks_maps_to_them():
    """A config.json with the old flat keys (a GDAS search with unrolled(2), other strategies' and
    estimators' keys changed too) becomes today's config: the chosen strategy's and estimator's
    options in their blocks, the others' dropped, every other key as it was."""
    import json

    with open(OLD_CONFIG) as f:
        old = json.load(f)
    new = search_config.upgrade_flat_keys(old)
    assert new["strategy"] == {"name": "gdas", "tau_max": 5.0, "tau_min": 0.1}
    assert new["estimator"] == {"name": "unrolled", "steps": 2}
    added_since = {"matmul_precision", "task"}  # missing from a saved config: its default (runs.config_differences)
    assert set(new) | added_since == set(search_config.get_config().keys())
    assert all(new[k] == old[k] for k in new if k not in ("strategy", "estimator"))
    assert search_config.upgrade_flat_keys(new) == new  # today's form is left as it is


def test_an_old_workdir_resumes_and_a_changed_one_is_refused(tmp_path):
    """The workdir check reads an old config.json through the mapping: the same search, given in
    today's blocks, may resume it; a different option is refused, naming the block."""
    import json
    import shutil

    from jaxnas.runs import WorkdirError, check_workdir
    from jaxnas.search.loop import RUNTIME_KEYS

    workdir = tmp_path / "old"
    os.makedirs(workdir / "checkpoints" / "10")
    shutil.copy(OLD_CONFIG, workdir / "config.json")
    with open(OLD_CONFIG) as f:
        old = json.load(f)
    config = search_config.get_config()
    config.update({k: v for k, v in old.items() if k in config and not isinstance(config[k], dict)
                   and not hasattr(config[k], "keys")})
    config.strategy = search_config.strategy_block("gdas", tau_max=5.0)
    config.estimator = search_config.estimator_block("unrolled", steps=2)
    check = dict(runtime_keys=RUNTIME_KEYS, defaults=search_config.get_config(),
                 upgrade=search_config.upgrade_flat_keys)
    check_workdir(str(workdir), search_config.resolve(config), **check)
    config.strategy.tau_max = 6.0
    with pytest.raises(WorkdirError, match="holds a run with a different config .strategy: saved .*'tau_max': 5.0"):
        check_workdir(str(workdir), config, **check)
    with pytest.raises(WorkdirError):  # without the mapping the old file reads as a different config
        check_workdir(str(workdir), search_config.resolve(search_config.get_config()), RUNTIME_KEYS)

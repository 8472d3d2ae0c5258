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
    assert (second.estimator, first.estimator) == ("darts_fd", "first_order")
    for c in (first, second):
        assert (c.dataset, c.epochs, c.batch_size, c.channels, c.layers, c.train_portion) == ("cifar10", 50, 64, 16, 8,
                                                                                              0.5)
        assert (c.lr, c.lr_min, c.momentum, c.weight_decay, c.clip_norm) == (0.025, 0.001, 0.9, 3e-4, 5.0)
        assert (c.alpha_lr, c.alpha_b1, c.alpha_b2, c.alpha_weight_decay) == (3e-4, 0.5, 0.999, 1e-3)
        assert (c.crop_padding, c.flip) == (4, True)


def test_missing_config_file_is_an_error():
    with pytest.raises(ConfigError, match="not found"):
        load_config_file("configs/nope.py")


def test_pcdarts_cifar10_is_the_paper_search():
    c = load_config_file(os.path.join(ROOT, "configs", "pcdarts_cifar10.py"))
    assert (c.strategy, c.estimator, c.pc_partial_channels, c.pc_edge_normalization) == ("pcdarts", "first_order", 4,
                                                                                        True)
    assert (c.dataset, c.epochs, c.alpha_warmup_epochs, c.batch_size, c.channels, c.layers) == ("cifar10", 50, 15, 256,
                                                                                                16, 8)
    assert (c.lr, c.lr_min, c.weight_decay, c.alpha_lr, c.alpha_weight_decay) == (0.1, 0.0, 3e-4, 6e-4, 1e-3)


@pytest.mark.parametrize("name", ["gdas_cifar10.py", "pcdarts_cifar10.py"])
def test_strategy_configs_have_an_offline_variant(name):
    c = load_config_file(os.path.join(ROOT, "configs", name) + ":digits")
    search_config.validate(c)
    assert c.dataset == "digits" and c.strategy == name.split("_")[0]
    with pytest.raises(ValueError, match="unknown variant 'cifar100'; valid variants: cifar10, digits"):
        load_config_file(os.path.join(ROOT, "configs", name) + ":cifar100")


@pytest.mark.parametrize("kind", [search_config, train_config, study_config, compare_config],
                         ids=lambda m: m.__name__)
def test_every_config_key_has_a_group_and_a_description(kind):
    """`--help` reads them from get_config's source (jaxnas.cli.describe_keys): none may be missing."""
    described = describe_keys(kind.get_config)
    assert sorted(key for _, key, _ in described) == sorted(kind.get_config().keys())
    assert all(group and text for group, _, text in described), [d for d in described if not (d[0] and d[2])]

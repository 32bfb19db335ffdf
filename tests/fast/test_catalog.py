"""Training parameters: defaults, and a clear message naming the allowed range for bad ones."""

from __future__ import annotations

import pytest

from model.training.config import RECIPES, ConfigError, TrainConfig, parse_train_config


def test_defaults():
    config = parse_train_config({})
    assert config == TrainConfig()
    assert (config.recipe, config.epochs) == ("fast", RECIPES["fast"])
    assert config.effective_learning_rate == 5e-3
    assert parse_train_config({"arch": "seed"}).effective_learning_rate == 1e-3


def test_a_recipe_sets_the_epochs_unless_they_are_given():
    assert parse_train_config({"recipe": "strong"}).epochs == RECIPES["strong"] > RECIPES["fast"]
    assert parse_train_config({"recipe": "strong", "epochs": 3}).epochs == 3


def test_a_recipe_sets_the_architecture_unless_it_is_given():
    """fast trains the network cheap enough for a minute on AVX2; strong the shipped one."""
    assert (parse_train_config({}).arch, parse_train_config({"recipe": "strong"}).arch) == ("compact", "deep")
    assert parse_train_config({"recipe": "fast", "arch": "default"}).arch == "default"
    with pytest.raises(ConfigError, match="arch must be one of"):
        parse_train_config({"recipe": "strong", "arch": None})  # absent means the recipe's; null is no architecture


def test_accepts_valid_values():
    config = parse_train_config(
        {"arch": "seed", "epochs": 2, "batch_size": 64, "learning_rate": 0.01, "augment": False}
    )
    assert (config.arch, config.epochs, config.batch_size, config.learning_rate, config.augment) == (
        "seed", 2, 64, 0.01, False)  # fmt: skip


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"arch": "resnet"}, "arch must be one of"),
        ({"recipe": "slow"}, r"recipe must be one of \['fast', 'strong'\]"),
        ({"recipe": {}}, "recipe must be one of"),  # unhashable: once a 500 (schemathesis)
        ({"recipe": None}, "recipe must be one of"),
        ({"epochs": 0}, r"epochs must be in \[1, 100\]"),
        ({"epochs": 10**9}, r"epochs must be in \[1, 100\]"),
        ({"epochs": 2.5}, "epochs must be an integer"),
        ({"epochs": "5"}, "epochs must be an integer"),
        ({"epochs": True}, "epochs must be an integer"),
        ({"learning_rate": 5}, r"learning_rate must be in"),
        ({"batch_size": -1}, r"batch_size must be in \[8, 2048\]"),
        ({"augment": "yes"}, "augment must be true or false"),
        ({"optimizer": "sgd"}, "unknown parameter"),
    ],
)
def test_rejects_with_the_allowed_range(raw, message):
    with pytest.raises(ConfigError, match=message):
        parse_train_config(raw)


def test_rejects_non_objects():
    with pytest.raises(ConfigError):
        parse_train_config(["epochs", 3])


def test_an_integer_too_big_for_a_float_is_out_of_range_not_a_crash():
    with pytest.raises(ConfigError, match=r"epochs must be in \[1, 100\]"):
        parse_train_config({"epochs": 10**400})

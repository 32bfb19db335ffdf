"""What can be trained, and within which limits: shared by the CLI, the web's validation and the worker.

Deliberately free of TensorFlow so the web can import it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

KERAS_ARCHITECTURES = ("seed", "default", "compact")
CLASSIC_ARCHITECTURES = ("logreg", "forest")  # scikit-learn, on the same 28x28 input
ARCHITECTURES = KERAS_ARCHITECTURES + CLASSIC_ARCHITECTURES
DEFAULT_LEARNING_RATES = {"seed": 1e-3, "default": 5e-3, "compact": 5e-3}
# A recipe is how many epochs a job trains, and which network, when it does not say (README, "The
# model"): "fast" is the default (>= 99.0 % in under a minute on a 2-core AVX2 machine: a network
# of a third of default's cost), "strong" trains the shipped model (>= 99.6 %).
RECIPES = {"fast": 2, "strong": 12}
RECIPE_ARCHITECTURES = {"fast": "compact", "strong": "default"}
DEFAULT_RECIPE = "fast"
# Parts of digits and digits run together that a recipe's training shows as no digit at all
# (model/fragments.py), so that the network doubts them when it reads a number. Only the recipe
# that trains the shipped model pays the half minute it takes to cut them.
RECIPE_FRAGMENTS = {"fast": 0, "strong": 20_000}
# The share of augmented images that also get one of the ways scans degrade digits (model/augment.py):
# the shipped model's recipe only (they cost a fifth more per augmented batch).
RECIPE_SCAN_SHARE = {"fast": 0.0, "strong": 0.5}
# Fine-tuning a stored version (base_version) without ``epochs``: one pass over MNIST's training
# images and the corrections (about two minutes on two shared cores), at a tenth of the learning rate.
FINE_TUNE_EPOCHS = 1
FINE_TUNE_LEARNING_RATE = 3e-4
MAX_VERSION = 9_999_999_999

# name -> (type, minimum, maximum); the allowed range is part of every error message.
RANGES: dict[str, tuple[type, float, float]] = {
    "epochs": (int, 1, 100),
    "batch_size": (int, 8, 2048),
    "learning_rate": (float, 1e-5, 1.0),
    "train_limit": (int, 100, 60000),
}


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one training run; ``train_limit`` trains on the first N images only.

    ``augment`` distorts the training images from the second epoch on (the first, clean, is the
    quickest way to a good network); ``include_feedback`` mixes the corrections people gave (all
    but the held-out share) into the training images; ``base_version`` starts from that stored
    Keras version instead of from scratch; ``fragments`` is how many parts of digits and digits
    run together training also shows, as no digit, and ``scan_share`` the share of augmented
    images also degraded as scans degrade digits (the recipe sets both).
    """

    recipe: str = DEFAULT_RECIPE
    arch: str = RECIPE_ARCHITECTURES[DEFAULT_RECIPE]
    epochs: int = RECIPES[DEFAULT_RECIPE]
    batch_size: int = 128
    learning_rate: float | None = None  # None: the architecture's own default
    augment: bool = True
    train_limit: int | None = None
    validation_size: int = 5000
    seed: int = 0
    include_feedback: bool = False
    base_version: int | None = None
    fragments: int = RECIPE_FRAGMENTS[DEFAULT_RECIPE]
    scan_share: float = RECIPE_SCAN_SHARE[DEFAULT_RECIPE]

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def effective_learning_rate(self) -> float:
        if self.base_version:
            return self.learning_rate or FINE_TUNE_LEARNING_RATE
        return self.learning_rate or DEFAULT_LEARNING_RATES.get(self.arch, 1e-3)


# Set by training itself (or the recipe), never by a request.
NOT_REQUESTED = ("validation_size", "seed", "fragments", "scan_share")


def request_parameters() -> set[str]:
    """The names a training request may give (those of :class:`TrainConfig` less :data:`NOT_REQUESTED`)."""
    return {f.name for f in fields(TrainConfig)} - set(NOT_REQUESTED)


class ConfigError(ValueError):
    """A training parameter is missing, of the wrong type or out of range; the message says which."""


def parse_train_config(raw: dict) -> TrainConfig:
    """Validate user-supplied training parameters (e.g. a JSON body) into a :class:`TrainConfig`."""
    if not isinstance(raw, dict):
        raise ConfigError("training parameters must be a JSON object")
    allowed = request_parameters()
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ConfigError(f"unknown parameter(s) {unknown}; allowed: {sorted(allowed)}")
    values: dict = {}
    recipe = raw.get("recipe", DEFAULT_RECIPE)
    if not isinstance(recipe, str) or recipe not in RECIPES:
        raise ConfigError(f"recipe must be one of {list(RECIPES)}, got {recipe!r}"[:300])
    values["recipe"], values["epochs"], values["fragments"] = recipe, RECIPES[recipe], RECIPE_FRAGMENTS[recipe]
    values["scan_share"] = RECIPE_SCAN_SHARE[recipe]
    arch = raw.get("arch", RECIPE_ARCHITECTURES[recipe])
    if arch not in ARCHITECTURES:
        raise ConfigError(f"arch must be one of {list(ARCHITECTURES)}, got {arch!r}"[:300])
    values["arch"] = arch
    for name in ("augment", "include_feedback"):
        if name in raw:
            if not isinstance(raw[name], bool):
                raise ConfigError(f"{name} must be true or false")
            values[name] = raw[name]
    base = raw.get("base_version")
    if base is not None:
        if not isinstance(base, int) or isinstance(base, bool) or not 1 <= base <= MAX_VERSION:
            raise ConfigError(f"base_version must be a model version (a positive integer), got {base!r}"[:300])
        if arch in CLASSIC_ARCHITECTURES:
            keras_only = list(KERAS_ARCHITECTURES)
            raise ConfigError(f"base_version fine-tunes a Keras network: arch must be one of {keras_only}")
        values["base_version"] = base
    for name, (kind, low, high) in RANGES.items():
        if raw.get(name) is None:
            continue
        value = raw[name]
        numeric = isinstance(value, int | float) and not isinstance(value, bool)
        if not numeric or (kind is int and isinstance(value, float) and not value.is_integer()):
            raise ConfigError(f"{name} must be {'an integer' if kind is int else 'a number'} in [{low}, {high}]")
        if not low <= value <= high:
            raise ConfigError(f"{name} must be in [{low}, {high}], got {value}")
        values[name] = kind(value)
    if values.get("base_version") and raw.get("epochs") is None:
        values["epochs"] = FINE_TUNE_EPOCHS
    return TrainConfig(**values)


ACTIVATION_POLICIES = ("never", "always", "if-better")


def parse_training_request(raw: dict) -> tuple[TrainConfig, str]:
    """A training job's body: the parameters, plus ``activate`` ("never", "always" or "if-better":
    see model/judge.py for what it compares)."""
    if not isinstance(raw, dict):
        raise ConfigError("training parameters must be a JSON object")
    raw = dict(raw)
    activate = raw.pop("activate", "never")
    if activate not in ACTIVATION_POLICIES:
        raise ConfigError(f"activate must be one of {list(ACTIVATION_POLICIES)}, got {activate!r}"[:300])
    return parse_train_config(raw), activate

"""What can be trained, and within which limits: shared by the CLI, the web's validation and the worker.

A training request is one typed model (:class:`TrainingRequest`): it validates the API's bodies,
the worker's and the CLI's parameters, and the OpenAPI document is generated from it. Deliberately
free of TensorFlow so the web can import it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    ValidationError,
    model_validator,
)
from pydantic_core import PydanticCustomError

KERAS_ARCHITECTURES = ("seed", "default", "deep", "compact")
CLASSIC_ARCHITECTURES = ("logreg", "forest")  # scikit-learn, on the same 28x28 input
ARCHITECTURES = KERAS_ARCHITECTURES + CLASSIC_ARCHITECTURES
DEFAULT_LEARNING_RATES = {"seed": 1e-3, "default": 5e-3, "deep": 5e-3, "compact": 5e-3}
# A recipe is how many epochs a job trains, and which network, when it does not say (README, "The
# model"): "fast" is the default (>= 99.0 % in under a minute on a 2-core AVX2 machine: a network
# of a third of default's cost), "strong" trains the shipped model (>= 99.6 %).
RECIPES = {"fast": 2, "strong": 18}
RECIPE_ARCHITECTURES = {"fast": "compact", "strong": "deep"}
DEFAULT_RECIPE = "fast"
# Parts of digits and digits run together that a recipe's training shows as no digit at all
# (model/fragments.py), so that the network doubts them when it reads a number. Only the recipe
# that trains the shipped model pays the half minute it takes to cut them.
RECIPE_FRAGMENTS = {"fast": 0, "strong": 20_000}
# The share of augmented images that also get one of the ways scans degrade digits (model/training/
# augment.py). Measured on the robustness suite's 10,000 test digits, `deep` for 12 epochs: 0.7 (and
# blocky scans half black-and-white) read 98.06 % on average, 0.5 97.99 %; `default` with 0.5 97.79 %
# (20 epochs) and without, the model shipped before, 96.50 %. Not measured for the fast recipe.
RECIPE_SCAN_SHARE = {"fast": 0.0, "strong": 0.7}
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
ACTIVATION_POLICIES = ("never", "always", "if-better")


def _number(value: Any) -> Any:
    """JSON numbers only: "5" and true are not numbers, whatever Python makes of them."""
    if isinstance(value, str | bool):
        raise PydanticCustomError("number_type", "must be a number")
    return value


def _in_range(name: str) -> Any:
    """The type of a numeric parameter: its kind and RANGES' bounds (checked after that it is a number)."""
    kind, low, high = RANGES[name]
    within = Field(ge=low, le=high, description="null or absent: the default", allow_inf_nan=False)
    return Annotated[kind, within, BeforeValidator(_number)] | None


class TrainingRequest(BaseModel):
    """A training job's parameters, each optional (absent or null: the default), and whether to
    activate the version it makes. :meth:`config` turns them into a :class:`TrainConfig`."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"recipe": "fast", "activate": "never"}]})

    recipe: Annotated[
        Literal[tuple(RECIPES)],
        Field(
            description="which network and how many epochs, unless given: "
            + ", ".join(f"{name} {RECIPE_ARCHITECTURES[name]} x {epochs}" for name, epochs in RECIPES.items())
            + " (fast: about 99.3 %, the quickest; strong: the shipped model's recipe, about 99.6 %, many times"
            " as long, which also learns that parts of digits and digits run together are no digit: it reads"
            " numbers best; docs/model.md gives the times measured, and where)"
        ),
    ] = DEFAULT_RECIPE
    # Absent: the recipe's network. Not nullable: null is refused, as the document says.
    arch: Annotated[
        Literal[ARCHITECTURES],
        Field(description="the network; absent: the recipe's", json_schema_extra=lambda schema: schema.pop("default")),
    ] = None
    epochs: _in_range("epochs") = None
    batch_size: _in_range("batch_size") = None
    learning_rate: _in_range("learning_rate") = None
    train_limit: _in_range("train_limit") = None
    augment: Annotated[
        StrictBool, Field(description="distort the images of the epochs between the first and the last")
    ] = TrainConfig.augment
    include_feedback: Annotated[StrictBool, Field(description="mix the corrections (but the held-out ones) in")] = False
    base_version: Annotated[
        StrictInt | None,
        Field(
            ge=1,
            le=MAX_VERSION,
            description=f"fine-tune this stored Keras version (default epochs: {FINE_TUNE_EPOCHS})",
        ),
    ] = None
    activate: Annotated[
        Literal[ACTIVATION_POLICIES],
        Field(
            description="if-better: better on the held-out corrections and at most 0.1 point worse on MNIST test "
            "(without corrections: better on MNIST test)"
        ),
    ] = "never"

    @model_validator(mode="after")
    def _fine_tunes_a_keras_network(self) -> TrainingRequest:
        if self.base_version is not None and self.network in CLASSIC_ARCHITECTURES:
            raise PydanticCustomError(
                "keras_only", "base_version fine-tunes a Keras network: arch must be one of {archs}",
                {"archs": str(list(KERAS_ARCHITECTURES))},
            )  # fmt: skip
        return self

    @property
    def network(self) -> str:
        """The architecture asked for, else the recipe's."""
        return self.arch or RECIPE_ARCHITECTURES[self.recipe]

    def config(self) -> TrainConfig:
        """The run these parameters ask for: the recipe's network, epochs, fragments and scan share
        unless given (epochs: a fine-tuning run makes one pass), the rest as given or by default."""
        given = {name: value for name, value in self if value is not None and name in request_parameters()}
        values = {
            **given,
            "arch": self.network,
            "epochs": RECIPES[self.recipe],
            "fragments": RECIPE_FRAGMENTS[self.recipe],
            "scan_share": RECIPE_SCAN_SHARE[self.recipe],
        }
        if self.base_version and self.epochs is None:
            values["epochs"] = FINE_TUNE_EPOCHS
        if self.epochs is not None:
            values["epochs"] = self.epochs
        return TrainConfig(**values)


def request_parameters() -> set[str]:
    """The names a training request may give (those of :class:`TrainConfig` less :data:`NOT_REQUESTED`)."""
    return {f.name for f in fields(TrainConfig)} - set(NOT_REQUESTED)


class ConfigError(ValueError):
    """A training parameter is missing, of the wrong type or out of range; the message says which."""


def parse_train_config(raw: object) -> TrainConfig:
    """Validate user-supplied training parameters (e.g. a JSON body) into a :class:`TrainConfig`."""
    if isinstance(raw, dict) and "activate" in raw:
        raise ConfigError("unknown parameter 'activate': it belongs to a training job, not to a run")
    return parse_training_request(raw)[0]


def parse_training_request(raw: object) -> tuple[TrainConfig, str]:
    """A training job's body: the parameters, plus ``activate`` ("never", "always" or "if-better":
    see model/judge.py for what it compares). Raises :class:`ConfigError` naming the first parameter
    that is wrong, what it must be, and what it was."""
    try:
        request = TrainingRequest.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_refusal(exc)) from None
    return request.config(), request.activate


def _refusal(exc: ValidationError) -> str:
    """The first of pydantic's errors, said as this module always has: the parameter, what it must
    be (its choices, or its kind and range), and what it was."""
    error = exc.errors(include_url=False)[0]
    kind, value = error["type"], error["input"]
    if kind in ("model_type", "model_attributes_type"):
        return "training parameters must be a JSON object"
    name = str(error["loc"][0]) if error["loc"] else ""
    if kind == "extra_forbidden":
        return f"unknown parameter(s) {[name]}; allowed: {sorted(TrainingRequest.model_fields)}"[:300]
    if kind == "keras_only":
        return error["msg"]
    annotation = TrainingRequest.model_fields[name].annotation
    if kind == "literal_error":
        return f"{name} must be one of {list(get_args(annotation))}, got {value!r}"[:300]
    if kind == "bool_type":
        return f"{name} must be true or false"
    kind_of, low, high = RANGES.get(name, (int, 1, MAX_VERSION))
    if kind in ("greater_than_equal", "less_than_equal", "finite_number"):
        return f"{name} must be in [{low}, {high}], got {value}"[:300]
    return f"{name} must be {'an integer' if kind_of is int else 'a number'} in [{low}, {high}]"

"""What reading one image answers, as types: a digit's result, a number's, and an error.

model/recognise.py builds these; job records carry them (jobs/schemas.py) and the API shows them
as they are. TypedDicts cost nothing at run time (the results stay plain dicts, written to Redis as
JSON), and pydantic reads them for the OpenAPI document (web/openapi.py).
"""

from __future__ import annotations

from typing import Annotated, Literal, NotRequired

from pydantic import Field

# pydantic reads TypedDicts from typing_extensions on Python < 3.12
from typing_extensions import TypedDict

# The hint a digit's result carries when the number reader finds several digits in the image.
READ_AS_NUMBER = "read_as_number"
Digit = Annotated[int, Field(ge=0, le=9)]
Probability = Annotated[float, Field(ge=0, le=1)]
Probabilities = Annotated[list[Probability], Field(min_length=10, max_length=10, description="one per digit, 0-9")]
Png = Annotated[
    str, Field(description="the 28x28 image the network saw, a PNG", json_schema_extra={"contentEncoding": "base64"})
]


class ErrorDetail(TypedDict):
    """Why something failed: a stable ``code`` for programs and a ``message`` for people."""

    code: str
    message: str


class Timings(TypedDict):
    """What the image's batch cost: preprocessing per image, the one model call, and its size."""

    preprocess_ms: float
    predict_ms: float
    batch_size: int


class DigitResult(TypedDict):
    """One digit read (``read=digit``); ``label`` is null, with a ``reason``, when the image holds no digit.
    ``hint`` is ``read_as_number``, with a ``hint_reason``, when the number reader finds several digits
    in the image: the label is then only one guess at it."""

    label: Digit | None
    probabilities: Probabilities | None
    model_version: int | None
    confidence: NotRequired[Probability]
    input_png: NotRequired[Png]
    timings: NotRequired[Timings]
    reason: NotRequired[str]
    hint: NotRequired[Literal["read_as_number"]]
    hint_reason: NotRequired[Annotated[str, Field(description="why the hint: how many digits, read as what")]]


class NumberDigit(TypedDict):
    """One digit of a number: what a single digit's result holds, and where it is in the image."""

    label: Digit
    confidence: Probability
    probabilities: Probabilities
    box: Annotated[
        list[Annotated[int, Field(ge=0)]],
        Field(
            min_length=4,
            max_length=4,
            description="[x0, y0, x1, y1] in the sent image's pixels (upright), x1 and y1 exclusive",
        ),
    ]
    input_png: Png


class NumberResult(TypedDict):
    """A number read (``read=number``): its digits left to right; ``text`` is empty, with a ``reason``,
    when the image holds no digit."""

    text: Annotated[str, Field(pattern="^[0-9]*$", description="the digits, leading zeros kept")]
    digits: list[NumberDigit]
    confidence: Annotated[
        Probability | None,
        Field(
            description="the probability that the digits were found where they are (under the fitted "
            "segmentation scoring) times each digit's confidence; null when there are no digits"
        ),
    ]
    model_version: int | None
    timings: NotRequired[Timings]
    reason: NotRequired[str]

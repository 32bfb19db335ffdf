"""Read a whole handwritten number: the digits of one line of ink, each normalised as one digit is.

The work is split in two so that a service can put the candidates of many images through one
model call together with its single digits; nothing here calls the model:

    plan = plan_number(data)                               # decode, find the ink, cut it into pieces
    probabilities = predictor.probabilities(plan.inputs)   # (M, 10), in the same call as other images
    reading = plan.choose(probabilities)                   # the best reading of those pieces

- The front half is :mod:`model.images.preprocess`'s: decode, grayscale, the ink found on an overview and,
  when the line is small there, read again from the original; light or dark paper, shadows, noise.
- :mod:`model.numbers.pieces` cuts the line's ink into pieces: strokes, and parts of wide strokes between
  candidate cuts where touching digits may meet.
- A digit is one or more pieces next to each other in left-to-right order (a 5 whose top bar is
  detached, a 4 or a 7 in two strokes, a stroke broken by a dry pen), if together they are digit-tall,
  no wider than a digit can be and without a wide gap inside. Every such group becomes one 28x28
  input, normalised by preprocess's own box fit and centre of mass.
- :meth:`NumberPlan.choose` picks the groups that cover the pieces left to right (short strokes, such
  as a stray mark, may be left out at a cost) with the highest sum of :mod:`model.numbers.scoring`'s
  log-odds that each is exactly one whole digit: the most probable segmentation, if the groups'
  chances were independent. Each digit's label is then the network's most probable class.

    python -m model.numbers read number.jpg [--max-digits 8] [--show seen.png]
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field

import numpy as np
from PIL import Image
from scipy import ndimage

from model.images.preprocess import (
    MIN_DIGIT_SHARE,
    OVERVIEW_SIDE,
    NotADigit,
    decode,
    fit_and_centre,
    ink_strength,
    light_background,
    reduced_pixels,
    reduction,
)
from model.numbers import lattice, scoring
from model.numbers.pieces import Box, Pieces, Strokes, cut_into_pieces, find_strokes

LINE_DETAIL = 64  # a line under half this tall in the overview is read again from the original, this tall
# Shapes, in line heights. MNIST fits each digit's longer side to its box, so no digit is wider than tall.
MAX_DIGIT_WIDTH = 1.25  # a group wider than this is not one digit (size varies from digit to digit)
# ... nor one lower than this (a detached bar, a dot; MNIST's flattest are 0.4); such strokes may be left out
MIN_DIGIT_HEIGHT = 0.3
MAX_INNER_GAP = 0.3  # pieces of one digit are not further apart than this, side to side
MAX_STROKES_PER_DIGIT = 4  # a digit is made of at most this many separate strokes (or their parts) ...
MAX_PIECES_PER_DIGIT = 8  # ... and pieces


class TooManyDigits(ValueError):
    """The image holds more digits than the caller allows."""


@dataclass(frozen=True)
class FoundDigit:
    """One digit of a reading: its label and probabilities, where it is in the image, what the network saw."""

    label: int
    confidence: float
    probabilities: tuple[float, ...]
    box: tuple[int, int, int, int]  # (x0, y0, x1, y1) in the upright image's pixels, x1 and y1 exclusive
    input: np.ndarray = field(repr=False)  # the (28, 28) float32 input; model.images.preprocess.to_png shows it

    def as_dict(self) -> dict:
        """Plain Python values; ``input`` stays the array (the caller encodes it, e.g. as PNG)."""
        return {
            "label": self.label,
            "confidence": self.confidence,
            "probabilities": list(self.probabilities),
            "box": list(self.box),
            "input": self.input,
        }


@dataclass(frozen=True)
class NumberReading:
    """A whole number read: its digits left to right (``text`` keeps leading zeros), or why there are none."""

    text: str
    digits: tuple[FoundDigit, ...]
    confidence: float | None  # product of the digits' confidences; None when there are no digits
    reason: str | None = None  # why ``text`` is empty

    @classmethod
    def blank(cls, reason: str) -> NumberReading:
        return cls("", (), None, reason)

    def as_dict(self) -> dict:
        return {
            "text": self.text,
            "confidence": self.confidence,
            "digits": [digit.as_dict() for digit in self.digits],
            "reason": self.reason,
        }


@dataclass(frozen=True)
class NumberPlan:
    """Every input that any reading of the pieces needs, and what :meth:`choose` needs to pick one.

    Pieces are numbered left to right; group ``g`` is pieces ``groups[g][0]`` up to, not including,
    ``groups[g][1]``, read as one digit from ``inputs[g]``.
    """

    inputs: np.ndarray  # (M, 28, 28) float32
    groups: tuple[tuple[int, int], ...]
    boxes: tuple[tuple[int, int, int, int], ...]  # per group, (x0, y0, x1, y1) in the upright image
    shape: np.ndarray  # (M, len(scoring.SHAPE_FEATURES)): each group's shape
    runs: tuple  # per group, scoring.sub_runs: the groups it begins or ends with
    skippable: tuple[bool, ...]  # per piece: a short whole stroke, which may be left out of every digit
    max_digits: int | None

    def choose(self, probabilities: np.ndarray, weights: dict | None = None) -> NumberReading:
        """The best reading, given the network's (M, 10) probabilities for :attr:`inputs`
        (``weights``: number_scoring's, default the shipped ones). Raises :class:`TooManyDigits`
        when it has more than ``max_digits`` digits (touching digits can hide that from the plan)."""
        probabilities = np.asarray(probabilities, dtype=np.float64)
        if probabilities.shape != (len(self.groups), 10):
            raise ValueError(f"expected ({len(self.groups)}, 10) probabilities, got {probabilities.shape}")
        scores = scoring.group_scores(self.shape, probabilities, self.runs, weights)
        skip = scoring.skip_score(weights)
        pieces, groups, skippable = len(self.skippable), list(self.groups), list(self.skippable)
        chosen, score = lattice.best_path(pieces, groups, scores, skippable, skip)
        if not chosen:
            return NumberReading.blank("the image is blank: no digit-sized ink, only short marks")
        _refuse_too_many(len(chosen), self.max_digits, exactly=True)
        digits = tuple(
            FoundDigit(
                label=int(probabilities[g].argmax()),
                confidence=float(probabilities[g].max()),
                probabilities=tuple(float(p) for p in probabilities[g]),
                box=self.boxes[g],
                input=self.inputs[g],
            )
            for g in chosen
        )
        text = "".join(str(d.label) for d in digits)
        # P(these digits are the digits) under the scoring's model, times P(each is read right).
        cut_right = math.exp(score - lattice.log_partition(pieces, groups, scores, skippable, skip))
        return NumberReading(text, digits, cut_right * float(np.prod([d.confidence for d in digits])))


def plan_number(
    data: bytes, max_pixels: int | None = None, max_digits: int | None = None, max_decoded_bytes: int | None = None
) -> NumberPlan:
    """Decode image bytes and cut the one line of ink in it into every candidate digit; no model call.

    Raises :class:`NotAnImage` (undecodable, over ``max_pixels``), :class:`TooCostly` (over
    ``max_decoded_bytes`` once decoded), :class:`NotADigit` (no ink) and :class:`TooManyDigits`
    (every reading has more than ``max_digits`` digits), the last before any candidate is
    normalised. A limit left out (None) is not applied; the service always gives all three.
    """
    gray = decode(data, max_pixels, max_decoded_bytes)
    to_upright = _draft_scale(data, gray)
    factor = reduction(math.sqrt(gray.width * gray.height), OVERVIEW_SIDE)
    overview = reduced_pixels(gray, factor)
    light = light_background(overview)
    soft = ink_strength(overview, light)
    strokes = find_strokes(soft, min_side=MIN_DIGIT_SHARE * min(overview.shape))
    _refuse_too_many(_fewest_digits_of_strokes(strokes), max_digits)
    origin, scale = (0, 0), factor
    if factor > 1 and strokes.height < LINE_DETAIL // 2:
        # A small line in a big image: read it again, at a useful resolution, from the original.
        top, bottom, left, right = (v * factor for v in strokes.line_box)
        margin = round(strokes.height * factor) // 2 + factor
        region = (max(0, left - margin), max(0, top - margin), min(gray.width, right + margin),
                  min(gray.height, bottom + margin))  # fmt: skip
        scale = reduction(strokes.height * factor, LINE_DETAIL)
        origin = (region[0], region[1])
        soft = ink_strength(reduced_pixels(gray.crop(region), scale), light)
        strokes = find_strokes(soft, min_side=0)
    pieces = cut_into_pieces(soft, strokes)
    groups = _candidate_groups(pieces, strokes.height)
    skippable = tuple(
        pieces.is_whole(p) and box[1] - box[0] < MIN_DIGIT_HEIGHT * strokes.height for p, box in enumerate(pieces.boxes)
    )
    _refuse_too_many(lattice.fewest_digits(len(pieces.boxes), groups, list(skippable)) or 0, max_digits)
    inputs, boxes, thicknesses = np.zeros((len(groups), 28, 28), np.float32), [], []
    extents = ndimage.find_objects(pieces.labels + 1)  # each piece's pixels, its dots and faint edges too
    for g, (first, stop) in enumerate(groups):
        inputs[g], (top, bottom, left, right), thickness = _group_input(soft, pieces.labels, extents, first, stop)
        thicknesses.append(thickness)
        boxes.append(_to_upright((left, top, right, bottom), origin, scale, to_upright, gray.size))
    return NumberPlan(
        inputs=inputs,
        groups=tuple(groups),
        boxes=tuple(boxes),
        shape=scoring.shape_features(groups, pieces, strokes.height, thicknesses),
        runs=scoring.sub_runs(groups, pieces, strokes.height),
        skippable=skippable,
        max_digits=max_digits,
    )


def read_number(data: bytes, predictor, max_pixels: int | None = None, max_digits: int | None = None) -> NumberReading:
    """Plan, one model call, choose: the reading of one image (blank images give text "" and a reason).

    ``predictor`` is anything with ``probabilities((N, 28, 28)) -> (N, 10)``. Raises
    :class:`NotAnImage`, :class:`TooCostly` and :class:`TooManyDigits` as :func:`plan_number` and
    :meth:`NumberPlan.choose` do.
    """
    try:
        plan = plan_number(data, max_pixels, max_digits)
    except NotADigit as exc:
        return NumberReading.blank(str(exc))
    return plan.choose(predictor.probabilities(plan.inputs))


# --- Groups: which runs of pieces might be one digit, and the best reading of them ----------------


def _fewest_digits_of_strokes(strokes: Strokes) -> int:
    """About the fewest digits of any reading, from whole strokes (cutting only adds digits): checked
    before the work of cutting."""
    tall = [b for b, k, d in zip(strokes.boxes, strokes.kept, strokes.dot, strict=True) if k and not d]
    lefts = sorted(b[2] for b in tall if b[1] - b[0] >= MIN_DIGIT_HEIGHT * strokes.height)
    count, reach = 0, -math.inf
    for left in lefts:
        if left > reach:  # too far right to be part of the digit begun last, even at the widest
            count += 1
            reach = left + MAX_DIGIT_WIDTH * strokes.height
    return count


def _refuse_too_many(fewest: int, max_digits: int | None, exactly: bool = False) -> None:
    if max_digits is not None and fewest > max_digits:
        holds = f"{fewest}" if exactly else f"at least {fewest}"
        raise TooManyDigits(f"the image holds {holds} digits, more than the limit of {max_digits}")


def _candidate_groups(pieces: Pieces, height: float) -> list[tuple[int, int]]:
    """(first, stop) of every run of pieces that could be one digit: digit-tall, not too wide, no gap
    inside, of few strokes and pieces. A whole stroke is always a candidate, however wide or cut up:
    something has to read it."""
    boxes = pieces.boxes
    groups = set()
    for first, (top, bottom, left, right) in enumerate(boxes):
        for stop in range(first + 1, min(len(boxes), first + MAX_PIECES_PER_DIGIT) + 1):
            p_top, p_bottom, p_left, p_right = boxes[stop - 1]
            if p_left - right > MAX_INNER_GAP * height or len(set(pieces.stroke[first:stop])) > MAX_STROKES_PER_DIGIT:
                break
            top, bottom, left, right = min(top, p_top), max(bottom, p_bottom), min(left, p_left), max(right, p_right)
            if right - left > MAX_DIGIT_WIDTH * height:
                break
            if bottom - top >= MIN_DIGIT_HEIGHT * height:
                groups.add((first, stop))
    for stroke in set(pieces.stroke):
        parts = [p for p, s in enumerate(pieces.stroke) if s == stroke]
        tall = max(boxes[p][1] for p in parts) - min(boxes[p][0] for p in parts) >= MIN_DIGIT_HEIGHT * height
        if tall and parts[-1] - parts[0] + 1 == len(parts):  # its parts are next to each other
            groups.add((parts[0], parts[-1] + 1))
    return sorted(groups)


def _group_input(
    soft: np.ndarray, labels: np.ndarray, extents: list[tuple[slice, slice]], first: int, stop: int
) -> tuple[np.ndarray, Box, tuple[int, float]]:
    """The 28x28 input of pieces ``first`` to ``stop`` - 1 read as one digit, their ink's box
    (top, bottom, left, right) at half strength, in ``soft``'s pixels, and its :func:`_thickness`."""
    top, bottom = (
        min(extents[p][0].start for p in range(first, stop)),
        max(extents[p][0].stop for p in range(first, stop)),
    )
    left, right = (
        min(extents[p][1].start for p in range(first, stop)),
        max(extents[p][1].stop for p in range(first, stop)),
    )
    mine = labels[top:bottom, left:right]
    mine = (mine >= first) & (mine < stop)
    ink = np.where(mine, soft[top:bottom, left:right], 0.0).astype(np.float32)
    core = ink >= 0.5
    core_rows, core_cols = np.flatnonzero(core.any(axis=1)), np.flatnonzero(core.any(axis=0))
    box = (int(core_rows[0]), int(core_rows[-1]) + 1, int(core_cols[0]), int(core_cols[-1]) + 1)
    pixels = fit_and_centre(ink, box)
    return pixels, (box[0] + top, box[1] + top, box[2] + left, box[3] + left), _thickness(core)


def _thickness(core: np.ndarray) -> tuple[int, float]:
    """The pixels of a shape, and how thick it is for its length: the spread of its pixels across their
    main direction over the spread along it (near 0 for a straight stroke, 1 for a round blob)."""
    rows, cols = np.nonzero(core)
    if len(rows) < 3:
        return len(rows), 1.0
    spread = np.linalg.eigvalsh(np.cov(np.stack([rows, cols]).astype(np.float64)))
    return len(rows), float(np.sqrt(max(spread[0], 0.0) / max(spread[1], 1e-9)))


def _draft_scale(data: bytes, gray: Image.Image) -> tuple[float, float]:
    """Upright image pixels per decoded pixel, across and down (above 1 where a JPEG was decoded small)."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            if image.getexif().get(0x0112) in (5, 6, 7, 8):  # EXIF orientations that turn by 90 degrees
                width, height = height, width
    except Exception:  # the image decoded once already; any doubt about its header: no scaling
        return 1.0, 1.0
    return width / gray.width, height / gray.height


def _to_upright(
    box: tuple[int, int, int, int],
    origin: tuple[int, int],
    scale: int,
    to_upright: tuple[float, float],
    gray_size: tuple[int, int],
) -> tuple[int, int, int, int]:
    """A box (x0, y0, x1, y1) in working pixels (``scale`` decoded pixels each, from ``origin``) in the
    upright image's pixels."""
    x0, y0, x1, y1 = box
    sx, sy = to_upright
    width, height = round(gray_size[0] * sx), round(gray_size[1] * sy)
    return (
        max(0, math.floor((origin[0] + x0 * scale) * sx)),
        max(0, math.floor((origin[1] + y0 * scale) * sy)),
        min(width, math.ceil((origin[0] + x1 * scale) * sx)),
        min(height, math.ceil((origin[1] + y1 * scale) * sy)),
    )

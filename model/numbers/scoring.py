"""The score of reading a group of pieces as one digit: what the reading of a number maximises.

The network alone cannot tell a whole digit from a part of one: it was trained on whole digits and
is often sure of what half a 0, or two digits squashed together, are. So a group's score is a linear
function of its shape in line heights (width, height, pieces, strokes, the ink that the cuts freeing
it cross, how thick it is, how near its neighbours are) and of the network's view of it (confidence,
label, width for that label), some of them also in bins, for shapes of score a line cannot follow.
Leaving a short stroke out scores ``skip``. With P(reading) = exp(score) / (the sum over all readings
of the pieces), a semi-Markov conditional random field, :mod:`model.numbers.fit_scoring` fits the
weights to numbers built from MNIST *training* digits (never the test digits the evaluation uses) and
writes them to ``shipped/number_scoring.json``.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np

from model.numbers.pieces import Box, Pieces
from model.shipped import SHIPPED_WEIGHTS

SHAPE_FEATURES = (
    "width",
    "width_squared",
    "height",
    "height_squared",
    "pieces",
    "strokes",
    "cut_ink",
    "cuts",
    "cuts_in_narrow",
    "cuts_in_narrow_alone",
    "clean_inner_cut",
    "ink",
    "fill",
    "thickness",
    "left_gap",
    "right_gap",
)
CLEAN_CUT = 0.3  # a cut crossing ink worth this many line heights (along the path) is not clean at all
ONE_DIGIT_WIDE = 1.2  # strokes narrower than this (in line heights) are more likely one digit than two
ROOM = 0.3  # a stroke this far (in line heights) from the strokes beside it stands on its own
GAP_LIMIT = 1.0  # gaps to neighbours are capped at this many line heights (no neighbour: this)
# Bin edges of features whose effect is far from a straight line; "if_1": only for groups read as 1,
# since fragments pass for 1s most, and a 1's shape is unlike the others'.
BINS: dict[str, tuple[float, ...]] = {
    "width": (0.2, 0.35, 0.5, 0.65, 0.8, 0.95, 1.1),
    "height": (0.6, 0.75, 0.85, 0.95, 1.05, 1.2),
    "log_confidence": (-3, -1.5, -0.7, -0.3, -0.1, -0.03, -0.01),
    "thickness": (0.1, 0.2, 0.3, 0.45, 0.6),
    "width_if_1": (0.15, 0.25, 0.35, 0.5, 0.7),
    "thickness_if_1": (0.1, 0.2, 0.3, 0.45),
    "pieces": (1.5, 2.5, 3.5, 5.5),
}
NETWORK_FEATURES = (
    "log_confidence",
    "log_margin",
    "spare",
    "thickness_if_1",
    *(f"read_as_{label}" for label in range(10)),
    *(f"width_if_{label}" for label in range(10)),
    *(f"width_squared_if_{label}" for label in range(10)),
)
BINNED_FEATURES = tuple(f"{name}_bin_{n}" for name, edges in BINS.items() for n in range(len(edges) + 1))
FEATURES = (*SHAPE_FEATURES, *NETWORK_FEATURES, *BINNED_FEATURES)


def shape_features(
    groups: list[tuple[int, int]], pieces: Pieces, height: float, thicknesses: list[tuple[int, float]]
) -> np.ndarray:
    """(groups, SHAPE_FEATURES) float32: each group's shape, in line heights; ``thicknesses`` are the
    groups' pixels of ink at half strength and how thick that ink is for its length."""
    features = np.zeros((len(groups), len(SHAPE_FEATURES)), np.float32)
    for g, (first, stop) in enumerate(groups):
        top, bottom, left, right = _union(pieces.boxes[first:stop])
        width, tall = (right - left) / height, (bottom - top) / height
        cut_ink, cuts, cuts_in_narrow, cuts_in_narrow_alone, clean_inner_cut = _cuts_around(pieces, first, stop)
        left_edge = max((pieces.boxes[p][3] for p in range(first)), default=None)
        right_edge = min((pieces.boxes[p][2] for p in range(stop, len(pieces.boxes))), default=None)
        left_gap = GAP_LIMIT if left_edge is None else (left - left_edge) / height
        right_gap = GAP_LIMIT if right_edge is None else (right_edge - right) / height
        pixels, thickness = thicknesses[g]
        features[g] = (
            width,
            width**2,
            tall,
            tall**2,
            stop - first,
            len(set(pieces.stroke[first:stop])),
            cut_ink,
            cuts,
            cuts_in_narrow,
            cuts_in_narrow_alone,
            clean_inner_cut,
            pixels / height**2,
            pixels / max(1, (right - left) * (bottom - top)),
            thickness,
            min(GAP_LIMIT, max(-GAP_LIMIT, left_gap)),
            min(GAP_LIMIT, max(-GAP_LIMIT, right_gap)),
        )
    return features


def sub_runs(groups: list[tuple[int, int]], pieces: Pieces, height: float) -> tuple[tuple[tuple[int, float], ...], ...]:
    """For each group, the candidate groups it begins or ends with, and the height (in line heights)
    of what it has besides: (sub-group, height of the rest)."""
    index = {group: g for g, group in enumerate(groups)}
    runs = []
    for first, stop in groups:
        found = []
        for cut in range(first + 1, stop):
            for sub, rest in (((first, cut), (cut, stop)), ((cut, stop), (first, cut))):
                if sub in index:
                    top, bottom, _, _ = _union(pieces.boxes[rest[0] : rest[1]])
                    found.append((index[sub], (bottom - top) / height))
        runs.append(tuple(found))
    return tuple(runs)


def features(shape: np.ndarray, probabilities: np.ndarray, runs) -> np.ndarray:
    """(groups, FEATURES): each group's shape and the network's view of it; ``runs`` from :func:`sub_runs`."""
    probabilities = np.maximum(np.asarray(probabilities, np.float64), 1e-9)
    ranked = np.sort(probabilities, axis=1)
    labels = probabilities.argmax(axis=1)
    label = np.eye(10)[labels]
    one = label[:, 1]
    width, thickness = shape[:, SHAPE_FEATURES.index("width")], shape[:, SHAPE_FEATURES.index("thickness")]
    confidence = np.log(ranked[:, -1])
    # A part of the group alone read as the same digit: the rest did not change the network's mind,
    # and if the rest is digit-tall it may be a digit of its own.
    spare = [
        max((rest for sub, rest in found if labels[sub] == labels[g]), default=0.0) for g, found in enumerate(runs)
    ]
    network = np.column_stack(
        [confidence, confidence - np.log(ranked[:, -2]), spare, one * thickness, label, label * width[:, None],
         label * width[:, None] ** 2]
    )  # fmt: skip
    binned_values = {
        "width": width,
        "height": shape[:, SHAPE_FEATURES.index("height")],
        "log_confidence": confidence,
        "thickness": thickness,
        "width_if_1": np.where(one > 0, width, -np.inf),
        "thickness_if_1": np.where(one > 0, thickness, -np.inf),
        "pieces": shape[:, SHAPE_FEATURES.index("pieces")],
    }
    binned = [_one_hot_bins(binned_values[name], edges, only=name.endswith("_if_1")) for name, edges in BINS.items()]
    return np.concatenate([shape, network, *binned], axis=1)


def group_scores(shape: np.ndarray, probabilities: np.ndarray, runs, weights: dict | None = None) -> np.ndarray:
    """(groups,) the score of reading each group as one digit (``weights`` default: the shipped ones)."""
    weights = weights or shipped_weights()
    return features(shape, probabilities, runs) @ np.array([weights["weights"][name] for name in FEATURES])


def skip_score(weights: dict | None = None) -> float:
    """The score of leaving a short stroke out of every digit."""
    return float((weights or shipped_weights())["skip"])


@functools.cache
def shipped_weights() -> dict:
    """The fitted weights: {"weights": {feature: weight}, "skip": score, "fitted_on": ...}."""
    return load_weights(SHIPPED_WEIGHTS)


def load_weights(path: Path) -> dict:
    """Weights written by :mod:`model.numbers.fit_scoring`; refuses a file for other features."""
    weights = json.loads(Path(path).read_text())
    if set(weights["weights"]) != set(FEATURES):
        raise ValueError(f"{path}: weights are for other features than this code's; refit them")
    return weights


def _one_hot_bins(values: np.ndarray, edges: tuple[float, ...], only: bool = False) -> np.ndarray:
    """(len(values), len(edges) + 1): which bin each value falls in; all zero for -inf when ``only``."""
    bins = np.eye(len(edges) + 1)[np.digitize(values, edges)]
    return bins * (values > -np.inf)[:, None] if only else bins


def _union(boxes: list[Box]) -> Box:
    return min(b[0] for b in boxes), max(b[1] for b in boxes), min(b[2] for b in boxes), max(b[3] for b in boxes)


def _cuts_around(pieces: Pieces, first: int, stop: int) -> tuple[float, int, float, float, float]:
    """The ink crossed by, and the number of, the cuts that separate the group from the rest of its
    strokes; how much those are in strokes narrow enough to be one digit, and that also with room
    around them (a stroke on its own); and how clean the cleanest cut inside the group is (CLEAN_CUT
    less its ink, 0 for none): a group across a clean cut may be two digits."""
    ink, cuts, in_narrow, alone, inner = 0.0, 0, 0.0, 0.0, 0.0
    members: dict[int, set[int]] = {}
    for p in range(first, stop):
        members.setdefault(pieces.stroke[p], set()).add(pieces.part[p])
    for stroke, parts in members.items():
        inks = pieces.cut_ink.get(stroke, [])
        for k in parts:
            for neighbour, cut in ((k - 1, k - 1), (k + 1, k)):
                if not 0 <= cut < len(inks):
                    continue
                if neighbour not in parts:
                    ink += inks[cut]
                    cuts += 1
                    narrow = max(0.0, ONE_DIGIT_WIDE - pieces.cut_width[stroke])
                    in_narrow += narrow
                    alone += narrow * min(1.0, pieces.cut_room[stroke] / ROOM)
                else:
                    inner = max(inner, CLEAN_CUT - inks[cut])
    return ink, cuts, in_narrow, alone, inner

"""The pieces of one line of handwritten ink: its strokes, the wide ones cut where digits may touch.

Lengths are in line heights (the typical height of the line's tall strokes), so the same rules hold
for any size of writing. Input is ink strength in [0, 1], as :func:`model.images.preprocess.ink_strength`
gives it.

- A stroke is ink connected at half strength. Strokes far above or below the line and specks are
  not part of it; dots (small both ways) join the nearest piece.
- A stroke wider than CUT_WIDTH may be touching digits. Cut candidates start evenly spread across it
  (overlapping digits have no thin column to look for) and each becomes the top-to-bottom path
  through the least ink within CUT_REACH of its column; candidates that find the same path count
  once. The stroke's pieces are the parts between consecutive paths.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from model.images.preprocess import NotADigit

Box = tuple[int, int, int, int]  # (top, bottom, left, right), bottom and right exclusive

LINE_BAND = 0.25  # strokes wholly further than this above or below the line are not part of it
SPECK_AREA = 0.004  # strokes of fewer pixels than this times the height squared are noise
DOT_SIDE = 0.25  # strokes smaller than this both ways are dots: they join the nearest piece ...
DOT_REACH = 0.3  # ... when one is this near, and are dropped otherwise
CUT_WIDTH = 0.6  # strokes wider than this may be touching digits, and are cut at candidate places
CUT_MARGIN = 0.05  # candidate cuts leave at least this much of the stroke on either side
CUT_SPACING = 0.12  # candidate cuts start this far apart ...
CUT_REACH = 0.3  # ... and stray at most this far sideways, one pixel a row at most
SAME_PATH = 0.04  # cuts on average nearer than this to each other are the same cut
MAX_CUTS = 16  # candidate cuts per stroke, however wide (bounds the work)


@dataclass
class Strokes:
    """The connected strokes of a line of ink, which of them make the line, and how tall it is."""

    labels: np.ndarray  # int32: connected ink at half strength, 1..count; 0 elsewhere
    boxes: list[Box]  # per label - 1
    kept: np.ndarray  # per label - 1: on the line and not a speck
    dot: np.ndarray  # per label - 1: small both ways
    height: float  # the line's: the typical height of its tall strokes
    line_box: Box  # of the kept strokes


@dataclass
class Pieces:
    """Every inked pixel of the line given to a piece; pieces numbered left to right."""

    labels: np.ndarray  # int32: piece number of every inked pixel, -1 elsewhere
    boxes: list[Box]  # per piece, of its body (dots that joined it left out)
    stroke: list[int]  # per piece: the stroke it is, or is a part of
    part: list[int]  # per piece: which part of its stroke, from the left (0 for a whole stroke)
    cut_ink: dict[int, list[float]]  # per cut stroke: the ink each cut crosses, in line heights
    cut_width: dict[int, float]  # per cut stroke: its width, in line heights
    cut_room: dict[int, float]  # per cut stroke: the gap to the nearer stroke beside it, in line heights

    def is_whole(self, piece: int) -> bool:
        return self.stroke[piece] not in self.cut_ink


def find_strokes(soft: np.ndarray, min_side: float) -> Strokes:
    """The strokes of ``soft`` ink; raises NotADigit when none is digit-sized (``min_side`` pixels)."""
    labels, count = ndimage.label(soft >= 0.5, structure=np.ones((3, 3)))
    if count == 0:
        raise NotADigit("the image is blank: no ink found")
    areas = np.bincount(labels.ravel(), minlength=count + 1)[1:]
    boxes = [(s[0].start, s[0].stop, s[1].start, s[1].stop) for s in ndimage.find_objects(labels)]
    tops, bottoms, lefts, rights = (np.array(v) for v in zip(*boxes, strict=True))
    heights, widths = bottoms - tops, rights - lefts
    sizeable = np.flatnonzero(areas >= max(2.0, 0.05 * areas.max()))
    if sizeable.size == 0:
        raise NotADigit("the image is blank: only specks of one pixel")
    height, top, bottom = _line_height([boxes[n] for n in sizeable])
    band_top, band_bottom = top - LINE_BAND * height, bottom + LINE_BAND * height
    kept = (tops < band_bottom) & (bottoms > band_top) & (areas >= max(2.0, SPECK_AREA * height**2))
    dot = np.maximum(heights, widths) < DOT_SIDE * height
    body = kept & ~dot
    if not body.any():  # strokes small beside the height they stack up to
        raise NotADigit(
            "no number found: no stroke on one line is digit-sized"
            " (several rows of digits, or digits drawn as dots, are not read as a number)"
        )
    line_box = (int(tops[body].min()), int(bottoms[body].max()), int(lefts[body].min()), int(rights[body].max()))
    if max(line_box[1] - line_box[0], line_box[3] - line_box[2]) < max(min_side, 2.0):
        raise NotADigit("the image is blank: only specks, nothing digit-sized")
    return Strokes(labels, boxes, kept, dot, height, line_box)


def _line_height(boxes: list[Box]) -> tuple[float, float, float]:
    """The typical height, top and bottom of the digits these strokes make: strokes one above the other
    (half the narrower's width in common) count as one, so that a digit in two strokes (a 4, a 5 with
    its bar apart) counts at its full height. Medians over the taller ones."""
    columns: list[list[int]] = []  # [top, bottom, left, right] of strokes one above the other
    for top, bottom, left, right in sorted(boxes, key=lambda b: b[2]):
        last = columns[-1] if columns else None
        if last and min(last[3], right) - max(last[2], left) >= 0.5 * min(last[3] - last[2], right - left):
            last[:] = [min(last[0], top), max(last[1], bottom), min(last[2], left), max(last[3], right)]
        else:
            columns.append([top, bottom, left, right])
    heights = np.array([c[1] - c[0] for c in columns])
    tall = heights >= 0.5 * heights.max()
    return (
        float(np.median(heights[tall])),
        float(np.median([c[0] for c, t in zip(columns, tall, strict=True) if t])),
        float(np.median([c[1] for c, t in zip(columns, tall, strict=True) if t])),
    )


def cut_into_pieces(soft: np.ndarray, strokes: Strokes) -> Pieces:
    """The line's pieces: whole strokes, parts of wide strokes between cuts; dots given to the nearest."""
    height = strokes.height
    count = len(strokes.boxes)
    kept_labels = np.flatnonzero(strokes.kept) + 1
    lookup = np.zeros(count + 1, np.int32)
    lookup[kept_labels] = kept_labels
    own = lookup[strokes.labels]
    # Faint edges (under half strength) belong to the stroke they border, as preprocess keeps them.
    owner = np.where(own > 0, own, ndimage.maximum_filter(own, size=5))
    owner[soft <= 0] = 0
    piece_of_label = np.full(count + 1, -1, np.int32)
    boxes: list[Box] = []
    stroke: list[int] = []
    part: list[int] = []
    wide = []
    for label in kept_labels:
        if strokes.dot[label - 1]:
            continue
        box = strokes.boxes[label - 1]
        if box[3] - box[2] > CUT_WIDTH * height:
            wide.append(label)
        else:
            piece_of_label[label] = len(boxes)
            boxes.append(box)
            stroke.append(int(label))
            part.append(0)
    labels = piece_of_label[owner]
    cut_ink: dict[int, list[float]] = {}
    cut_width: dict[int, float] = {}
    cut_room: dict[int, float] = {}
    bodies = [strokes.boxes[label - 1] for label in kept_labels if not strokes.dot[label - 1]]
    for label in wide:
        parts, inks = _cut_stroke(soft, owner, int(label), strokes.boxes[label - 1], height, len(boxes), labels)
        boxes += parts
        stroke += [int(label)] * len(parts)
        part += list(range(len(parts)))
        if inks:
            cut_ink[int(label)] = inks
            cut_width[int(label)] = (strokes.boxes[label - 1][3] - strokes.boxes[label - 1][2]) / height
            cut_room[int(label)] = _room(strokes.boxes[label - 1], bodies) / height
    for label in kept_labels:
        if strokes.dot[label - 1]:
            top, bottom, left, right = strokes.boxes[label - 1]
            nearest = _nearest(strokes.boxes[label - 1], boxes, DOT_REACH * height)
            if nearest is not None:
                region = (slice(max(0, top - 2), bottom + 2), slice(max(0, left - 2), right + 2))
                labels[region][owner[region] == label] = nearest
    # Number the pieces left to right by the middles of their bodies (-1, no piece, stays -1).
    order = sorted(range(len(boxes)), key=lambda p: boxes[p][2] + boxes[p][3])
    renumber = np.full(len(boxes) + 1, -1, np.int32)
    renumber[order] = np.arange(len(order))
    return Pieces(
        labels=renumber[labels],
        boxes=[boxes[p] for p in order],
        stroke=[stroke[p] for p in order],
        part=[part[p] for p in order],
        cut_ink=cut_ink,
        cut_width=cut_width,
        cut_room=cut_room,
    )


def _cut_stroke(
    soft: np.ndarray, owner: np.ndarray, label: int, box: Box, height: float, first_piece: int, labels: np.ndarray
) -> tuple[list[Box], list[float]]:
    """Cut one wide stroke at its candidate places; write its pieces' numbers (from ``first_piece``)
    into ``labels``. Returns the pieces' boxes, left to right, and the ink each cut crosses."""
    top, bottom, left, right = box
    rows = slice(max(0, top - 2), min(soft.shape[0], bottom + 2))
    cols = slice(max(0, left - 2), min(soft.shape[1], right + 2))
    mine = owner[rows, cols] == label
    ink = np.where(mine, soft[rows, cols], 0.0)
    margin = max(1, round(CUT_MARGIN * height))
    usable = (right - left) - 2 * margin
    spacing = max(1.0, CUT_SPACING * height, usable / MAX_CUTS)
    columns = np.round(left - cols.start + margin + np.arange(0.0, usable + 1e-9, spacing)).astype(np.int64)
    reach = max(1, round(CUT_REACH * height))
    # Where the three views of "clear" disagree, the sliver between them becomes a piece either side may take.
    paths = _clearest_paths(ink, columns, reach) if len(columns) else np.zeros((0, ink.shape[0]), np.int64)
    paths = _distinct(
        np.maximum.accumulate(paths[np.argsort(paths.mean(axis=1), kind="stable")], axis=0), SAME_PATH * height
    )
    core = mine & (ink >= 0.5)
    while True:  # drop cuts that leave a part with (next to) no ink of its own
        side = _sides(ink.shape, paths)
        counts = np.bincount(side[core], minlength=len(paths) + 1)
        empty = np.flatnonzero(counts < max(2, SPECK_AREA * height**2))
        if len(empty) == 0 or len(paths) == 0:
            break
        paths = np.delete(paths, min(empty[0], len(paths) - 1), axis=0)  # the cut right of it, or the last
    boxes = []
    for k in range(len(paths) + 1):
        part = core & (side == k)
        part_rows, part_cols = np.flatnonzero(part.any(axis=1)), np.flatnonzero(part.any(axis=0))
        boxes.append((rows.start + int(part_rows[0]), rows.start + int(part_rows[-1]) + 1,
                      cols.start + int(part_cols[0]), cols.start + int(part_cols[-1]) + 1))  # fmt: skip
    region = labels[rows, cols]
    region[mine] = first_piece + side[mine]
    inks = [float(ink[np.arange(len(path)), path].sum()) / height for path in paths]
    return boxes, inks


def _clearest_paths(ink: np.ndarray, columns: np.ndarray, reach: int) -> np.ndarray:
    """For each start column, three top-to-bottom paths (one column per row, moving at most one column
    a row, never more than ``reach`` from the start): the one that crosses the least ink; the least
    ink cubed (the faintest valley where strokes meet); the fewest strokes entered (at half
    strength), so through where two meet rather than across both. Returns (3 * cuts, rows) columns."""
    height, width = ink.shape
    offsets = np.arange(-reach, reach + 1)
    at = np.tile(columns, 3)[:, None] + offsets[None, :]  # (paths, band): each family's paths in turn
    inside = (at >= 0) & (at < width)
    seen = ink[:, np.clip(at, 0, width - 1)]  # (rows, paths, band)
    core = inside[None] & (seen >= 0.5)
    family = np.repeat(np.arange(3), len(columns))[None, :, None]
    cost = np.select([family == 0, family == 1], [seen, seen**3], 0.15 * core)
    cost = np.where(inside[None], cost, np.inf) + 0.01 * np.abs(offsets)  # of equally clear paths, the straighter
    entry = np.where(family[0] == 2, 1.0, 0.0)  # the cost of stepping into a stroke, for the third family
    total = cost[0].copy()
    moves = np.zeros((height, *at.shape), np.int8)
    options = np.empty((3, *at.shape))
    before = np.zeros((3, *at.shape), bool)
    for row in range(1, height):  # dynamic programming, all paths at once
        options[0, :, 0], options[0, :, 1:] = np.inf, total[:, :-1] + 0.02  # from the left
        options[1] = total
        options[2, :, -1], options[2, :, :-1] = np.inf, total[:, 1:] + 0.02  # from the right
        before[0, :, 1:], before[1], before[2, :, :-1] = core[row - 1][:, :-1], core[row - 1], core[row - 1][:, 1:]
        options += entry * (core[row][None] & ~before)
        step = options.argmin(axis=0)
        moves[row] = step - 1
        total = np.take_along_axis(options, step[None], axis=0)[0] + cost[row]
    position = total.argmin(axis=1)
    paths_index = np.arange(len(at))
    paths = np.empty((len(at), height), np.int64)
    for row in range(height - 1, -1, -1):
        paths[:, row] = at[paths_index, position]
        position = position + moves[row, paths_index, position]
    return paths


def _distinct(paths: np.ndarray, tolerance: float) -> np.ndarray:
    """The sorted paths without near-repeats (on average within ``tolerance`` of the one kept before)."""
    kept: list[np.ndarray] = []
    for path in paths:
        if not kept or np.abs(path - kept[-1]).mean() > tolerance:
            kept.append(path)
    return np.array(kept, dtype=np.int64).reshape(len(kept), paths.shape[1])


def _sides(shape: tuple[int, int], paths: np.ndarray) -> np.ndarray:
    """For each pixel, how many of the paths lie at or left of it: the part of the stroke it is in."""
    if len(paths) == 0:
        return np.zeros(shape, np.int64)
    return (np.arange(shape[1])[None, None, :] >= paths[:, :, None]).sum(axis=0)


def _room(box: Box, boxes: list[Box]) -> float:
    """The gap from ``box`` to the nearest of ``boxes`` beside it (overlapping it in rows), inf if none."""
    gaps = [
        max(other[2] - box[3], box[2] - other[3])
        for other in boxes
        if other != box and other[0] < box[1] and other[1] > box[0]
    ]
    return max(0, min(gaps)) if gaps else math.inf


def _nearest(box: Box, boxes: list[Box], reach: float) -> int | None:
    """The index of the box in ``boxes`` nearest ``box``, if within ``reach``."""
    best, best_distance = None, reach
    for n, (top, bottom, left, right) in enumerate(boxes):
        distance = math.hypot(max(0, left - box[3], box[2] - right), max(0, top - box[1], box[0] - bottom))
        if distance <= best_distance:
            best, best_distance = n, distance
    return best

"""Readings of a row of pieces as paths: each digit a group of consecutive pieces, some pieces left out.

Pieces are numbered 0..n-1 left to right. A group ``(first, stop)`` reads pieces first..stop-1 as one
digit, with a score; a piece marked skippable may instead be left out of every digit, for
``skip_score``. A reading is a path from 0 to n of groups and skips, its score their sum. The
functions below are the usual dynamic programmes over such paths (a semi-Markov chain): the best
path, the log of the sum of exp(score) over all paths, and each group's share of that sum.
"""

from __future__ import annotations

import numpy as np

Group = tuple[int, int]


def best_path(
    pieces: int, groups: list[Group], scores: np.ndarray, skippable: list[bool], skip_score: float
) -> tuple[list[int], float]:
    """The groups (indices, left to right) of the highest-scoring path, and its score; ([], -inf)
    if there is none. Any number of digits: a caller with a limit refuses a path over it, rather
    than take a worse reading that fits (which would read a longer number as a shorter one)."""
    best = np.full(pieces + 1, -np.inf)
    came_from: list[tuple[int, int | None]] = [(0, None)] * (pieces + 1)  # (previous position, group or skip)
    best[0] = 0.0
    starting = _by_start(pieces, groups)
    for position in range(pieces):
        here = best[position]
        if here == -np.inf:
            continue
        if skippable[position] and here + skip_score > best[position + 1]:
            best[position + 1], came_from[position + 1] = here + skip_score, (position, None)
        for g, stop in starting[position]:
            if here + scores[g] > best[stop]:
                best[stop], came_from[stop] = here + scores[g], (position, g)
    score = float(best[pieces])
    if score == -np.inf:
        return [], score
    chosen, position = [], pieces
    while position > 0:
        position, g = came_from[position]
        if g is not None:
            chosen.append(g)
    return chosen[::-1], score


def log_partition(
    pieces: int, groups: list[Group], scores: np.ndarray, skippable: list[bool], skip_score: float
) -> float:
    """log of the sum over all paths of exp(path score), any number of digits."""
    return float(_forward(pieces, groups, scores, skippable, skip_score)[pieces])


def marginals(
    pieces: int, groups: list[Group], scores: np.ndarray, skippable: list[bool], skip_score: float
) -> tuple[np.ndarray, np.ndarray, float]:
    """Under P(path) = exp(score - log_partition): each group's probability of being on the path, each
    piece's probability of being left out, and the log partition."""
    alpha = _forward(pieces, groups, scores, skippable, skip_score)
    beta = np.full(pieces + 1, -np.inf)
    beta[pieces] = 0.0
    starting = _by_start(pieces, groups)
    for position in range(pieces - 1, -1, -1):
        terms = [scores[g] + beta[stop] for g, stop in starting[position]]
        if skippable[position]:
            terms.append(skip_score + beta[position + 1])
        beta[position] = np.logaddexp.reduce(terms) if terms else -np.inf
    total = alpha[pieces]
    group_share = np.array(
        [np.exp(alpha[first] + scores[g] + beta[stop] - total) for g, (first, stop) in enumerate(groups)]
    )
    skip_share = np.array(
        [np.exp(alpha[p] + skip_score + beta[p + 1] - total) if skippable[p] else 0.0 for p in range(pieces)]
    )
    return group_share, skip_share, float(total)


def fewest_digits(pieces: int, groups: list[Group], skippable: list[bool]) -> int | None:
    """The fewest digits of any path, or None if there is no path."""
    fewest = [0] + [pieces + 1] * pieces
    starting = _by_start(pieces, groups)
    for position in range(pieces):
        if skippable[position]:
            fewest[position + 1] = min(fewest[position + 1], fewest[position])
        for _, stop in starting[position]:
            fewest[stop] = min(fewest[stop], fewest[position] + 1)
    return fewest[pieces] if fewest[pieces] <= pieces else None


def _forward(
    pieces: int, groups: list[Group], scores: np.ndarray, skippable: list[bool], skip_score: float
) -> np.ndarray:
    alpha = np.full(pieces + 1, -np.inf)
    alpha[0] = 0.0
    ending: list[list[tuple[int, int]]] = [[] for _ in range(pieces + 1)]
    for g, (first, stop) in enumerate(groups):
        ending[stop].append((g, first))
    for position in range(1, pieces + 1):
        terms = [alpha[first] + scores[g] for g, first in ending[position]]
        if skippable[position - 1]:
            terms.append(alpha[position - 1] + skip_score)
        alpha[position] = np.logaddexp.reduce(terms) if terms else -np.inf
    return alpha


def _by_start(pieces: int, groups: list[Group]) -> list[list[tuple[int, int]]]:
    starting: list[list[tuple[int, int]]] = [[] for _ in range(pieces)]
    for g, (first, stop) in enumerate(groups):
        starting[first].append((g, stop))
    return starting

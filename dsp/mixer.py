"""Saturating N-way mixing: two-party bridges, conferences with "minus-one", supervisor modes.

Two forms, both one numpy expression per tick for all channels:

* ``mix(frames, matrix)``: ``out = matrix @ frames``.  Row ``m`` of the matrix says what
  listener ``m`` hears: the gain of every source.  Supervisor listen / whisper / barge and
  small conferences are such matrices (the Asterisk "bridge technology" idea, as data).
* ``mix_groups(frames, members, group_of, n_groups)``: many conferences at once by index
  arrays: per group, the sum of its members' frames (a sparse group-indicator matrix times
  the int32 frames), then
  each member gets the sum minus its own frame ("minus-one": nobody hears themselves, so
  there is no echo of one's own voice and no feedback loop).

Arithmetic is exact: int16 samples are summed in float32, which represents every integer
below 2**24 exactly, i.e. sums of up to 512 full-scale sources; then scaled, rounded and
clipped to the int16 range, so loud sums saturate and never wrap around.

Level rule for big conferences (``mix_groups``): with ``k`` active talkers in a group (frame
RMS above ``talker_threshold_dbov``), the mix is scaled by ``sqrt(3 / k)`` when ``k > 3``.
Uncorrelated voices add in power, so the mix of k talkers is about sqrt(k) times louder than
one; up to three talkers sound natural unscaled (and the common case, 2-3 parties, stays
bit-exact), beyond that the scaling keeps the mix near the level of three talkers instead
of driving it into the clipper.
"""

from __future__ import annotations

import logging

import numpy as np
from numpy.typing import NDArray
from scipy import sparse  # type: ignore[import-untyped]

logger = logging.getLogger(__name__)

__all__ = [
    "AGENT",
    "CALLER",
    "SUPERVISOR",
    "barge_matrix",
    "conference_matrix",
    "group_gains",
    "listen_matrix",
    "mix",
    "mix_groups",
    "whisper_matrix",
]

#: Party order of the supervisor matrices (rows = listeners, columns = sources).
CALLER, AGENT, SUPERVISOR = 0, 1, 2

_INT16_MIN, _INT16_MAX = -32768, 32767


def mix(frames: NDArray[np.int16], matrix: NDArray[np.float32]) -> NDArray[np.int16]:
    """Mix ``N`` sources into ``M`` outputs: ``out[m] = sum_n matrix[m, n] * frames[n]``.

    Args:
        frames: int16 ``(N, S)``.
        matrix: gains ``(M, N)`` (float32; 1.0 = unity).
    Returns:
        int16 ``(M, S)``, saturated to the int16 range.
    Raises:
        ValueError: shapes do not match.
    """
    x = np.asarray(frames)
    g = np.asarray(matrix, dtype=np.float32)
    if x.ndim != 2 or g.ndim != 2 or g.shape[1] != x.shape[0]:
        raise ValueError(f"cannot mix frames {x.shape} with matrix {g.shape}")
    y = g @ x.astype(np.float32)
    np.clip(y, _INT16_MIN, _INT16_MAX, out=y)
    return np.rint(y).astype(np.int16)


def conference_matrix(n: int) -> NDArray[np.float32]:
    """``(n, n)``: everyone hears everyone else, never themselves (minus-one)."""
    return (np.ones((n, n)) - np.eye(n)).astype(np.float32)


def listen_matrix() -> NDArray[np.float32]:
    """Silent monitoring: caller and agent hear each other; the supervisor hears both and
    is heard by nobody.  Parties are ordered [caller, agent, supervisor]."""
    return np.array([[0, 1, 0],
                     [1, 0, 0],
                     [1, 1, 0]], dtype=np.float32)


def whisper_matrix() -> NDArray[np.float32]:
    """Coaching: the agent hears caller and supervisor, the caller hears only the agent,
    the supervisor hears both.  Parties are ordered [caller, agent, supervisor]."""
    return np.array([[0, 1, 0],
                     [1, 0, 1],
                     [1, 1, 0]], dtype=np.float32)


def barge_matrix() -> NDArray[np.float32]:
    """Barge-in: a three-way conference of [caller, agent, supervisor]."""
    return conference_matrix(3)


def group_gains(frames: NDArray[np.int16], members: NDArray[np.intp],
                group_of: NDArray[np.intp], n_groups: int,
                talker_threshold_dbov: float = -50.0,
                max_unscaled_talkers: int = 3) -> NDArray[np.float32]:
    """Per-group gain of the level rule (module docstring): ``sqrt(3 / k)`` above 3 talkers.

    Returns:
        float32 ``(n_groups,)``.
    """
    own = np.asarray(frames)[np.asarray(members, dtype=np.intp)].astype(np.float32)
    return _talker_gains(own, np.asarray(group_of, dtype=np.intp), n_groups,
                         talker_threshold_dbov, max_unscaled_talkers)


def _talker_gains(own: NDArray[np.float32], grp: NDArray[np.intp], n_groups: int,
                  talker_threshold_dbov: float = -50.0,
                  max_unscaled_talkers: int = 3) -> NDArray[np.float32]:
    gains = np.ones(n_groups, dtype=np.float32)
    size = own.shape[1] if own.ndim == 2 else 0
    if size == 0 or own.shape[0] == 0:
        return gains
    mean_square = np.einsum("ij,ij->i", own, own) / size
    threshold = (32768.0 * 10.0 ** (talker_threshold_dbov / 20.0)) ** 2
    talkers = np.bincount(grp, weights=(mean_square > threshold), minlength=n_groups)
    loud = talkers > max_unscaled_talkers
    gains[loud] = np.sqrt(max_unscaled_talkers / talkers[loud])
    return gains


def mix_groups(frames: NDArray[np.int16], members: NDArray[np.intp],
               group_of: NDArray[np.intp], n_groups: int,
               normalize: bool = True) -> NDArray[np.int16]:
    """Minus-one outputs for many conferences at once.

    Args:
        frames: int16 ``(N, S)``, one row per channel of the engine.
        members: ``(K,)`` row of ``frames`` for each conference member.
        group_of: ``(K,)`` conference number (0 .. n_groups-1) of each member.
        n_groups: number of conferences.
        normalize: apply the level rule for groups with more than three talkers.
    Returns:
        int16 ``(K, S)``: member ``k`` hears the sum of its group minus itself, saturated.
    Raises:
        ValueError: members and group_of differ in length or a group is out of range.
    """
    x = np.asarray(frames)
    idx = np.asarray(members, dtype=np.intp)
    grp = np.asarray(group_of, dtype=np.intp)
    if idx.shape != grp.shape or idx.ndim != 1:
        raise ValueError(f"members {idx.shape} and group_of {grp.shape} must be equal 1-D")
    if grp.size and (grp.min() < 0 or grp.max() >= n_groups):
        raise ValueError("group_of out of range")
    if idx.size == 0:
        return np.zeros((0, x.shape[1]), dtype=np.int16)
    own = x[idx].astype(np.float32)  # (K, S); sums below are exact up to 512 members
    # Group sums as a sparse (groups x members) indicator times the members' frames: one
    # pass over the samples (np.add.at does the same ~20x slower).
    indicator = sparse.csr_matrix(
        (np.ones(idx.size, dtype=np.float32), (grp, np.arange(idx.size))),
        shape=(n_groups, idx.size))
    sums = np.asarray(indicator @ own, dtype=np.float32)
    heard = sums[grp]
    heard -= own
    if normalize:
        g = _talker_gains(own, grp, n_groups)[grp]
        if np.any(g != 1.0):
            heard *= g[:, None]
            np.rint(heard, out=heard)
    np.clip(heard, _INT16_MIN, _INT16_MAX, out=heard)
    return heard.astype(np.int16)

"""Saturating N-way mixing: two-party bridges, conferences with "minus-one", supervisor modes.

Two forms, both one numpy expression per tick for all channels:

* ``mix(frames, matrix)``: ``out = matrix @ frames``.  Row ``m`` of the matrix says what
  listener ``m`` hears: the gain of every source.  Supervisor listen / whisper / barge and
  small conferences are such matrices (the Asterisk "bridge technology" idea, as data).
* ``mix_groups(frames, members, group_of, n_groups)``: many conferences at once by index
  arrays: per group, the sum of its members' frames (``np.add.at`` on int32 rows), then
  each member gets the sum minus its own frame ("minus-one": nobody hears themselves, so
  there is no echo of one's own voice and no feedback loop).

Arithmetic is exact: int16 samples are summed in int32 (``mix_groups``) or float32
(``mix``; exact for integers below 2**24, i.e. up to 512 full-scale sources), scaled, and
then clipped to the int16 range, so loud sums saturate and never wrap around.

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
    x = np.asarray(frames)[np.asarray(members)].astype(np.float32)
    size = x.shape[1] if x.ndim == 2 else 0
    if size == 0:
        return np.ones(n_groups, dtype=np.float32)
    mean_square = np.einsum("ij,ij->i", x, x) / size
    threshold = (32768.0 * 10.0 ** (talker_threshold_dbov / 20.0)) ** 2
    talkers = np.bincount(np.asarray(group_of), weights=(mean_square > threshold),
                          minlength=n_groups)
    gains = np.ones(n_groups, dtype=np.float32)
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
    own = x[idx].astype(np.int32)  # (K, S)
    sums = np.zeros((n_groups, x.shape[1]), dtype=np.int32)
    np.add.at(sums, grp, own)
    heard = sums[grp] - own
    if normalize:
        gains = group_gains(x, idx, grp, n_groups)
        g = gains[grp]
        if np.any(g != 1.0):
            scaled = heard.astype(np.float32) * g[:, None]
            np.clip(scaled, _INT16_MIN, _INT16_MAX, out=scaled)
            result: NDArray[np.int16] = np.rint(scaled).astype(np.int16)
            return result
    np.clip(heard, _INT16_MIN, _INT16_MAX, out=heard)
    return heard.astype(np.int16)

"""Mixer properties (hypothesis.extra.numpy): saturation never wraps, member order does not
matter, minus-one, supervisor routing, and the level rule for big conferences."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from dsp.mixer import (
    AGENT,
    CALLER,
    SUPERVISOR,
    barge_matrix,
    conference_matrix,
    group_gains,
    listen_matrix,
    mix,
    mix_groups,
    whisper_matrix,
)

int16_frames = hnp.arrays(
    np.int16,
    st.tuples(st.integers(1, 6), st.integers(1, 40)),
    elements=st.integers(-32768, 32767),
)


@settings(max_examples=60, deadline=None)
@given(int16_frames, st.data())
def test_mix_saturates_and_never_wraps(frames: np.ndarray, data: st.DataObject) -> None:
    n = frames.shape[0]
    matrix = data.draw(hnp.arrays(np.float32, (data.draw(st.integers(1, 5)), n),
                                  elements=st.sampled_from([0.0, 0.5, 1.0, 2.0, -1.0])))
    out = mix(frames, matrix)
    exact = matrix.astype(np.float64) @ frames.astype(np.float64)
    assert out.dtype == np.int16 and out.shape == (matrix.shape[0], frames.shape[1])
    assert np.array_equal(out, np.clip(np.rint(exact), -32768, 32767).astype(np.int16))


@settings(max_examples=60, deadline=None)
@given(int16_frames)
def test_conference_matrix_is_minus_one(frames: np.ndarray) -> None:
    n = frames.shape[0]
    out = mix(frames, conference_matrix(n)).astype(np.int64)
    total = frames.astype(np.int64).sum(axis=0)
    expected = np.clip(total[None, :] - frames.astype(np.int64), -32768, 32767)
    assert np.array_equal(out, expected)


def _groups(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    n_channels = draw(st.integers(1, 12))
    size = draw(st.integers(1, 24))
    frames = draw(hnp.arrays(np.int16, (n_channels, size),
                             elements=st.integers(-32768, 32767)))
    k = draw(st.integers(1, n_channels))
    members = np.array(draw(st.permutations(range(n_channels)))[:k], dtype=np.intp)
    n_groups = draw(st.integers(1, 4))
    group_of = np.array(draw(st.lists(st.integers(0, n_groups - 1), min_size=k,
                                      max_size=k)), dtype=np.intp)
    return frames, members, group_of, n_groups


groups = st.composite(_groups)()


@settings(max_examples=80, deadline=None)
@given(groups)
def test_mix_groups_matches_a_direct_sum(case: tuple) -> None:
    frames, members, group_of, n_groups = case
    out = mix_groups(frames, members, group_of, n_groups, normalize=False)
    x = frames.astype(np.int64)
    for k, (m, g) in enumerate(zip(members, group_of, strict=True)):
        others = [members[j] for j in range(len(members)) if group_of[j] == g and j != k]
        expected = x[others].sum(axis=0) if others else np.zeros(x.shape[1], np.int64)
        assert np.array_equal(out[k], np.clip(expected, -32768, 32767)), (k, m)


@settings(max_examples=60, deadline=None)
@given(groups, st.randoms(use_true_random=False))
def test_mix_groups_does_not_depend_on_member_order(case: tuple, rnd: object) -> None:
    frames, members, group_of, n_groups = case
    order = list(range(len(members)))
    rnd.shuffle(order)  # type: ignore[attr-defined]
    perm = np.array(order, dtype=np.intp)
    out = mix_groups(frames, members, group_of, n_groups)
    out_perm = mix_groups(frames, members[perm], group_of[perm], n_groups)
    assert np.array_equal(out[perm], out_perm)


@settings(max_examples=60, deadline=None)
@given(groups, st.data())
def test_a_party_never_hears_itself(case: tuple, data: st.DataObject) -> None:
    frames, members, group_of, n_groups = case
    speaker = data.draw(st.integers(0, len(members) - 1))
    only = np.zeros_like(frames)
    only[members[speaker]] = frames[members[speaker]]
    out = mix_groups(only, members, group_of, n_groups)
    assert not out[speaker].any()
    same_group = group_of == group_of[speaker]
    for k in np.flatnonzero(same_group):
        if k != speaker:
            assert np.array_equal(out[k], frames[members[speaker]])
    assert not out[~same_group].any()


def _one_talker(party: int) -> np.ndarray:
    frames = np.zeros((3, 8), dtype=np.int16)
    frames[party] = 1000 + 100 * party
    return frames


def _who_hears(matrix: np.ndarray, party: int) -> set[int]:
    out = mix(_one_talker(party), matrix)
    return {listener for listener in range(3) if out[listener].any()}


def test_listen_routing() -> None:
    m = listen_matrix()
    assert _who_hears(m, CALLER) == {AGENT, SUPERVISOR}
    assert _who_hears(m, AGENT) == {CALLER, SUPERVISOR}
    assert _who_hears(m, SUPERVISOR) == set()


def test_whisper_routing() -> None:
    m = whisper_matrix()
    assert _who_hears(m, CALLER) == {AGENT, SUPERVISOR}
    assert _who_hears(m, AGENT) == {CALLER, SUPERVISOR}
    assert _who_hears(m, SUPERVISOR) == {AGENT}


def test_barge_routing() -> None:
    m = barge_matrix()
    for party in (CALLER, AGENT, SUPERVISOR):
        assert _who_hears(m, party) == {0, 1, 2} - {party}


def test_level_rule_for_large_conferences() -> None:
    rng = np.random.default_rng(8)
    talk = (rng.standard_normal((10, 160)) * 3000).astype(np.int16)
    quiet = np.zeros((10, 160), dtype=np.int16)
    frames = np.concatenate([talk, quiet])
    members = np.arange(20)
    group_of = np.array([0] * 3 + [1] * 7 + [2] * 10, dtype=np.intp)
    # group 0: 3 talkers -> unity; group 1: 7 talkers -> sqrt(3/7); group 2: silent
    gains = group_gains(frames, members, group_of, 3)
    assert gains.tolist() == pytest.approx([1.0, np.sqrt(3 / 7), 1.0])
    out = mix_groups(frames, members, group_of, 3)
    raw = mix_groups(frames, members, group_of, 3, normalize=False)
    assert np.array_equal(out[:3], raw[:3])
    scaled = np.rint(raw[3:10].astype(np.float32) * np.float32(np.sqrt(3 / 7)))
    assert np.max(np.abs(out[3:10] - scaled)) <= 1
    assert not out[10:].any()


def test_shape_errors() -> None:
    with pytest.raises(ValueError):
        mix(np.zeros((3, 4), np.int16), np.ones((2, 2), np.float32))
    with pytest.raises(ValueError):
        mix_groups(np.zeros((3, 4), np.int16), np.array([0, 1]), np.array([0]), 1)
    with pytest.raises(ValueError):
        mix_groups(np.zeros((3, 4), np.int16), np.array([0, 1]), np.array([0, 5]), 2)

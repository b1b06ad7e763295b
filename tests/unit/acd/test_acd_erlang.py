"""Erlang B/C formulas against the IVR_CTI_ACD.md §C.6 fixtures."""

from __future__ import annotations

import math

import pytest

from switch.acd.erlang import (
    agents_needed,
    asa_s,
    erlang_b,
    erlang_c,
    occupancy,
    offered_load,
    service_level,
)


@pytest.mark.parametrize(("a", "n", "aht", "t", "p_wait", "asa", "sl"), [
    (48, 55, 240, 15, 0.2387, 8.18, 0.8459),    # 360 calls / 30 min, AHT 240 s
    (10, 12, 180, 20, 0.4494, 40.4, 0.6402),    # 100 calls / 30 min, AHT 180 s
    (10, 13, 180, 20, 0.2853, 17.12, 0.7956),
    (10, 14, 180, 20, 0.1741, 7.8, 0.8884),
])
def test_fixtures(a: float, n: int, aht: float, t: float, p_wait: float, asa: float,
                  sl: float) -> None:
    assert erlang_c(a, n) == pytest.approx(p_wait, abs=5e-5)
    assert asa_s(a, n, aht) == pytest.approx(asa, abs=0.05)
    assert service_level(a, n, aht, t) == pytest.approx(sl, abs=5e-5)


def test_staffing_and_load() -> None:
    assert offered_load(100 / 1800, 180) == pytest.approx(10.0)
    assert agents_needed(10, 180, 20, 0.80) == 14       # 13 agents give 79.56 % < 80 %
    assert agents_needed(48, 240, 15, 0.80) == 55      # the classic tutorial answer
    assert occupancy(10, 13) == pytest.approx(10 / 13)
    with pytest.raises(ValueError):
        agents_needed(10, 180, 20, 1.0)


def test_erlang_b_and_edges() -> None:
    # Erlang B closed form for small n: B(a, 1) = a / (1 + a), B(a, 2) = a²/2 / (1 + a + a²/2)
    assert erlang_b(3.0, 1) == pytest.approx(3 / 4)
    assert erlang_b(3.0, 2) == pytest.approx(4.5 / 8.5)
    assert erlang_c(0.0, 3) == 0.0
    assert erlang_c(13, 13) == 1.0 and asa_s(13, 13, 180) == math.inf
    assert service_level(14, 13, 180, 20) == 0.0
    # C equals the textbook sum form
    a, n = 10.0, 13
    top = a ** n / math.factorial(n) * n / (n - a)
    assert erlang_c(a, n) == pytest.approx(top / (sum(a ** k / math.factorial(k)
                                                       for k in range(n)) + top))
    with pytest.raises(ValueError):
        erlang_b(-1.0, 2)

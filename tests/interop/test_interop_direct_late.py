"""Direct media and late offer with real SIPp peers through a running node.

* A ``media = "direct"`` route: the callee SIPp must see the caller SIPp's own RTP port in
  the INVITE's SDP (the switch passes the offer through), and the CDR is written.
* A late-offer caller (INVITE without SDP): the 200 carries the switch's offer and the ACK
  the caller's answer (``uac_late_offer.xml`` checks the offer), then BYE; CDR answered.
"""

from __future__ import annotations

import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import SIPP_DIR, Node, free_port, require, run_cli, start_node, stop_node

pytestmark = pytest.mark.interop

PASSWORD = "secret"
CONFIG = """
[calls]
no_answer_timeout_s = 10

[[dialplan.rules]]
name = "direct-1002"
match = "1002"
target = "extension"
media = "direct"

[[dialplan.rules]]
name = "extensions"
match = "_10XX"
target = "extension"
"""


@pytest.fixture
def dl_node(tmp_path: Path) -> Iterator[Node]:
    data = tmp_path / "data"
    data.mkdir()
    for user in ("1001", "1002", "1003"):
        res = run_cli(data, "user", "add", user, "--password", PASSWORD)
        assert res.returncode == 0, res.stderr
    cfg = tmp_path / "dl.toml"
    cfg.write_text(CONFIG)
    node = start_node(data, "--config", str(cfg))
    yield node
    stop_node(node)


def _register(tmp_path: Path, node: Node, user: str, port: int) -> None:
    csv = tmp_path / f"reg_{user}.csv"
    csv.write_text(f"SEQUENTIAL\n{user};[authentication username={user} "
                   f"password={PASSWORD}]\n")
    proc = subprocess.run(
        [require("sipp"), "-sf", str(SIPP_DIR / "register_auth.xml"),
         f"127.0.0.1:{node.sip_port}", "-i", "127.0.0.1", "-p", str(port), "-inf", str(csv),
         "-m", "1", "-nostdin", "-timeout", "10", "-timeout_error"],
        cwd=tmp_path, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _uas_expecting_port(tmp_path: Path, rtp_port: int) -> Path:
    """uas_bench.xml, but the INVITE must offer the caller's own RTP port."""
    text = (SIPP_DIR / "uas_bench.xml").read_text()
    text = text.replace(
        '<recv request="INVITE" crlf="true"></recv>',
        '<recv request="INVITE" crlf="true"><action><ereg regexp="m=audio '
        f'{rtp_port} RTP/AVP 8 0 101" search_in="body" check_it="true" assign_to="m"/>'
        '</action></recv>\n  <Reference variables="m"/>')
    path = tmp_path / "uas_direct.xml"
    path.write_text(text)
    return path


def _call(tmp_path: Path, node: Node, scenario: Path, uas_scenario: Path, dial: str,
          calls: int, uac_rtp_port: int) -> tuple[int, int, str]:
    sipp = require("sipp")
    uas_port = free_port()
    _register(tmp_path, node, dial, uas_port)
    (tmp_path / "uas").mkdir(exist_ok=True)
    (tmp_path / "uac").mkdir(exist_ok=True)
    uas = subprocess.Popen(
        [sipp, "-sf", str(uas_scenario), "-i", "127.0.0.1", "-p", str(uas_port),
         "-mp", str(free_port()), "-m", str(calls), "-nostdin", "-timeout", "30",
         "-timeout_error", "-trace_err"],
        cwd=tmp_path / "uas", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    csv = tmp_path / "uac.csv"
    csv.write_text(f"SEQUENTIAL\n1001;[authentication username=1001 password={PASSWORD}];"
                   f"{dial}\n")
    try:
        uac = subprocess.run(
            [sipp, "-sf", str(scenario), f"127.0.0.1:{node.sip_port}", "-i", "127.0.0.1",
             "-p", str(free_port()), "-mp", str(uac_rtp_port), "-inf", str(csv),
             "-auth_uri", f"{dial}@127.0.0.1:{node.sip_port}", "-m", str(calls), "-r", "5",
             "-d", "300", "-nostdin", "-timeout", "30", "-timeout_error",
             "-default_behaviors", "all,-abortunexp", "-trace_err"],
            cwd=tmp_path / "uac", capture_output=True, text=True, timeout=60)
    finally:
        try:
            uas_rc = uas.wait(20)
        except subprocess.TimeoutExpired:
            uas.kill()
            uas_rc = uas.wait(5)
    errors = "".join(p.read_text(errors="replace")[-2000:]
                     for p in tmp_path.glob("ua?/*_errors.log"))
    return uac.returncode, uas_rc, uac.stdout[-2000:] + errors


def _cdrs(node: Node) -> list[sqlite3.Row]:
    with sqlite3.connect(node.data_dir / "softswitch.db") as db:
        db.row_factory = sqlite3.Row
        return list(db.execute("SELECT * FROM cdrs ORDER BY id"))


def test_direct_media_route_passes_the_callers_sdp_to_the_callee(
        tmp_path: Path, dl_node: Node) -> None:
    rtp = free_port()
    rc, uas_rc, out = _call(tmp_path, dl_node, SIPP_DIR / "uac_b2bua.xml",
                            _uas_expecting_port(tmp_path, rtp), "1002", 3, rtp)
    assert rc == 0 and uas_rc == 0, out
    assert stop_node(dl_node) == 0
    cdrs = _cdrs(dl_node)
    assert [(c["disposition"], c["route"]) for c in cdrs] == [("answered", "direct-1002")] * 3
    with sqlite3.connect(dl_node.data_dir / "softswitch.db") as db:
        assert db.execute("SELECT count(*) FROM cdr_legs WHERE packets_received > 0"
                          ).fetchone()[0] == 0  # no media channel: no RTP statistics


def test_late_offer_caller_gets_the_offer_in_the_200_and_answers_in_the_ack(
        tmp_path: Path, dl_node: Node) -> None:
    rc, uas_rc, out = _call(tmp_path, dl_node, SIPP_DIR / "uac_late_offer.xml",
                            SIPP_DIR / "uas_bench.xml", "1003", 2, free_port())
    assert rc == 0 and uas_rc == 0, out
    assert "no-sdp-answer" not in dl_node.log()
    assert stop_node(dl_node) == 0
    cdrs = _cdrs(dl_node)
    assert [(c["disposition"], c["route"]) for c in cdrs] == [("answered", "extensions")] * 2

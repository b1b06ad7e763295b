"""LiveCall and IvrService against a fake media service (no sockets, no TTS).

The fake plays each prompt for a few milliseconds, and "presses" keys the way the media
engine reports them: onto the channel's digit queue, stopping a barge-in prompt with
BARGED_IN. Key presses are scripted per prompt (when a prompt containing a text starts).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import wave
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ivr_lang import live
from ivr_lang.datasources import DataSources
from ivr_lang.interpreter import CallerHungUp
from ivr_lang.live import LiveCall, is_silent_wav
from switch.cdr import Cdr, CdrCollector
from switch.events import CallAnswered, CallHungUp, CallOffered
from switch.ivr_service import IvrService
from switch.media.player import FinishReason
from switch.media.rfc4733 import DigitEvent
from switch.routing_config import default_routing

MONDAY_10 = dt.datetime(2026, 11, 30, 10, 0)


class FakeMedia:
    """The MediaService surface LiveCall uses."""

    def __init__(self, prompt_s: float = 0.02, keys: dict[str, str] | None = None,
                 voice_level: int = 0, record_keys: str = "") -> None:
        self.prompt_s = prompt_s
        self.record_keys = record_keys
        self.keys = dict(keys or {})
        self.voice_level = voice_level
        self.q: asyncio.Queue[DigitEvent] = asyncio.Queue()
        self.started: list[str] = []
        self.current: tuple[asyncio.Future[Any], bool] | None = None
        self.stops = 0
        self.tts = object()
        self.recording: str | None = None

    def digits(self, cid: int) -> asyncio.Queue[DigitEvent]:
        assert cid == 7
        return self.q

    def press(self, keys: str) -> None:
        for k in keys:
            self.q.put_nowait(DigitEvent(k, "rfc4733", None, 0.0))
        if self.current is not None:
            fut, barge = self.current
            if barge and not fut.done():
                fut.set_result(FinishReason.BARGED_IN)

    def _start(self, label: str, barge_in: bool, length: float | None = None) -> Any:
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self.current = (fut, barge_in)
        self.started.append(label)
        loop.call_later(self.prompt_s if length is None else length,
                        lambda: fut.done() or fut.set_result(FinishReason.COMPLETED))
        for text, keys in self.keys.items():
            if text in label:
                loop.call_later(self.prompt_s / 4, self.press, keys)
        return fut

    async def say(self, cid: int, text: str, *, voice: str, rate: int,
                  barge_in: bool = False) -> Any:
        return self._start(text, barge_in)

    async def play(self, cid: int, prompts: list[Any], *, barge_in: bool = False) -> Any:
        label = prompts[0] if isinstance(prompts[0], str) else "<pcm>"
        return self._start(label, barge_in)

    async def tone(self, cid: int, name: str, **kw: Any) -> Any:
        return self._start(f"tone:{name}", False, length=60.0)

    async def stop(self, cid: int) -> None:
        self.stops += 1
        if self.current is not None and not self.current[0].done():
            self.current[0].set_result(FinishReason.STOPPED)

    async def record_start(self, cid: int, path: Any, *, mode: str = "stereo") -> str:
        self.recording = str(path)
        if self.record_keys:
            asyncio.get_running_loop().call_later(0.02, self.press, self.record_keys)
        return self.recording

    async def record_stop(self, cid: int) -> str | None:
        path, self.recording = self.recording, None
        if path is not None:
            pcm = np.zeros((800, 2), dtype=np.int16)
            pcm[100:200, 0] = self.voice_level
            with wave.open(path, "wb") as w:
                w.setnchannels(2)
                w.setsampwidth(2)
                w.setframerate(8000)
                w.writeframes(pcm.tobytes())
        return path


class Control:
    def __init__(self, outcome: str = "busy") -> None:
        self.tags: dict[str, str] = {}
        self.hangups = 0
        self.transfers: list[str] = []
        self.outcome = outcome

    async def transfer(self, target: str, timeout_s: float) -> str:
        self.transfers.append(target)
        return self.outcome

    def tag(self, key: str, value: str) -> None:
        self.tags[key] = value

    def hangup(self) -> None:
        self.hangups += 1


def make_call(media: FakeMedia, tmp_path: Path, control: Control | None = None) -> LiveCall:
    return LiveCall(media, 7, control or Control(), caller="13800000000", called="12345",
                    call_id="c1", recordings_dir=tmp_path, clock=lambda: MONDAY_10)


# ---------------------------------------------------------------------------- collect

async def test_collect_first_digit_timeout_returns_empty(tmp_path: Path) -> None:
    call = make_call(FakeMedia(), tmp_path)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    assert await call.collect(max_digits=6, timeout_s=0.05, interdigit_s=1.0,
                              end_keys="#") == ""
    assert 0.04 <= loop.time() - t0 < 0.5


async def test_collect_stops_at_end_key_and_drops_it(tmp_path: Path) -> None:
    media = FakeMedia()
    call = make_call(media, tmp_path)
    media.press("1234#9")
    assert await call.collect(max_digits=6, timeout_s=1, interdigit_s=1,
                              end_keys="#") == "1234"
    assert media.q.get_nowait().digit == "9"  # what follows the end key stays queued


async def test_collect_max_digits_and_first_keys(tmp_path: Path) -> None:
    media = FakeMedia()
    call = make_call(media, tmp_path)
    media.press("3456")
    assert await call.collect(max_digits=3, timeout_s=1, interdigit_s=1, end_keys="",
                              first="12") == "123"
    assert await call.collect(max_digits=6, timeout_s=1, interdigit_s=1, end_keys="#",
                              first="9#") == "9"


async def test_collect_full_entry_consumes_late_end_key(tmp_path: Path) -> None:
    media = FakeMedia()
    call = make_call(media, tmp_path)
    loop = asyncio.get_running_loop()
    loop.call_later(0.05, media.press, "#")  # "six digits, then #": the # comes late
    assert await call.collect(max_digits=6, timeout_s=1, interdigit_s=1, end_keys="#",
                              first="100001") == "100001"
    assert media.q.empty() and not call._waiting()  # the # cannot barge the next prompt
    loop.call_later(0.05, media.press, "5")  # not an end key: kept for what comes next
    assert await call.collect(max_digits=2, timeout_s=1, interdigit_s=1, end_keys="#",
                              first="12") == "12"
    assert await call.say("next", bargein=True) == "5"
    assert await call.collect(max_digits=2, timeout_s=1, interdigit_s=1, end_keys="#",
                              first="34#78") == "34"
    assert await call.collect(max_digits=1, timeout_s=1, interdigit_s=1, end_keys="",
                              first="") == "7"


async def test_collect_interdigit_timeout(tmp_path: Path) -> None:
    media = FakeMedia()
    call = make_call(media, tmp_path)
    asyncio.get_running_loop().call_later(0.02, media.press, "12")
    asyncio.get_running_loop().call_later(0.5, media.press, "3")  # after the gap
    got = await call.collect(max_digits=6, timeout_s=1, interdigit_s=0.1, end_keys="#")
    assert got == "12"


# ---------------------------------------------------------------------------- prompts

async def test_say_barge_in_returns_keys_and_type_ahead_skips_prompt(tmp_path: Path) -> None:
    media = FakeMedia(prompt_s=1.0, keys={"menu": "5"})
    call = make_call(media, tmp_path)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    assert await call.say("menu prompt", bargein=True) == "5"
    assert loop.time() - t0 < 0.6  # stopped by the key, not played to the end
    media.press("12")
    assert await call.say("next prompt", bargein=True) == "12"
    assert media.started == ["menu prompt"]  # type-ahead: the second prompt was skipped
    assert call.prompts == ["menu prompt"]


async def test_say_without_barge_in_discards_keys(tmp_path: Path) -> None:
    media = FakeMedia(prompt_s=0.05, keys={"notice": "7"})
    call = make_call(media, tmp_path)
    assert await call.say("a notice", bargein=False) == ""
    assert media.q.empty()


async def test_hangup_mid_prompt_cancels_and_stops_prompt(tmp_path: Path) -> None:
    media = FakeMedia(prompt_s=30.0)
    call = make_call(media, tmp_path)
    task = asyncio.create_task(call.say("a long prompt", bargein=True))
    await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert media.stops == 1
    call.gone()
    with pytest.raises(CallerHungUp):
        await call.say("again", bargein=False)
    await call.hangup()  # a gone caller is not hung up twice


async def test_media_error_becomes_runtime_error(tmp_path: Path) -> None:
    from ivr_lang.expr import IvrRuntimeError

    class Broken(FakeMedia):
        async def play(self, cid: int, prompts: list[Any], *, barge_in: bool = False) -> Any:
            raise OSError("no such prompt")

    call = make_call(Broken(), tmp_path)
    with pytest.raises(IvrRuntimeError, match="no such prompt"):
        await call.play("missing.wav", bargein=True)


# ---------------------------------------------------------------------------- record, queue

async def test_record_voice_and_silence(tmp_path: Path) -> None:
    media = FakeMedia(voice_level=5000, record_keys="#")
    call = make_call(media, tmp_path)
    rec = await call.record(maxlen_s=2, beep=True, end_keys="#", mailbox="box")
    assert rec is not None and Path(rec).parent == tmp_path / "box"
    assert not is_silent_wav(rec)
    media.voice_level = 0
    media.record_keys = ""
    assert await call.record(maxlen_s=0.05, beep=False, end_keys="#", mailbox=None) is None
    assert list((tmp_path / "record").glob("*.wav")) == []  # empty recordings are removed


async def test_enqueue_without_acd_is_closed_after_hold(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    monkeypatch.setattr(live, "HOLD_S", 0.05)
    media = FakeMedia()
    call = make_call(media, tmp_path)
    out = await call.enqueue("客服组", skill=None, priority=0, maxwait_s=300, tags={})
    assert out == "closed"
    assert media.started == ["tone:ringback"] and media.stops == 1


# ---------------------------------------------------------------------------- the demo

def demo_sources(fail_bills: bool = False) -> DataSources:
    async def sql(query: str, params: Any) -> list[dict[str, Any]]:
        if "FROM residents" in query:
            return []
        if "FROM bills" in query:
            if fail_bills:
                raise RuntimeError("database down")
            if params["account"] == "100001":
                return [{"owed": Decimal("350.5"), "due": "2026-12-31"}]
        return []

    return DataSources(sql=sql)


def make_service(tmp_path: Path, media: FakeMedia, collector: CdrCollector,
                 fail_bills: bool = False) -> IvrService:
    svc = IvrService(media, demo_sources(fail_bills), site_dir=tmp_path / "ivr",
                     recordings_dir=tmp_path / "rec", tagger=collector.tag,
                     reload_interval_s=0, clock=lambda: MONDAY_10)
    svc.start_programs(default_routing())
    return svc


def open_cdr(collector: CdrCollector) -> None:
    collector.handle(CallOffered(at=1.0, call_id="c1", channel="a", caller="13800000000",
                                 callee="12345"))
    collector.handle(CallAnswered(at=1.1, call_id="c1", channel="a", codec="PCMA"))


async def test_demo_walk_to_bill_readout_tags_reach_cdr(tmp_path: Path) -> None:
    cdrs: list[Cdr] = []
    collector = CdrCollector(cdrs.append)
    open_cdr(collector)
    media = FakeMedia(keys={"查询物业费请按1": "1", "请输入六位缴费账号": "100001#",
                            "返回主菜单请按1": "2"})
    svc = make_service(tmp_path, media, collector)
    control = Control()
    result = await svc.run("hotline", 7, control, caller="13800000000", called="12345",
                           call_id="c1")
    assert result.reason == "hangup" and control.hangups == 1
    assert any("欠费金额三百五十元五角" in p for p in media.started)
    assert media.started[-1] == "感谢您的来电，再见。"
    assert control.tags == {"自助": "查询物业费"}
    collector.handle(CallHungUp(at=40.0, call_id="c1", channel="a", cause="normal_clearing",
                                side="system"))
    assert cdrs[0].tags == {"自助": "查询物业费"}
    assert svc.stats["running"] == 0 and svc.stats["statements"] > 10


async def test_demo_lookup_error_goes_to_operator_then_voicemail(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(live, "HOLD_S", 0.02)
    collector = CdrCollector(lambda cdr: None)
    media = FakeMedia(keys={"查询物业费请按1": "1", "请输入六位缴费账号": "100001#"},
                      record_keys="#")
    svc = make_service(tmp_path, media, collector, fail_bills=True)
    control = Control()
    result = await svc.run("hotline", 7, control, caller="13800000000", called="12345",
                           call_id="c1")
    assert "系统繁忙，为您转接人工服务。" in media.started
    assert "tone:ringback" in media.started  # the operator queue's (brief) hold
    assert "没有录到您的留言。" in media.started  # closed -> voicemail -> nothing said
    assert result.reason == "hangup" and control.hangups == 1


async def test_hangup_mid_call_cancels_cleanly(tmp_path: Path) -> None:
    media = FakeMedia(prompt_s=30.0)
    svc = make_service(tmp_path, media, CdrCollector(lambda cdr: None))
    task = asyncio.create_task(svc.run("hotline", 7, Control(), caller="1", called="12345",
                                       call_id="c1"))
    await asyncio.sleep(0.05)
    assert svc.stats["running"] == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert svc.stats["running"] == 0 and media.stops == 1


async def test_reload_needs_clean_check_and_calls_keep_version(tmp_path: Path) -> None:
    media = FakeMedia(prompt_s=0.01)
    site = tmp_path / "ivr"
    site.mkdir()
    good = ('flow t:\n  language en-US\n  on error -> bye\n\nstep hello:\n'
            '  say "version {v}"\n  -> bye\n\nstep bye:\n  hangup\n')
    path = site / "t.ivr"
    path.write_text(good.replace("{v}", "one"), encoding="utf-8")
    svc = IvrService(media, DataSources(), site_dir=site, recordings_dir=tmp_path / "rec",
                     reload_interval_s=0)
    svc.load("t")
    assert svc.version("t") == 1
    path.write_text("flow t:\n  step broken\n", encoding="utf-8")
    assert svc.reload_changed() == [] and svc.version("t") == 1
    assert svc.stats["rejected_reloads"] == 1
    media.prompt_s = 0.3
    call = asyncio.create_task(svc.run("t", 7, Control(), caller="1", called="2",
                                       call_id="c9"))
    await asyncio.sleep(0.05)
    path.write_text(good.replace("{v}", "two"), encoding="utf-8")
    import os

    os.utime(path, ns=(1, 1))  # a distinct mtime even on coarse clocks
    assert svc.reload_changed() == ["t"] and svc.version("t") == 2
    await call
    assert media.started == ["version one"]  # the call kept the version it started on
    media.prompt_s = 0.01
    await svc.run("t", 7, Control(), caller="1", called="2", call_id="c10")
    assert media.started[-1] == "version two"


def test_missing_program_is_a_config_error(tmp_path: Path) -> None:
    from switch.config import ConfigError
    from switch.routing_config import RoutingConfig, RuleConfig

    routing = default_routing()
    rules = (RuleConfig(match="777", target="ivr", program="nosuch"),)
    bad = RoutingConfig(dialplan=type(routing.dialplan)(rules=rules))
    svc = IvrService(FakeMedia(), DataSources(), site_dir=tmp_path, recordings_dir=tmp_path,
                     demo_dir=tmp_path)
    with pytest.raises(ConfigError, match="nosuch") as info:
        svc.start_programs(bad)
    assert info.value.key == "dialplan.rules[0].program"


# ---------------------------------------------------------------------------- call manager

class ScriptedIvr:
    """An IVR runner for the call manager: runs ``body(control)`` as the program."""

    def __init__(self, body: Any) -> None:
        self.body = body
        self.cancelled = 0
        self.results: list[Any] = []

    def has(self, name: str) -> bool:
        return name == "hotline"

    async def run(self, name: str, cid: int, control: Any, *, caller: str, called: str,
                  call_id: str) -> Any:
        try:
            result = await self.body(control)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        self.results.append(result)
        return result


@pytest.fixture
async def sw(tmp_path: Path) -> Any:
    from _b2bua_harness import Net, Switch

    switch = Switch(Net(), tmp_path, no_answer_timeout_s=5)
    await switch.start()
    yield switch
    await switch.stop()


async def test_ivr_target_answers_and_caller_bye_cancels_the_program(sw: Any) -> None:
    from _b2bua_harness import Phone

    async def forever(control: Any) -> str:
        await asyncio.sleep(60)
        return "never"

    sw.calls.ivr = ivr = ScriptedIvr(forever)
    alice = Phone(sw.net, "1001", 5081)
    txn = alice.call("12345")
    await sw.settle(lambda: 200 in alice.responses(txn))
    alice.send_in_dialog("BYE")
    await sw.settle(lambda: bool(sw.cdrs))
    assert ivr.cancelled == 1
    cdr = sw.cdrs[0]
    assert (cdr.callee, cdr.disposition.value, cdr.hangup_side) == ("12345", "answered",
                                                                    "caller")
    assert cdr.target == "ivr:hotline" and cdr.sip_status == 200
    assert sw.calls.calls == {}


async def test_ivr_end_hangs_up_and_transfer_outcomes(sw: Any) -> None:
    from _b2bua_harness import Phone

    outcomes: list[str] = []

    async def program(control: Any) -> str:
        outcomes.append(await control.transfer("1002", 2.0))  # busy
        outcomes.append(await control.transfer("1009", 2.0))  # not registered
        return "done"

    sw.calls.ivr = ScriptedIvr(program)
    alice = Phone(sw.net, "1001", 5082)
    bob = Phone(sw.net, "1002", 5083, on_invite="busy")
    sw.register(bob)
    txn = alice.call("12345")
    await sw.settle(lambda: 200 in alice.responses(txn))
    await sw.settle(lambda: bool(alice.requests("BYE")), timeout=5)  # the IVR ended
    assert outcomes == ["busy", "fail"]
    await sw.settle(lambda: bool(sw.cdrs))
    assert sw.cdrs[0].hangup_side == "system"


async def test_ivr_transfer_connects_and_the_call_goes_on(sw: Any) -> None:
    from _b2bua_harness import Phone

    async def program(control: Any) -> str:
        return await control.transfer("1002", 3.0)

    sw.calls.ivr = ivr = ScriptedIvr(program)
    alice = Phone(sw.net, "1001", 5084)
    bob = Phone(sw.net, "1002", 5085)
    sw.register(bob)
    txn = alice.call("12345")
    await sw.settle(lambda: 200 in alice.responses(txn))
    await sw.settle(lambda: ivr.results == ["connected"], timeout=5)
    await asyncio.sleep(0.1)
    assert not alice.requests("BYE")  # transferred: the bridged call goes on
    bob.send_in_dialog("BYE")
    await sw.settle(lambda: bool(alice.requests("BYE")) and bool(sw.cdrs))
    assert sw.cdrs[0].hangup_side == "callee"

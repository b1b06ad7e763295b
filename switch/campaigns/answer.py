"""What happens once a campaign call is answered: the message and its key, or an IVR program.

Split from :mod:`switch.campaigns.dialer` (its Rule 4), whose calls these are:

* Rule 1 -- the message (rendered to speech while the phone rang) is played with barge-in;
  the first key decides (:func:`~switch.campaigns.messages.interpret_key`); a key that
  means nothing, or silence for ``key_wait_s`` after the message, repeats it, at most
  ``MAX_REPEATS`` times; a hang-up without a key is ANSWERED. A decisive key gets a short
  goodbye (bounded to 4 s) before the dialer hangs up.
* Rule 2 -- an IVR program runs on the answered leg through the node's ``IvrService``,
  loaded once from the campaign's path (checked like every program), with the contact's
  fields and the campaign's params preset as the program's flow ``input`` variables
  (``input work_order`` reads the work order's number, ``input name`` the resident's
  name; a declared input the contact lacks is null); it reports through
  its tags: ``campaign_outcome`` (acknowledged, opted_out, answered) and
  ``campaign_rating`` (1-5, which makes the call acknowledged). A transfer is refused
  (there is no caller leg to transfer); the callee's hang-up ends the program.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Any

from switch.campaigns.messages import MAX_REPEATS, PlayMessage, RunIvr, interpret_key
from switch.campaigns.model import CampaignKind, Outcome
from switch.media.errors import MediaError
from switch.originate import OriginatedCall, Originator

logger = logging.getLogger(__name__)

__all__ = ["CALLEE_HUNG_UP", "GOODBYE", "AnswerResult", "play_message", "retrieve_result",
           "run_program"]

GOODBYE = "谢谢，再见。"
CALLEE_HUNG_UP = "hung up without a key"
_HUNG_UP = object()
GOODBYE_MAX_S = 4.0

AnswerResult = tuple[Outcome, int | None, str]
"""(outcome, survey rating, detail for the attempt row)."""


async def play_message(media: Any, call: OriginatedCall, action: PlayMessage,
                       kind: CampaignKind, speech: asyncio.Task[Any] | None, *,
                       key_wait_s: float, voice: str, rate: int) -> AnswerResult:
    """Rule 1 on the answered leg of ``call``; ``speech`` is the pre-rendered message."""
    cid = call.media_id
    if cid is None:
        return Outcome.FAILED, None, "answered without media"
    digits = media.digits(cid)
    for _round in range(1 + MAX_REPEATS):
        if speech is not None:
            done = await media.play(cid, [await speech], barge_in=True)
        else:
            done = await media.say(cid, action.text, voice=voice, rate=rate, barge_in=True)
        key = await _next_key(digits, done, call.ended, key_wait_s)
        if key is _HUNG_UP:
            return Outcome.ANSWERED, None, CALLEE_HUNG_UP
        result = interpret_key(kind, key) if isinstance(key, str) else None
        if result is not None:
            await _goodbye(media, cid, call, voice, rate)
            return result.outcome, result.rating, f"key {key}"
    return Outcome.ANSWERED, None, "no key"


async def _next_key(digits: asyncio.Queue[Any], playing: asyncio.Future[Any],
                    ended: asyncio.Event, wait_s: float) -> str | object | None:
    """The first key during the message or ``wait_s`` after it; None: silence;
    ``_HUNG_UP``: the callee hung up."""
    get = asyncio.ensure_future(digits.get())
    end = asyncio.ensure_future(ended.wait())
    try:
        done, _ = await asyncio.wait({get, end, playing}, return_when=asyncio.FIRST_COMPLETED)
        if get not in done and end not in done:
            done, _ = await asyncio.wait({get, end}, timeout=wait_s,
                                         return_when=asyncio.FIRST_COMPLETED)
        if get in done:
            return str(get.result().digit)
        return _HUNG_UP if end in done else None
    finally:
        get.cancel()
        end.cancel()


async def _goodbye(media: Any, cid: int, call: OriginatedCall, voice: str, rate: int) -> None:
    if call.ended.is_set():
        return
    with contextlib.suppress(MediaError, OSError, TimeoutError):
        done = await media.say(cid, GOODBYE, voice=voice, rate=rate)
        end = asyncio.ensure_future(call.ended.wait())
        try:
            await asyncio.wait({done, end}, timeout=GOODBYE_MAX_S,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            end.cancel()


async def run_program(ivr: Any, originator: Originator, call: OriginatedCall,
                      action: RunIvr, *, caller: str, called: str,
                      call_id: str) -> AnswerResult:
    """Rule 2: run ``action.path`` on the answered leg; the outcome from its tags."""
    if call.media_id is None:
        return Outcome.FAILED, None, "answered without media"
    name = f"campaign-{Path(action.path).stem}"
    if not ivr.has(name):
        text = Path(action.path).read_text(encoding="utf-8")
        ivr.store.load(name, text, action.path)
        if not ivr.has(name):
            return Outcome.FAILED, None, f"IVR program {action.path} does not check"
    control = CampaignControl(originator, call)
    program = asyncio.ensure_future(ivr.run(name, call.media_id, control, caller=caller,
                                            called=called, call_id=call_id,
                                            variables=dict(action.variables)))
    end = asyncio.ensure_future(call.ended.wait())
    try:
        await asyncio.wait({program, end}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        end.cancel()
        if not program.done():
            program.cancel()
            await asyncio.gather(program, return_exceptions=True)
    return control.outcome()


def retrieve_result(task: asyncio.Task[Any]) -> None:
    """Collect a background task's failure (a pre-rendered message is awaited where it is
    used; a warm-up render nowhere): no "exception never retrieved" noise."""
    if not task.cancelled():
        task.exception()


class CampaignControl:
    """The call control of an IVR program run on a campaign call (``LiveCall``'s)."""

    def __init__(self, originator: Originator, call: OriginatedCall) -> None:
        self.originator = originator
        self.call = call
        self.tags: dict[str, str] = {}

    async def transfer(self, target: str, timeout_s: float) -> str:
        return "fail"  # a campaign call has no caller leg to transfer

    def tag(self, key: str, value: str) -> None:
        self.tags[key] = str(value)

    def hangup(self) -> None:
        self.originator.hangup(self.call)

    def outcome(self) -> AnswerResult:
        """Rule 2: the program's tags -> outcome and rating."""
        rating_text = self.tags.get("campaign_rating", "")
        rating = int(rating_text) if rating_text.isdigit() and 1 <= int(
            rating_text) <= 5 else None
        try:
            outcome = Outcome(self.tags.get("campaign_outcome", "answered"))
        except ValueError:
            outcome = Outcome.ANSWERED
        if rating is not None and outcome is Outcome.ANSWERED:
            outcome = Outcome.ACKNOWLEDGED
        if outcome not in (Outcome.ANSWERED, Outcome.ACKNOWLEDGED, Outcome.OPTED_OUT):
            outcome = Outcome.ANSWERED
        return outcome, rating, "ivr"

"""The dialog layer of the UA core: which dialog a message belongs to, and what it does to
it (RFC 3261 §12, §13.2.2.4, §13.3.1.4, §14; RFC 6026).

It sits between the transaction layer and :class:`~signaling.core.SipCore` (aioquic's
layering: each layer is a sans-IO object fed by the one below). The core hands it every
response a client transaction passes up, every response the application sends on a server
transaction, and every ACK no transaction matched; the layer creates early and confirmed
dialogs, ACKs 2xx responses (re-sending the same ACK for retransmissions), re-sends our own
2xx until its ACK arrives, ends dialogs on BYE, 481 and 408, and reports
:class:`AckReceived`, :class:`AckTimedOut` and :class:`DialogTerminated` into the core's
event queue.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable

from .dialog import Dialog, DialogId, DialogState, Uas2xxRetransmitter, next_hop_uri
from .errors import LocalSipError
from .events import AckReceived, AckTimedOut, Address, DialogTerminated, Event
from .ids import IdGenerator
from .message import Request, Response
from .transaction import Effect, Transaction
from .transaction_layer import TransactionLayer
from .transport import uri_address
from .uas_checks import Rejection

__all__ = ["DialogLayer"]

logger = logging.getLogger(__name__)


class DialogLayer:
    """The table of dialogs and the per-transaction dialog bookkeeping.

    Args:
        layer: the transaction layer (its outbox and timer heap are shared).
        events: the core's event queue.
        ids: random source (Retry-After values).
        via: builds a Via value with a fresh branch (for ACKs).
        contact: our Contact value (for dialogs whose response carried none).
        transport: default transport for next hops without a ``transport`` parameter.
        auto_ack: ACK each 2xx at once (§13.2.2.4).
    """

    def __init__(self, layer: TransactionLayer, events: deque[Event], ids: IdGenerator, *,
                 via: Callable[[], str], contact: Callable[[], str], transport: str,
                 auto_ack: bool) -> None:
        self.dialogs: dict[DialogId, Dialog] = {}
        self._layer = layer
        self._events = events
        self._ids = ids
        self._via = via
        self._contact = contact
        self._transport = transport
        self._auto_ack = auto_ack
        self._early_client: dict[str, list[DialogId]] = {}
        self._early_server: dict[str, list[DialogId]] = {}
        self._invite_tag: dict[str, str] = {}

    # -- lookups ----------------------------------------------------------------------
    def get(self, dialog_id: DialogId) -> Dialog:
        dialog = self.dialogs.get(dialog_id)
        if dialog is None:
            raise LocalSipError(f"no dialog {dialog_id}")
        return dialog

    def invite_tag(self, txn_id: str) -> str | None:
        """The To tag we answered a server INVITE transaction with (for CANCEL, §9.2)."""
        return self._invite_tag.get(txn_id)

    def next_hop(self, request: Request) -> Address:
        return uri_address(next_hop_uri(request), self._transport)

    # -- UAS: requests inside a dialog (§12.2.2) ---------------------------------------
    def check_in_dialog(self, request: Request, txn: Transaction, to_tag: str
                        ) -> Rejection | None:
        """481 for an unknown dialog, else the dialog's own checks (500, 491). On success
        the server transaction remembers its dialog in ``txn.tu``."""
        if request.method == "CANCEL":
            return None  # matched by transaction, not by dialog (§9.2)
        did = DialogId(request.call_id, to_tag, request.from_tag or "")
        dialog = self.dialogs.get(did)
        if dialog is None:
            return 481, "Call/Transaction Does Not Exist", []
        bad = dialog.check_request(request)
        if bad is not None:
            extra = []
            if bad[0] == 500 and request.method == "INVITE":
                # §14.2: Retry-After between 0 and 10 s after a 500 for overlapping INVITEs.
                extra.append(("Retry-After", str(self._ids.randint(0, 10))))
            return bad[0], bad[1], extra
        txn.tu = did
        return None

    def recv_ack(self, request: Request, source: Address) -> bool:
        """An ACK no transaction matched: the ACK for a 2xx (§13.3.1.4). The first one
        stops the 2xx retransmissions and is reported. False when no dialog matches."""
        to_tag = request.to_tag
        dialog = None
        if to_tag:
            dialog = self.dialogs.get(DialogId(request.call_id, to_tag, request.from_tag or ""))
        if dialog is None:
            return False
        seq = request.cseq.seq
        retx = dialog.uas_2xx
        if isinstance(retx, Uas2xxRetransmitter) and retx.active and retx.seq == seq:
            retx.stop()
            dialog.uas_2xx = None
        elif dialog.ack_in_cseq == seq:
            return True  # an ACK retransmission
        dialog.ack_in_cseq = seq
        self._events.append(AckReceived(request, dialog.id, source))
        return True

    # -- UAS: responses the application sends -------------------------------------------
    def uas_response(self, txn: Transaction, request: Request, response: Response,
                     now: float) -> None:
        """Dialog work after a response was sent on a server transaction."""
        if txn.method == "INVITE":
            self._uas_invite_response(txn, request, response, now)
            return
        if response.status < 200 or not isinstance(txn.tu, DialogId):
            return
        dialog = self.dialogs.get(txn.tu)
        if dialog is None:
            return
        if txn.method == "BYE":
            self.end(dialog, "bye")
        elif txn.method == "UPDATE" and response.status < 300:
            dialog.refresh_target_from_request(request)

    def _uas_invite_response(self, txn: Transaction, request: Request, response: Response,
                             now: float) -> None:
        status = response.status
        if isinstance(txn.tu, DialogId):  # re-INVITE
            dialog = self.dialogs.get(txn.tu)
            if dialog is None or status < 200:
                return
            dialog.incoming_invite_finished(request.cseq.seq)
            if status < 300:
                dialog.refresh_target_from_request(request)
                self._start_2xx_retransmit(dialog, txn, request, now)
            return
        to_tag = response.to_tag
        if to_tag:
            self._invite_tag.setdefault(txn.id, to_tag)
        if status >= 300:
            self.end_early(self._early_server.get(txn.id), "rejected")
            return
        if not to_tag or status == 100:
            return
        did = DialogId(request.call_id, to_tag, request.from_tag or "")
        dialog = self.dialogs.get(did)
        if dialog is None:
            dialog = self._add(Dialog.from_uas(request, response))
            self._early_server.setdefault(txn.id, []).append(did)
        else:
            dialog.confirm_uas(response)
        if status >= 200:
            self._start_2xx_retransmit(dialog, txn, request, now)

    def _start_2xx_retransmit(self, dialog: Dialog, txn: Transaction, request: Request,
                              now: float) -> None:
        old = dialog.uas_2xx
        if isinstance(old, Uas2xxRetransmitter):
            old.stop()
        dialog.uas_2xx = Uas2xxRetransmitter(
            self, dialog, request.cseq.seq, txn._wire, txn.dest, self._layer.config, now)

    def server_terminated(self, txn: Transaction) -> None:
        if txn.method == "INVITE":
            self._invite_tag.pop(txn.id, None)
            self._early_server.pop(txn.id, None)

    # -- RetransmitOwner (the 2xx retransmitter's seam) ---------------------------------
    def send_datagram(self, data: bytes, dest: Address) -> None:
        self._layer.outbox.append((data, dest))

    def schedule(self, obj: Uas2xxRetransmitter) -> None:
        self._layer.schedule(obj)

    def ack_timed_out(self, dialog: Dialog) -> None:
        dialog.uas_2xx = None
        self._events.append(AckTimedOut(dialog.id))

    # -- UAC: responses to our requests --------------------------------------------------
    def uac_invite_response(self, txn: Transaction, request: Request, response: Response
                            ) -> tuple[bool, DialogId | None]:
        """Dialog work for a response to our INVITE: (absorbed, dialog id)."""
        status = response.status
        in_dialog = request.to_tag is not None
        to_tag = request.to_tag if in_dialog else response.to_tag
        did = DialogId(request.call_id, request.from_tag or "", to_tag) if to_tag else None
        dialog = self.dialogs.get(did) if did else None
        if status < 200:
            if dialog is None and did is not None and not in_dialog and status > 100:
                dialog = self._add(Dialog.from_uac(request, response))
                self._early_client.setdefault(txn.id, []).append(dialog.id)
            elif dialog is not None and not in_dialog:
                dialog.update_from_response(request, response)
            return False, did
        if status >= 300:
            if in_dialog and dialog is not None:
                dialog.request_finished("INVITE", request.cseq.seq)
                if status in (408, 481):
                    self.end(dialog, f"{status}")
            else:
                self.end_early(self._early_client.get(txn.id), "rejected")
            return False, did
        # Per transaction, the ACK sent for each 2xx (one per fork's To tag): a 2xx
        # retransmission in the Accepted state (RFC 6026) gets that ACK again and is not
        # reported, even when the dialog has ended since (a BYE raced the ACK).
        acked: dict[str, tuple[bytes, Address]] = txn.tu if isinstance(txn.tu, dict) else {}
        txn.tu = acked
        again = acked.get(to_tag or "")
        if again is not None:
            self._layer.outbox.append(again)
            return True, did
        if dialog is not None and dialog.ack_cseq == response.cseq.seq:
            self.resend_ack(dialog)  # manual ACK mode: re-send it once the TU sent it
            return True, did
        if dialog is None and did is not None and not in_dialog:
            dialog = self._add(Dialog.from_uac(request, response))
        elif dialog is not None:
            dialog.update_from_response(request, response)
            dialog.request_finished("INVITE", request.cseq.seq)
        if dialog is not None:
            dialog.ack_cseq = response.cseq.seq
            if self._auto_ack:
                self.send_ack(dialog, response.cseq.seq)
                assert dialog.ack_dest is not None
                acked[dialog.id.remote_tag] = (dialog.ack_wire, dialog.ack_dest)
            elif dialog.ack_wire:
                dialog.ack_wire = b""  # a new 2xx: send_ack must build a new ACK
        return False, did

    def uac_non_invite_response(self, request: Request, response: Response
                                ) -> DialogId | None:
        """BYE ends the dialog, 481/408 too (§12.2.1.2); UPDATE 2xx refreshes the target."""
        to_tag = request.to_tag
        if to_tag is None:
            return None
        did = DialogId(request.call_id, request.from_tag or "", to_tag)
        dialog = self.dialogs.get(did)
        if dialog is None or response.status < 200:
            return did
        if request.method == "UPDATE":
            dialog.request_finished("UPDATE", request.cseq.seq)
            dialog.update_from_response(request, response)
        if request.method == "BYE" or response.status in (408, 481):
            self.end(dialog, "bye" if request.method == "BYE" else str(response.status))
        return did

    def uac_failure(self, txn: Transaction, request: Request, effect: Effect) -> None:
        """§12.2.1.2: a timeout inside a dialog counts as 408 and ends it; a failed
        initial INVITE ends its early dialogs."""
        if request.to_tag is not None:
            dialog = self.dialogs.get(
                DialogId(request.call_id, request.from_tag or "", request.to_tag))
            if dialog is not None and (txn.method in ("BYE", "INVITE")
                                       or effect is Effect.TIMEOUT):
                self.end(dialog, "timeout")
        elif txn.method == "INVITE":
            self.end_early(self._early_client.get(txn.id), "timeout")

    def client_terminated(self, txn: Transaction) -> None:
        if txn.method == "INVITE":
            self.end_early(self._early_client.pop(txn.id, None), "no-2xx")

    def stray_2xx(self, response: Response) -> None:
        """§13.2.2.4: a 2xx retransmission after the INVITE transaction ended gets the
        same ACK again (only if the dialog still exists)."""
        dialog = self.dialogs.get(
            DialogId(response.call_id, response.from_tag or "", response.to_tag or ""))
        if dialog is not None and dialog.ack_cseq == response.cseq.seq:
            self.resend_ack(dialog)

    def send_ack(self, dialog: Dialog, seq: int, body: bytes = b"",
                 content_type: str | None = None) -> None:
        """Build (§13.2.2.4) and send the ACK for the 2xx to the INVITE with CSeq ``seq``."""
        ack = dialog.create_ack(seq, self._via(), body=body, content_type=content_type)
        dialog.ack_wire = ack.serialize()
        dialog.ack_dest = self.next_hop(ack)
        dialog.ack_cseq = seq
        self._layer.outbox.append((dialog.ack_wire, dialog.ack_dest))

    def resend_ack(self, dialog: Dialog) -> None:
        if dialog.ack_wire and dialog.ack_dest is not None:
            self._layer.outbox.append((dialog.ack_wire, dialog.ack_dest))

    # -- dialog lifetime --------------------------------------------------------------
    def _add(self, dialog: Dialog) -> Dialog:
        if dialog.local_contact is None:
            dialog.local_contact = self._contact()
        self.dialogs[dialog.id] = dialog
        return dialog

    def end(self, dialog: Dialog, reason: str) -> None:
        """Remove the dialog, stop its 2xx retransmission, report DialogTerminated."""
        if self.dialogs.pop(dialog.id, None) is None:
            return
        dialog.terminate()
        retx = dialog.uas_2xx
        if isinstance(retx, Uas2xxRetransmitter):
            retx.stop()
        self._events.append(DialogTerminated(dialog.id, reason))

    def end_early(self, ids: list[DialogId] | None, reason: str) -> None:
        for did in ids or ():
            dialog = self.dialogs.get(did)
            if dialog is not None and dialog.state is DialogState.EARLY:
                self.end(dialog, reason)

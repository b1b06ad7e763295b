"""SIP trunks to carriers: configuration, number normalization, toll-fraud policy,
registration (RFC 3261 §10.2, §22.2) and calls in and out.

Pure modules: :mod:`.config`, :mod:`.numbers`, :mod:`.policy`, :mod:`.registration`,
:mod:`.inbound` (recognition, caller identity, DID routing). The async shells are
:mod:`.service` (registration) and :mod:`.outbound` (``originate_via_trunk`` and
``TrunkCalls``, which the call manager uses); those two import the SIP driver and the
router, so they are imported from their modules, not re-exported here (``switch.config``
imports this package).
"""

from __future__ import annotations

from .config import TRUNK_TRANSPORTS, TrunkConfig, parse_trunk, parse_trunks
from .numbers import (
    CallerId,
    CallerIdMode,
    CallerIdPolicy,
    NumberError,
    NumberFormat,
    NumberRule,
    clean_number,
    format_number,
    from_e164,
    is_emergency,
    normalize,
    present_caller_id,
    to_e164,
)
from .policy import Decision, InboundRoute, Source, TrunkPolicy
from .registration import (
    RegistrationClient,
    RegistrationState,
    RegistrationStateChanged,
    SendRegister,
)
from .service import TrunkService

__all__ = [
    "TRUNK_TRANSPORTS",
    "CallerId",
    "CallerIdMode",
    "CallerIdPolicy",
    "Decision",
    "InboundRoute",
    "NumberError",
    "NumberFormat",
    "NumberRule",
    "RegistrationClient",
    "RegistrationState",
    "RegistrationStateChanged",
    "SendRegister",
    "Source",
    "TrunkConfig",
    "TrunkPolicy",
    "TrunkService",
    "clean_number",
    "format_number",
    "from_e164",
    "is_emergency",
    "normalize",
    "parse_trunk",
    "parse_trunks",
    "present_caller_id",
    "to_e164",
]

"""Import a campaign's contact list from a CSV file, reporting each bad row.

Format: a header line, then one contact per line. Columns (in any order, names in lower or
upper case): ``name`` and ``phone`` (required), ``account``, ``amount`` (yuan, ``350.50``),
``due_date`` (``2026-12-31`` or ``2026/12/31``), ``unit`` (``3栋2单元501``), ``work_order``.
UTF-8, with or without a byte order mark (Excel writes one); RFC 4180 quoting.

Rules:

* Rule 1 -- every bad row is reported with its line number in the file and every reason
  (``line 7: bad phone '12ab'; bad amount '-3'``); the good rows are kept, or, with
  ``all_or_nothing=True``, one bad row rejects the whole file.
* Rule 2 -- problems with the file itself (not UTF-8, no header, no ``name`` or ``phone``
  column, an unknown column -- usually a typo, so it is named with the closest known one)
  reject the file whatever the flag.
* Rule 3 -- a phone already seen in an earlier row (compared as
  :func:`~switch.campaigns.model.phone_key`, so 138-0000-0000 equals +8613800000000) is a
  duplicate and names the line of the first one.
* Rule 4 -- ``required`` names the columns a campaign kind cannot do without
  (:data:`switch.campaigns.messages.REQUIRED_FIELDS`); an empty value there is a row error.
"""

from __future__ import annotations

import csv
import datetime as dt
import difflib
import io
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from switch.campaigns.model import CampaignError, NewContact, phone_key
from switch.trunks.numbers import NumberError, clean_number

logger = logging.getLogger(__name__)

__all__ = ["COLUMNS", "CsvImport", "CsvImportError", "RowError", "parse_contacts_csv"]

COLUMNS = ("name", "phone", "account", "amount", "due_date", "unit", "work_order")
_NAME_MAX = 64
_AMOUNT = re.compile(r"^\d{1,10}(?:\.\d{1,2})?$")
_ACCOUNT = re.compile(r"^[0-9A-Za-z-]{1,16}$")
_WORK_ORDER = re.compile(r"^\d{8,12}$")
_PHONE_DIGITS = (3, 15)
"""Extensions have at least 3 digits; E.164 allows at most 15 (ITU-T E.164 §6.2.1)."""


@dataclass(frozen=True, slots=True)
class RowError:
    """Why the row on ``line`` was rejected."""

    line: int
    reasons: tuple[str, ...]

    def __str__(self) -> str:
        return f"line {self.line}: {'; '.join(self.reasons)}"


@dataclass(frozen=True, slots=True)
class CsvImport:
    """The good contacts and the rejected rows."""

    contacts: list[NewContact]
    errors: list[RowError] = field(default_factory=list)
    rows: int = 0
    """Data rows read (blank lines not counted)."""


class CsvImportError(CampaignError):
    """The file is rejected; ``errors`` lists the bad rows (empty for a file problem)."""

    def __init__(self, message: str, errors: Sequence[RowError] = ()) -> None:
        super().__init__(message)
        self.errors = list(errors)


def _decode(data: bytes | str, source: str) -> str:
    if isinstance(data, str):
        return data.removeprefix("\ufeff")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CsvImportError(f"{source}: not UTF-8 text (byte {exc.start}); save the file as "
                             "CSV UTF-8") from None


def _header(row: list[str], source: str) -> list[str]:
    names = [c.strip().lower() for c in row]
    for name in names:
        if name not in COLUMNS:
            close = difflib.get_close_matches(name, COLUMNS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise CsvImportError(f"{source}: unknown column {name!r}{hint}; known columns: "
                                 f"{', '.join(COLUMNS)}")
    for needed in ("name", "phone"):
        if needed not in names:
            raise CsvImportError(f"{source}: the header has no {needed!r} column")
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise CsvImportError(f"{source}: column {sorted(dupes)[0]!r} appears twice")
    return names


def _check_phone(value: str, reasons: list[str]) -> str | None:
    try:
        cleaned = clean_number(value)
    except NumberError:
        reasons.append(f"bad phone {value!r}" if value else "missing phone")
        return None
    digits = len(cleaned.lstrip("+"))
    if "*" in cleaned or "#" in cleaned or not _PHONE_DIGITS[0] <= digits <= _PHONE_DIGITS[1]:
        reasons.append(f"bad phone {value!r}")
        return None
    return cleaned


def _check_fields(values: dict[str, str], reasons: list[str]) -> dict[str, str]:
    fields: dict[str, str] = {}
    amount = values.get("amount", "")
    if amount:
        if _AMOUNT.match(amount.replace(",", "")) is None:
            reasons.append(f"bad amount {amount!r}")
        else:
            fields["amount"] = amount.replace(",", "")
    due = values.get("due_date", "")
    if due:
        try:
            fields["due_date"] = dt.date.fromisoformat(due.replace("/", "-")).isoformat()
        except ValueError:
            reasons.append(f"bad due_date {due!r} (expected YYYY-MM-DD)")
    account = values.get("account", "")
    if account:
        if _ACCOUNT.match(account) is None:
            reasons.append(f"bad account {account!r}")
        else:
            fields["account"] = account
    order = values.get("work_order", "")
    if order:
        if _WORK_ORDER.match(order) is None:
            reasons.append(f"bad work_order {order!r} (8 to 12 digits)")
        else:
            fields["work_order"] = order
    if values.get("unit"):
        fields["unit"] = values["unit"]
    return fields


def _parse_row(names: list[str], row: list[str], required: Sequence[str],
               seen: dict[str, int], line: int) -> tuple[NewContact | None, list[str]]:
    if len(row) != len(names):
        return None, [f"{len(row)} fields, expected {len(names)}"]
    values = {n: v.strip() for n, v in zip(names, row, strict=True)}
    reasons: list[str] = []
    name = values["name"]
    if not name:
        reasons.append("missing name")
    elif len(name) > _NAME_MAX:
        reasons.append(f"name longer than {_NAME_MAX} characters")
    phone = _check_phone(values["phone"], reasons)
    fields = _check_fields(values, reasons)
    for column in required:
        if not values.get(column) and not any(r.startswith(f"bad {column}") for r in reasons):
            reasons.append(f"missing {column}")
    if phone is not None:
        key = phone_key(phone)
        if key in seen:
            reasons.append(f"duplicate phone {values['phone']!r} (first on line {seen[key]})")
        else:
            seen[key] = line
    if reasons:
        return None, reasons
    assert phone is not None
    return NewContact(name, phone, fields), []


def parse_contacts_csv(data: bytes | str, *, required: Sequence[str] = (),
                       all_or_nothing: bool = False, source: str = "<csv>") -> CsvImport:
    """Read contacts from CSV text (module docstring).

    Args:
        data: the file's bytes (decoded as UTF-8, BOM tolerated) or text.
        required: columns that must be filled in every row (Rule 4).
        all_or_nothing: reject the file when any row is bad (Rule 1).
        source: the file name, for messages.

    Raises:
        CsvImportError: a file problem (Rule 2), or a bad row with ``all_or_nothing``.
    """
    reader = csv.reader(io.StringIO(_decode(data, source), newline=""))
    try:
        header = next(reader, None)
        while header is not None and not any(c.strip() for c in header):
            header = next(reader, None)
        if header is None:
            raise CsvImportError(f"{source}: the file is empty (expected a header line "
                                 f"such as {','.join(COLUMNS[:2])})")
        names = _header(header, source)
        for column in required:
            if column not in names:
                raise CsvImportError(f"{source}: this campaign needs a {column!r} column")
        contacts: list[NewContact] = []
        errors: list[RowError] = []
        seen: dict[str, int] = {}
        rows = 0
        for row in reader:
            if not any(c.strip() for c in row):
                continue
            rows += 1
            contact, reasons = _parse_row(names, row, required, seen, reader.line_num)
            if contact is None:
                errors.append(RowError(reader.line_num, tuple(reasons)))
            else:
                contacts.append(contact)
    except csv.Error as exc:
        raise CsvImportError(f"{source}: line {reader.line_num}: {exc}") from None
    if errors and all_or_nothing:
        raise CsvImportError(f"{source}: {len(errors)} bad row(s), nothing imported",
                             errors)
    if errors:
        logger.info("%s: %d good row(s), %d bad", source, len(contacts), len(errors))
    return CsvImport(contacts, errors, rows)

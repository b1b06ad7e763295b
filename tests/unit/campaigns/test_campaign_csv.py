"""CSV import: bad rows reported row by row with line numbers; good rows kept or not."""

from __future__ import annotations

import pytest

from switch.campaigns import CsvImportError, NewContact, parse_contacts_csv

GOOD = "name,phone,amount,due_date,unit\n张伟,13800000000,350.50,2026-12-31,3栋2单元501\n"

MIXED = (
    "name,phone,account,amount,due_date\n"          # line 1
    "张伟,13800000000,100001,350.50,2026-12-31\n"     # 2 good
    ",13900001111,100002,10,2026-12-31\n"            # 3 missing name
    "李娜,12ab,100003,10,2026-12-31\n"                # 4 bad phone
    "王芳,13600002222,100004,-3,2026-12-31\n"         # 5 bad amount
    "刘洋,13700003333,100005,12.345,2026-13-01\n"     # 6 bad amount and bad date
    "陈静,138-0000-0000,100006,1,2026-12-31\n"        # 7 duplicate of line 2
    "\n"                                             # 8 blank: skipped
    "赵敏,+86 158 0000 4444,100007,\"1,280.05\",2026/12/15\n"   # 9 good
    "孙丽,13500004444,100008\n"                       # 10 too few fields
    "周强,13500005555,100009,5,2026-12-31\n"          # 11 good
)


def test_good_file_with_bom_bytes() -> None:
    result = parse_contacts_csv(("\ufeff" + GOOD).encode("utf-8"))
    assert result.errors == [] and result.rows == 1
    assert result.contacts == [NewContact("张伟", "13800000000", {
        "amount": "350.50", "due_date": "2026-12-31", "unit": "3栋2单元501"})]


def test_bad_rows_reported_row_by_row_and_good_rows_kept() -> None:
    result = parse_contacts_csv(MIXED.encode("utf-8"), source="list.csv")
    assert [c.name for c in result.contacts] == ["张伟", "赵敏", "周强"]
    assert result.contacts[1].phone == "+8615800004444"
    assert result.contacts[1].fields["amount"] == "1280.05"
    assert result.contacts[1].fields["due_date"] == "2026-12-15"
    assert [str(e) for e in result.errors] == [
        "line 3: missing name",
        "line 4: bad phone '12ab'",
        "line 5: bad amount '-3'",
        "line 6: bad amount '12.345'; bad due_date '2026-13-01' (expected YYYY-MM-DD)",
        "line 7: duplicate phone '138-0000-0000' (first on line 2)",
        "line 10: 3 fields, expected 5",
    ]
    assert result.rows == 9


def test_all_or_nothing_rejects_the_file_with_every_error() -> None:
    with pytest.raises(CsvImportError, match="6 bad row") as info:
        parse_contacts_csv(MIXED, all_or_nothing=True)
    assert [e.line for e in info.value.errors] == [3, 4, 5, 6, 7, 10]


def test_required_fields_of_the_kind() -> None:
    text = "name,phone,amount,due_date\n张伟,13800000000,,2026-12-31\n李娜,13900001111,5,\n"
    result = parse_contacts_csv(text, required=("amount", "due_date"))
    assert [str(e) for e in result.errors] == ["line 2: missing amount",
                                                "line 3: missing due_date"]
    with pytest.raises(CsvImportError, match="needs a 'work_order' column"):
        parse_contacts_csv(GOOD, required=("work_order",))


@pytest.mark.parametrize(("data", "message"), [
    (b"", "empty"),
    (b"name,phone,amout\n", "did you mean 'amount'"),
    (b"name,amount\n", "no 'phone' column"),
    (b"name,phone,phone\n", "appears twice"),
    ("name,phone\n张伟,138\n".encode("gbk"), "not UTF-8"),
])
def test_file_problems_reject_the_file(data: bytes, message: str) -> None:
    with pytest.raises(CsvImportError, match=message):
        parse_contacts_csv(data)


def test_multiline_quoted_field_keeps_physical_line_numbers() -> None:
    text = 'name,phone,unit\n张伟,13800000000,"3栋\n2单元"\n李娜,bad,1栋\n'
    result = parse_contacts_csv(text)
    assert [c.fields["unit"] for c in result.contacts] == ["3栋\n2单元"]
    assert [e.line for e in result.errors] == [4]


def test_extension_numbers_and_work_orders() -> None:
    text = "Name,Phone,Work_Order\n前台,1001,202611300001\n后台,12,123\n"
    result = parse_contacts_csv(text)
    assert result.contacts == [NewContact("前台", "1001", {"work_order": "202611300001"})]
    assert [str(e) for e in result.errors] == [
        "line 3: bad phone '12'; bad work_order '123' (8 to 12 digits)"]

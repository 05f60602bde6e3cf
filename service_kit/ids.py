"""The one parser for ids in paths and in `?id=1,2,3` lists (docs/contract.md §3, shared rules for
ids)."""

from __future__ import annotations

from service_kit.errors import BadRequest

MAX_CSV_LENGTH = 200
# Ids are PostgreSQL BIGINTs: a larger one is out of range, a 400 like any other bad id.
MAX_STORED_ID = 2**63 - 1
MAX_ID_DIGITS = len(str(MAX_STORED_ID))


def in_range(value: int) -> bool:
    return 0 < value <= MAX_STORED_ID


def is_id(value: object) -> bool:
    """An id as a value (a message's, a JSON body's): an int within range. bool is an int in
    Python, and JSON true is not an id."""
    return isinstance(value, int) and not isinstance(value, bool) and in_range(value)


def _positive_int(raw: str) -> int | None:
    # isdecimal() accepts non-ASCII digits such as '٣'; ids are ASCII digits only.
    if not raw.isascii() or not raw.isdecimal():
        return None
    digits = raw.lstrip("0")
    # Counted before int(): Python refuses to convert more than 4300 digits (a 500 otherwise).
    if len(digits) > MAX_ID_DIGITS:
        return None
    value = int(digits or "0")
    return value if in_range(value) else None


def parse_id(raw: str) -> int:
    value = _positive_int(raw)
    if value is None:
        raise BadRequest(f"Invalid value '{raw}' for ID. Must be a positive integer")
    return value


def parse_id_csv(raw: str) -> list[int]:
    """Ids in request order, duplicates removed. Elements are digits only: ' 2' is rejected."""
    if len(raw) > MAX_CSV_LENGTH:
        raise BadRequest(
            f"CSV string is too long: received {len(raw)} characters, "
            f"maximum allowed is {MAX_CSV_LENGTH}"
        )
    ids: list[int] = []
    for element in raw.split(","):
        value = _positive_int(element)
        if value is None:
            raise BadRequest(f"Invalid ID format: '{element}'. Only positive integers are allowed")
        if value not in ids:
            ids.append(value)
    return ids

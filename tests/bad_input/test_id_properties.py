"""Properties of the one id/CSV parser (docs/contract.md §3, shared rules for ids), of the Song
Service client's CSV batches, and of the bucket rule the Storage Service's OpenAPI documents."""

from __future__ import annotations

import re

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from resource_service.clients import csv_batches
from service_kit.errors import BadRequest
from service_kit.ids import MAX_CSV_LENGTH, MAX_STORED_ID, parse_id, parse_id_csv
from storage_service.schemas import BUCKET_SCHEMA, is_valid_bucket

PROPERTIES = settings(derandomize=True, deadline=None, max_examples=200)

positive_ints = st.integers(min_value=1, max_value=MAX_STORED_ID)
# Strings near the rule's edges: digits of any script, signs, spaces, dots, zeros, commas.
id_like_text = st.one_of(
    st.text(),
    st.text(alphabet="0123456789", min_size=1, max_size=30),
    st.text(alphabet="0123456789", min_size=4290, max_size=4400),  # int()'s 4300-digit edge
    st.text(alphabet="0123456789٣۳ +-.,\n\t_eE", max_size=12),
)


def _is_positive_ascii_int(raw: str) -> bool:
    """The rule, said another way: ASCII digits whose value fits a BIGINT and is not zero."""
    digits = raw.lstrip("0")
    if re.fullmatch(r"[0-9]*", raw) is None or len(digits) > 19:
        return False
    return 0 < int(digits or "0") <= MAX_STORED_ID


def _bad_element_message(raw: str) -> str:
    return f"Invalid ID format: '{raw}'. Only positive integers are allowed"


@PROPERTIES
@given(positive_ints, st.integers(min_value=0, max_value=3))
def test_parse_id_returns_the_value_of_any_positive_ascii_integer(
    value: int, leading_zeros: int
) -> None:
    assert parse_id("0" * leading_zeros + str(value)) == value


@PROPERTIES
@given(id_like_text)
def test_parse_id_accepts_exactly_positive_ascii_integers_and_names_anything_else(raw: str) -> None:
    if _is_positive_ascii_int(raw):
        assert parse_id(raw) == int(raw.lstrip("0"))
        return
    with pytest.raises(BadRequest) as caught:
        parse_id(raw)
    assert caught.value.status == 400
    assert caught.value.message == f"Invalid value '{raw}' for ID. Must be a positive integer"


@PROPERTIES
@given(st.lists(positive_ints.map(lambda i: i % 10**6 + 1), min_size=1, max_size=60))
def test_parse_id_csv_round_trips_ids_in_order_without_duplicates(ids: list[int]) -> None:
    raw = ",".join(map(str, ids))
    if len(raw) > MAX_CSV_LENGTH:
        raw = raw[: MAX_CSV_LENGTH + 1].rsplit(",", 1)[0]
        ids = [int(part) for part in raw.split(",")]
    assert parse_id_csv(raw) == list(dict.fromkeys(ids))


@PROPERTIES
@given(
    st.lists(st.integers(min_value=1, max_value=10**6), max_size=10),
    id_like_text.filter(lambda s: "," not in s and not _is_positive_ascii_int(s)),
    st.lists(st.integers(min_value=1, max_value=10**6), max_size=10),
)
def test_parse_id_csv_names_the_first_element_that_is_not_a_positive_integer(
    before: list[int], bad: str, after: list[int]
) -> None:
    raw = ",".join([*map(str, before), bad, *map(str, after)])
    assume(len(raw) <= MAX_CSV_LENGTH)  # over it, the length rule answers (next test)
    with pytest.raises(BadRequest) as caught:
        parse_id_csv(raw)
    assert caught.value.message == _bad_element_message(bad)


@PROPERTIES
@given(st.text(min_size=MAX_CSV_LENGTH + 1, max_size=3 * MAX_CSV_LENGTH))
def test_parse_id_csv_rejects_anything_over_200_characters_with_its_length(raw: str) -> None:
    with pytest.raises(BadRequest) as caught:
        parse_id_csv(raw)
    assert caught.value.message == (
        f"CSV string is too long: received {len(raw)} characters, maximum allowed is 200"
    )


@PROPERTIES
@given(st.lists(st.integers(min_value=1, max_value=2**63 - 1), max_size=300))
def test_csv_batches_fit_the_limit_and_keep_every_id_in_order(ids: list[int]) -> None:
    batches = csv_batches(ids)
    assert all(0 < len(batch) <= MAX_CSV_LENGTH for batch in batches)
    joined = ",".join(batches)
    assert (joined.split(",") if joined else []) == [str(i) for i in ids]
    # Each batch is a request the Song Service accepts.
    for batch in batches:
        assert parse_id_csv(batch) == list(dict.fromkeys(int(i) for i in batch.split(",")))


bucket_like = st.one_of(
    st.from_regex(r"[a-z0-9.-]{1,66}", fullmatch=True),
    st.builds(
        "".join,
        st.lists(
            st.sampled_from(
                [
                    "xn--",
                    "sthree-",
                    "-s3alias",
                    "--ol-s3",
                    ".mrap",
                    "--x-s3",
                    "..",
                    ".",
                    "-",
                    "a",
                    "1",
                    "192",
                    "255",
                    "256",
                    "01",
                ]
            ),
            min_size=1,
            max_size=8,
        ),
    ),
)


@PROPERTIES
@given(bucket_like)
def test_the_documented_bucket_schema_accepts_exactly_what_the_service_accepts(name: str) -> None:
    low, high, pattern = (BUCKET_SCHEMA[k] for k in ("minLength", "maxLength", "pattern"))
    assert isinstance(low, int) and isinstance(high, int) and isinstance(pattern, str)
    documented = low <= len(name) <= high and re.search(pattern, name) is not None
    assert documented == is_valid_bucket(name)

import pytest

from service_kit.errors import BadRequest
from service_kit.ids import MAX_STORED_ID, parse_id, parse_id_csv

OUT_OF_RANGE = [str(MAX_STORED_ID + 1), str(2**70), "9" * 30, "1" * 4301, "0" * 5000 + "1" * 4400]


@pytest.mark.parametrize(
    "raw", ["ABC", "1.1", "-1", "0", "000", "", " 1", "1 ", "+1", "٣", "1e3", *OUT_OF_RANGE]
)
def test_path_id_that_is_not_a_positive_integer_in_range_is_rejected(raw: str) -> None:
    # Ids of any length: 4301 digits and more are past what int() converts, and a 400 too.
    with pytest.raises(BadRequest) as caught:
        parse_id(raw)
    assert caught.value.message == f"Invalid value '{raw}' for ID. Must be a positive integer"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("1", 1), ("007", 7), (str(MAX_STORED_ID), MAX_STORED_ID), ("0" * 40 + "5", 5)],
)
def test_path_id_accepts_positive_integers_up_to_a_bigint(raw: str, expected: int) -> None:
    assert parse_id(raw) == expected


@pytest.mark.parametrize(
    ("raw", "bad_element"),
    [("", ""), ("1,2,", ""), (",1", ""), ("1,,2", ""), ("1, 2", " 2"), ("1,a", "a"), ("0", "0")],
)
def test_csv_element_that_is_not_a_positive_integer_is_rejected(raw: str, bad_element: str) -> None:
    with pytest.raises(BadRequest) as caught:
        parse_id_csv(raw)
    assert caught.value.message == (
        f"Invalid ID format: '{bad_element}'. Only positive integers are allowed"
    )


def test_csv_of_exactly_200_characters_is_accepted_and_201_is_too_long() -> None:
    at_limit = ",".join(["1"] * 100) + "0"  # 199 + 1 = 200 characters
    assert len(at_limit) == 200
    assert parse_id_csv(at_limit)[-1] == 10
    with pytest.raises(BadRequest) as caught:
        parse_id_csv(at_limit + "1")
    assert caught.value.message == (
        "CSV string is too long: received 201 characters, maximum allowed is 200"
    )


def test_csv_keeps_request_order_and_drops_duplicates() -> None:
    assert parse_id_csv("3,1,3,2") == [3, 1, 2]


def test_a_csv_element_past_a_bigint_is_rejected() -> None:
    with pytest.raises(BadRequest) as caught:
        parse_id_csv(f"1,{2**70}")
    assert (
        caught.value.message == f"Invalid ID format: '{2**70}'. Only positive integers are allowed"
    )

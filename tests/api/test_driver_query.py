"""Named parameters turned into asyncpg's numbered ones."""

from __future__ import annotations

import pytest

from services.api.queries import driver_query


def test_names_become_numbers_in_order_of_first_use():
    sql, args = driver_query("SELECT :b, :a WHERE x = :b AND y >= :a_2", {"a": 1, "b": 2, "a_2": 3})
    assert sql == "SELECT $1, $2 WHERE x = $1 AND y >= $3"
    assert args == [2, 1, 3]


def test_casts_and_strings_with_colons_are_left_alone():
    sql, args = driver_query("SELECT CAST(:w AS interval), now()::date, '12:30'::time", {"w": "1h"})
    assert sql == "SELECT CAST($1 AS interval), now()::date, '12:30'::time"
    assert args == ["1h"]


def test_a_missing_value_is_an_error():
    with pytest.raises(KeyError):
        driver_query("SELECT :a", {})

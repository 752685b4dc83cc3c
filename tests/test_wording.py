"""The wording helpers every message uses: a count with its noun, singular for one."""

from __future__ import annotations

import pytest

from mtlshare.errors import count, one_of, plural


@pytest.mark.parametrize(
    ("n", "things", "said"),
    [
        (0, "tokens", "0 tokens"),
        (1, "tokens", "1 token"),
        (2, "origins", "2 origins"),
        (12345, "values", "12,345 values"),
    ],
)
def test_a_count_has_its_noun_singular_for_one(n, things, said):
    assert count(n, things) == said


def test_plural_is_the_noun_alone_and_the_allowed_values_a_comma_list():
    assert [plural("seeds", n) for n in (1, 2)] == ["seed", "seeds"]
    assert one_of(("a", 1, None)) == "a, 1, None"

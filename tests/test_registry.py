"""The registries: lookups, the one-line error for an unknown name, and double registration."""

from __future__ import annotations

import pytest

from mtlshare.errors import ConfigError
from mtlshare.registry import Registry


def test_lookup_error_lists_the_choices_and_a_name_registers_once():
    reg: Registry[int] = Registry("widget")
    reg.register("a", summary="first")(1)
    reg.register("b")(2)
    assert reg["a"].build == 1 and reg["a"].summary == "first" and "b" in reg and "c" not in reg
    assert [e.name for e in reg] == reg.names() == ["a", "b"]
    with pytest.raises(ConfigError, match=r"^unknown widget 'c'; choose one of a, b$"):
        reg["c"]
    with pytest.raises(ValueError, match="registered twice"):
        reg.register("a")(3)
    assert reg["a"].build == 1

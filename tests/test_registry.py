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


def test_the_library_components_are_there_without_importing_their_packages_first():
    """Registration is an import's side effect: a registry imports its home package on the
    first lookup, so a user's ``MECHANISMS["hard"]`` does not answer 'choose one of' nothing."""
    import subprocess
    import sys

    code = (
        "from mtlshare.registry import DATA_SOURCES, EXPERIMENTS, MECHANISMS\n"
        "print(MECHANISMS['hard'].name, 'conll' in DATA_SOURCES, EXPERIMENTS.names())\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split(maxsplit=2) == ["hard", "True", "['forecast', 'train']\n"]


def test_a_module_imported_again_registers_its_components_again():
    """``importlib.reload`` (or a notebook's autoreload) of a module that registers a
    mechanism of one's own runs its decorator again: that raised 'registered twice'. The same
    definition takes the old one's place; another one under the name is still refused."""
    reg: Registry[type] = Registry("widget")
    source = "class Gated:\n    pass\n\n\nREG.register('g')(Gated)\n"
    first: dict[str, object] = {"REG": reg, "__name__": "own_module"}
    exec(source, first)
    again: dict[str, object] = {"REG": reg, "__name__": "own_module"}
    exec(source, again)  # the module's code run again, as a reload does
    assert reg["g"].build is again["Gated"] and reg.names() == ["g"]
    with pytest.raises(ValueError, match="registered twice"):
        exec(source, {"REG": reg, "__name__": "other_module"})

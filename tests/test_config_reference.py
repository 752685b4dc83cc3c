"""docs/config.md says what the config accepts: every key of every section, found by walking the
config dataclasses through the registries, is documented under its section with its type and
the code's default; every documented key loads; and the allowed values list every choice."""

from __future__ import annotations

import dataclasses
import json
import re
import tomllib
import typing
from pathlib import Path
from typing import Any

from mtlshare.config import TOP_KEYS, Config, from_dict
from mtlshare.data import corpora, daily_windows, samplers, table, tagging, timeseries
from mtlshare.data.tag_tasks import TASK_KEYS, TASK_KINDS
from mtlshare.forecasting import config as forecast
from mtlshare.models.trunks import ACTIVATIONS, TRUNK_KINDS
from mtlshare.registry import DATA_SOURCES, EXPERIMENTS, MECHANISMS
from mtlshare.sharing import conditioned, soft
from mtlshare.sharing.sparse import config as sparse
from mtlshare.tasks.tags import SCHEMES
from mtlshare.tasks.task import KINDS
from mtlshare.training import aggregators, objective, settings

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "config.md"
TOP = "Top level"
DATA = "[data]"
CONLL_TASK = "[data.tasks.NAME] (conll)"  # the keys of a table of data.tasks: not a dataclass
TABLE_TASK = "[data.tasks.NAME] (table)"  # the same for the table source
REQUIRED = "required"  # the default cell of a key without a default
NO_DEFAULT = object()  # such a key in the code


def source_section(name: str) -> str:
    return f'[data] source = "{name}"'


@dataclasses.dataclass(frozen=True)
class Row:
    type: str
    default: str
    allowed: str


def read_doc() -> dict[str, dict[str, Row]]:
    """Each heading of docs/config.md (backticks dropped) and its table's rows by key."""
    sections: dict[str, dict[str, Row]] = {}
    current: dict[str, Row] | None = None
    for line in DOC.read_text(encoding="utf-8").splitlines():
        heading = re.match(r"#+\s+(.*)", line)
        if heading:
            title = heading.group(1).replace("`", "").strip()
            assert title not in sections, f"docs/config.md: heading {title!r} twice"
            current = sections[title] = {}
        elif line.startswith("| `"):
            cells = [c.strip() for c in line.strip()[1:-1].split("|")]  # no cell holds a "|"
            assert len(cells) == 5, f"docs/config.md: not a row of 5 cells: {line}"
            assert current is not None, f"docs/config.md: a row before any heading: {line}"
            key = cells[0].strip("`")
            assert key not in current, f"docs/config.md: {key!r} twice in one section"
            current[key] = Row(cells[1], cells[2], cells[3])
    return {title: rows for title, rows in sections.items() if rows}


def type_name(hint: Any) -> str:
    """A field's type as the reference writes it: ``int``, ``list[str]``, ``dict[str, Any]``."""
    if hint is Any:
        return "Any"
    if typing.get_origin(hint) is None:
        return str(hint.__name__)
    return str(hint).replace("typing.", "")


def fields_of(cls: type) -> dict[str, tuple[str, Any]]:
    """Every field of a config dataclass: its type's name and its default."""
    hints = typing.get_type_hints(cls)
    out = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = NO_DEFAULT
        out[f.name] = (type_name(hints[f.name]), default)
    return out


def accepted() -> dict[str, dict[str, tuple[str, Any]]]:
    """Every key a config accepts, by the section heading it belongs under: the top-level keys,
    ``[data]``'s ``source`` and each registered source's fields, every dataclass section of
    ``Config`` (trunk, train, weighting, compare), and each registered experiment's and
    mechanism's section."""
    top = fields_of(Config)
    assert set(TOP_KEYS) <= set(top)
    sections = {TOP: {k: top[k] for k in TOP_KEYS}, DATA: {"source": ("str", NO_DEFAULT)}}
    for source in DATA_SOURCES:
        assert source.config is not None, source.name
        sections[source_section(source.name)] = fields_of(source.config)
    hints = typing.get_type_hints(Config)
    for f in dataclasses.fields(Config):
        if dataclasses.is_dataclass(hints[f.name]):
            sections[f"[{f.name}]"] = fields_of(hints[f.name])
    for entry in [*EXPERIMENTS, *MECHANISMS]:
        if entry.config is not None:
            assert f"[{entry.name}]" not in sections, entry.name
            sections[f"[{entry.name}]"] = fields_of(entry.config)
    return sections


def toml_value(cell: str) -> Any:
    assert re.fullmatch(r"`[^`]+`", cell), f"not a TOML value in backticks: {cell!r}"
    return tomllib.loads(f"v = {cell[1:-1]}")["v"]


def test_every_accepted_key_is_documented_under_its_section_with_its_default():
    doc = read_doc()
    code = accepted()
    documented = set(doc) - {CONLL_TASK, TABLE_TASK}
    assert documented == set(code), (
        f"sections only in docs/config.md: {sorted(documented - set(code))}; "
        f"only in the code: {sorted(set(code) - documented)}"
    )
    for section, keys in code.items():
        rows = doc[section]
        assert set(rows) == set(keys), (
            f"{section}: keys the code accepts but docs/config.md lacks: "
            f"{sorted(set(keys) - set(rows))}; documented but not accepted: "
            f"{sorted(set(rows) - set(keys))}"
        )
        for key, (hint, default) in keys.items():
            row = rows[key]
            assert row.type == hint, (
                f"{section} {key}: type {row.type} in the doc, {hint} in the code"
            )
            if default is NO_DEFAULT:
                assert row.default == REQUIRED, f"{section} {key}: has no default"
                continue
            # JSON tells 1 from 1.0 and keeps the order of tables' keys
            shown = json.dumps(toml_value(row.default))
            assert shown == json.dumps(default), (
                f"{section} {key}: {row.default} in the doc, {default!r} in the code"
            )


def test_the_documented_defaults_load_as_the_default_config():
    """Every documented key and default, as a config, is accepted by the loader and gives the
    config that no key at all gives."""
    doc = read_doc()
    for source in DATA_SOURCES:
        raw: dict[str, Any] = {key: toml_value(row.default) for key, row in doc[TOP].items()}
        data = {
            key: toml_value(row.default) for key, row in doc[source_section(source.name)].items()
        }
        raw["data"] = {"source": source.name, **data}
        for section, rows in doc.items():
            name = re.fullmatch(r"\[(\w+)\]", section)
            if name and section != DATA:
                raw[name.group(1)] = {key: toml_value(row.default) for key, row in rows.items()}
        assert from_dict(raw).to_dict() == from_dict({"data": {"source": source.name}}).to_dict()


def test_the_keys_of_a_conll_task_table_are_documented():
    rows = read_doc()[CONLL_TASK]
    assert set(rows) == set(TASK_KEYS), (
        f"data.tasks.NAME: differ in {sorted(set(rows) ^ set(TASK_KEYS))}"
    )


def test_the_keys_of_a_table_task_table_are_documented():
    rows = read_doc()[TABLE_TASK]
    assert set(rows) == set(table.TASK_KEYS), (
        f"data.tasks.NAME: differ in {sorted(set(rows) ^ set(table.TASK_KEYS))}"
    )


def test_the_allowed_values_list_every_choice_the_code_has():
    windows = source_section("daily_windows")
    choices: dict[tuple[str, str], typing.Iterable[str]] = {
        (TOP, "experiment"): EXPERIMENTS.names(),
        (TOP, "mechanism"): MECHANISMS.names(),
        (DATA, "source"): DATA_SOURCES.names(),
        (source_section("conll"), "unseen_tags"): tagging.UNSEEN,
        (source_section("conll"), "format"): corpora.FORMATS,
        (CONLL_TASK, "format"): corpora.FORMATS,
        (source_section("daily_csv"), "layout"): timeseries.LAYOUTS,
        (windows, "layout"): timeseries.LAYOUTS,
        (windows, "head"): daily_windows.HEADS,
        (CONLL_TASK, "kind"): TASK_KINDS,
        (TABLE_TASK, "kind"): KINDS,
        (CONLL_TASK, "scheme"): SCHEMES,
        (CONLL_TASK, "encode"): SCHEMES,
        ("[trunk]", "kind"): TRUNK_KINDS,
        ("[trunk]", "activation"): ACTIVATIONS,
        ("[trunk]", "last_activation"): ACTIVATIONS,
        ("[train]", "optimizer"): settings.OPTIMIZERS,
        ("[train]", "sampler"): samplers.SAMPLERS,
        ("[train]", "keep"): settings.KEEP,
        ("[train]", "schedule"): settings.SCHEDULES,
        ("[weighting]", "kind"): objective.WEIGHTINGS,
        ("[weighting]", "aggregator"): aggregators.AGGREGATORS,
        ("[conditioned]", "mode"): conditioned.MODES,
        ("[soft]", "penalty"): soft.PENALTIES,
        ("[sparse]", "rewind"): sparse.REWINDS,
        ("[sparse]", "select"): sparse.RULES,
        ("[adapters]", "activation"): ACTIVATIONS,
        ("[forecast]", "methods"): forecast.METHODS,
        ("[forecast]", "scarcity_methods"): forecast.METHODS,
        ("[forecast]", "select"): forecast.SELECTS,
    }
    doc = read_doc()
    for (section, key), values in choices.items():
        allowed = doc[section][key].allowed
        if (section, key) == ("[forecast]", "scarcity_methods"):
            allowed = doc[section]["methods"].allowed  # "as `methods`"
        missing = [v for v in values if f"`{v}`" not in allowed]
        assert not missing, f"{section} {key}: allowed values lack {missing}"


def test_the_readme_links_the_reference():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "](docs/config.md)" in readme

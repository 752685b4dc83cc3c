"""Config overrides and checks at their edges: a value holding '=', spaces around the key, a
dotted key through a value, booleans where numbers are expected, the largest seed, what
``[compare]`` tables may change, and how many differences a refused resume names."""

from __future__ import annotations

from pathlib import Path

import pytest

from mtlshare.config import apply_overrides, config_differences, load_config
from mtlshare.errors import MAX_SEED, ConfigError

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "recipes" / "demo" / "demo.toml"


def test_an_override_splits_at_its_first_equals_sign_and_strips_the_key():
    raw = apply_overrides({}, ["compare.title=a=b", " train.epochs = 3"])
    assert raw == {"compare": {"title": "a=b"}, "train": {"epochs": 3}}
    cfg = load_config(DEMO, ['compare.title="x = y"', " train.lr =0.5"])
    assert cfg.compare.title == "x = y" and cfg.train.lr == 0.5


def test_a_dotted_key_through_a_value_is_a_config_error():
    with pytest.raises(ConfigError, match=r"override 'train\.epochs\.x': 'epochs' is not a table"):
        load_config(DEMO, ["train.epochs.x=1"])


@pytest.mark.parametrize(
    ("key", "says"),
    [("train..epochs", "empty part in the key"), ("train.epochs.x", "'epochs' is not a table")],
)
def test_a_key_replace_cannot_set_is_named_alone_not_as_an_override(key, says):
    """``Config.replace`` serves compare rows, forecast candidates and the Python API: the
    key it refuses is no command-line override, and the command line's wording is its own."""
    cfg = load_config(DEMO)
    with pytest.raises(ConfigError) as e:
        cfg.replace(**{key: 3})
    assert str(e.value) == f"{key}: {says}"
    with pytest.raises(ConfigError) as e:
        load_config(DEMO, [f" {key} =3"])
    assert str(e.value) == f"override {key!r}: {says}"


def test_the_empty_key_replace_cannot_set_is_named_as_toml_writes_it():
    """Named bare, the empty key's message began ``: empty part``, which names no key: a
    compare row's ``"" = 3`` was blamed on the config file, with no line, not on its table."""
    with pytest.raises(ConfigError) as e:
        load_config(DEMO).replace(**{"": 3})
    assert str(e.value) == '"": empty part in the key'
    with pytest.raises(ConfigError) as e:
        load_config(DEMO, ["=3"])
    assert str(e.value) == "override '': empty part in the key"


@pytest.mark.parametrize(
    ("override", "key"),
    [("train.lr=true", r"train\.lr"), ("seed=true", "seed"), ("train.epochs=false", "epochs")],
)
def test_a_boolean_is_no_number(override, key):
    with pytest.raises(ConfigError, match=key):
        load_config(DEMO, [override])


def test_the_largest_seed_torch_takes_is_accepted_and_one_more_is_not():
    assert load_config(DEMO, [f"seed={MAX_SEED}"]).seed == MAX_SEED
    # 2**63 is no TOML integer at all: refused as one, before the seed's own check
    with pytest.raises(ConfigError, match=r"seed: .* is not a 64-bit integer"):
        load_config(DEMO, [f"seed={MAX_SEED + 1}"])
    with pytest.raises(ConfigError, match=r"seed: -1 is not a seed"):
        load_config(DEMO, ["seed=-1"])
    # the least TOML integer, -2**63, reads (then the seed's check refuses it); one less does not
    with pytest.raises(ConfigError, match=r"seed: -9223372036854775808 is not a seed"):
        load_config(DEMO, [f"seed={-(2**63)}"])
    with pytest.raises(ConfigError, match=r"seed: .* is not a 64-bit integer"):
        load_config(DEMO, [f"seed={-(2**63) - 1}"])


@pytest.mark.parametrize("table", ["overrides", "variants"])
@pytest.mark.parametrize("key", ["seed", "tasks", "data.n_tasks"])
def test_compare_tables_may_not_change_the_seed_the_tasks_or_the_data(table, key):
    extra = ', mechanism = "hard"' if table == "variants" else ""
    name = "hard" if table == "overrides" else "hard2"
    override = f'compare.{table}={{ {name} = {{ "{key}" = 1{extra} }} }}'
    with pytest.raises(ConfigError, match=f"compare.{table}.{name}: '{key}' would change"):
        load_config(DEMO, [override])


def test_a_variant_names_its_mechanism_and_an_override_may_not():
    variant = 'compare.variants={ "hard+x" = { mechanism = "hard", "train.lr" = 0.1 } }'
    assert load_config(DEMO, [variant]).compare.variants["hard+x"]["mechanism"] == "hard"
    with pytest.raises(ConfigError, match=r"compare\.overrides\.hard: 'mechanism' would change"):
        load_config(DEMO, ['compare.overrides={ hard = { mechanism = "soft" } }'])
    # any other key of an override is fine
    cfg = load_config(DEMO, ['compare.overrides={ hard = { "train.lr" = 0.1 } }'])
    assert cfg.compare.overrides == {"hard": {"train.lr": 0.1}}


def test_exactly_limit_differences_are_named_without_a_count_of_more():
    saved = load_config(DEMO, ["train.threads=1", "train.lr=0.5"]).to_toml()
    found = config_differences(saved, load_config(DEMO).to_toml(), limit=2)
    assert len(found) == 2 and not any("more" in line for line in found)

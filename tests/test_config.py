"""Configs: TOML files, key=value overrides, errors that name the key, and the round trip."""

from __future__ import annotations

import datetime
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest

from mtlshare.config import (
    Config,
    from_dict,
    load_config,
    load_trained_config,
    parse_value,
    same_config,
)
from mtlshare.errors import ConfigError, parse_day
from mtlshare.registry import MECHANISMS, Entry

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "recipes" / "demo" / "demo.toml"
PACKAGED_DEMO = ROOT / "src" / "mtlshare" / "demo.toml"


def test_demo_recipe_loads():
    cfg = load_config(DEMO)
    assert cfg.mechanism == "hard"
    assert cfg.seed == 0
    assert cfg.data_source == "synthetic"
    assert (cfg.data.n_tasks, cfg.data.input_dim, cfg.data.n_train) == (2, 16, 120)
    assert cfg.trunk.hidden == [64, 64]
    assert (cfg.train.epochs, cfg.train.lr, cfg.train.patience) == (60, 0.003, 10)
    assert cfg.mechanisms["soft"].weights == [0.01]
    assert cfg.mechanisms["cross_stitch"].self_weight == 0.9
    # every registered mechanism gets its table, configured or default
    assert set(cfg.mechanisms) == set(MECHANISMS.names())


def test_recipe_and_packaged_demo_config_agree():
    """``mtlshare demo`` reads the packaged copy and the recipe is a symlink to it today; this
    guards against the two drifting apart if the link is ever replaced by a copy."""
    assert tomllib.loads(DEMO.read_text()) == tomllib.loads(PACKAGED_DEMO.read_text())


def test_overrides():
    cfg = load_config(DEMO, ["mechanism=soft", "train.epochs=3", "soft.weights=[0.1]"])
    assert cfg.mechanism == "soft"
    assert cfg.train.epochs == 3
    assert cfg.mechanism_config.weights == [0.1]
    assert cfg.train.lr == 0.003  # untouched keys keep the file's values
    # ints are accepted for floats, and a new table can be created by an override
    cfg = load_config(DEMO, ["train.lr=1", "hierarchical.depths.t1=1"])
    assert cfg.train.lr == 1.0 and isinstance(cfg.train.lr, float)
    assert cfg.mechanisms["hierarchical"].depths == {"t1": 1}


def test_parse_value():
    assert parse_value("3") == 3
    assert parse_value("0.5") == 0.5
    assert parse_value("true") is True
    assert parse_value("[1, 2]") == [1, 2]
    assert parse_value("soft") == "soft"
    assert parse_value('"3"') == "3"


def test_unknown_top_level_key_names_it_and_the_allowed_ones():
    with pytest.raises(ConfigError) as err:
        load_config(DEMO, ["mechanismm=soft"])
    message = str(err.value)
    assert "mechanismm" in message
    for allowed in ("mechanism", "seed", "tasks", "data", "trunk", "train", "weighting", "soft"):
        assert allowed in message.split("allowed", 1)[1]
    assert str(DEMO) in message


@pytest.mark.parametrize(
    ("override", "key", "allowed"),
    [
        ("train.epoch=3", "train.epoch", ["epochs", "batch_size", "lr", "patience"]),
        ("trunk.width=3", "trunk.width", ["kind", "hidden", "activation"]),
        ("soft.weight=[1.0]", "soft.weight", ["penalty", "weights"]),
        ("data.relatedness_=0.5", "data.relatedness_", ["relatedness", "n_tasks"]),
    ],
)
def test_unknown_nested_key_names_it_and_the_allowed_ones(override, key, allowed):
    with pytest.raises(ConfigError) as err:
        load_config(DEMO, [override])
    message = str(err.value)
    assert key in message
    listed = message.split("allowed", 1)[1]
    for name in allowed:
        assert name in listed


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ('train.epochs="x"', "train.epochs"),
        ("train.epochs=1.5", "train.epochs"),
        ("train.epochs=true", "train.epochs"),
        ("train.lr=fast", "train.lr"),
        ("trunk.hidden=64", "trunk.hidden"),
        ('trunk.hidden=[64, "x"]', "trunk.hidden[1]"),
        ("seed=1.5", "seed"),
        ("mechanism=3", "mechanism"),
        ("tasks=t1", "tasks"),
        ("train=3", "train"),
        ("soft=3", "soft"),
        ("data=3", "data"),
        ('data="synthetic"', "data"),
    ],
)
def test_wrong_type_names_the_key(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.").replace("[", r"\[")):
        load_config(DEMO, [override])


def test_an_unquoted_date_is_the_string_of_that_day_where_a_string_is_expected():
    """TOML reads ``data.origin=2012-10-03`` as a date: it means the day's ISO string, in an
    override and in a file, in a list too; a date and time is still refused."""
    bike = ROOT / "recipes" / "forecasting" / "bike_sharing.toml"
    cfg = load_config(bike, ["data.origin=2012-10-03", "forecast.origins=[2012-04-01]"])
    assert cfg.data.origin == "2012-10-03"
    assert cfg.experiments["forecast"].origins == ["2012-04-01"]
    with pytest.raises(ConfigError, match=r"data\.origin: expected a string"):
        load_config(bike, ["data.origin=2012-10-03T10:00:00"])


def test_a_day_is_an_iso_date_and_a_bad_one_names_its_key():
    assert parse_day("2012-02-29", "data.origin") == datetime.date(2012, 2, 29)
    for text in ("2011-02-29", "2012-13-01", "soon", ""):
        with pytest.raises(ConfigError, match=rf"^data\.origin: '{text}' is not a date like"):
            parse_day(text, "data.origin")


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("train.epochs=0", "train.epochs"),
        ("train.optimizer=rmsprop", "train.optimizer"),
        ("trunk.kind=transformer", "trunk.kind"),
        ("trunk.kernel_size=2", "trunk.kernel_size"),
        ("mechanism=sparsest", "sparsest"),
        ("data.source=imagenet", "imagenet"),
        ("train.sampler=zipf", "train.sampler"),
        ("train.threads=-1", "train.threads"),
        ("train.momentum=1.0", "train.momentum"),
    ],
)
def test_value_out_of_range_names_the_key(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(DEMO, [override])


@pytest.mark.parametrize(
    ("override", "message"),
    [("train.epochs", "expected key=value"), ("train..epochs=3", "empty part")],
)
def test_malformed_override(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(DEMO, [override])


def test_missing_data_source_is_an_error():
    raw = tomllib.loads(DEMO.read_text())
    del raw["data"]["source"]
    with pytest.raises(ConfigError, match=r"data\.source"):
        from_dict(raw)


def _round_trip(cfg: Config) -> None:
    text = cfg.to_toml()
    again = from_dict(tomllib.loads(text))
    assert again.to_dict() == cfg.to_dict()
    assert again.to_toml() == text


def test_to_toml_round_trips():
    _round_trip(load_config(DEMO))
    _round_trip(
        load_config(
            DEMO,
            [
                "mechanism=conditioned",
                "tasks=['t2']",
                "train.grad_clip=0.5",
                "weighting.temperature=3.0",
                "weighting.weights.t1=2",
                "conditioned.mode=multiply",
                "conditioned.descriptors={t1 = [1, 0.5], t2 = [0, 1]}",
                "hierarchical.depths={t1 = 1}",
                "cross_stitch.after=[0]",
            ],
        )
    )


def test_replace_overrides_dotted_keys():
    cfg = load_config(DEMO)
    other = cfg.replace(mechanism="soft", **{"train.epochs": 2, "soft.penalty": "trace"})
    assert (other.mechanism, other.train.epochs, other.mechanism_config.penalty) == (
        "soft",
        2,
        "trace",
    )
    assert cfg.mechanism == "hard" and cfg.train.epochs == 60  # the original is unchanged
    with pytest.raises(ConfigError, match=r"train\.epochs"):
        cfg.replace(**{"train.epochs": 0})


def test_missing_file_names_it(tmp_path):
    path = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match="no such config file") as err:
        load_config(path)
    assert str(path) in str(err.value)


def test_invalid_toml_names_the_file(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text('mechanism = "hard"\n[train\nepochs = 3\n')
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(path) in str(err.value)
    assert "line 2" in str(err.value)


def test_a_byte_order_mark_is_read_past(tmp_path):
    """Editors on Windows save UTF-8 with a BOM; it is not a bad first key."""
    path = tmp_path / "bom.toml"
    path.write_bytes(
        b'\xef\xbb\xbfmechanism = "soft"\n[data]\nsource = "synthetic"\n[train]\nepochs = 3\n'
    )
    cfg = load_config(path)
    assert cfg.mechanism == "soft" and cfg.train.epochs == 3


def test_non_utf8_file_names_it(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'mechanism = "h\xe9rd"\n')
    with pytest.raises(ConfigError, match="UTF-8") as err:
        load_config(path)
    assert str(path) in str(err.value)


def test_errors_are_one_line():
    """The CLI prints them as one line; a newline would break that."""
    for override in ["foo=1", "train.foo=1", 'train.epochs="x"', "data=3"]:
        with pytest.raises(ConfigError) as err:
            load_config(DEMO, [override])
        assert "\n" not in str(err.value)


def test_config_differences_name_the_settings_that_keep_a_run_from_resuming(monkeypatch):
    import mtlshare.config
    from mtlshare.config import config_differences

    base = load_config(DEMO)
    saved = base.to_toml()
    assert config_differences(saved, saved) == []
    # a [compare] table does not change how a run trains: not a difference
    titled = load_config(DEMO, ['compare.title="another"']).to_toml()
    assert config_differences(saved, titled) == []

    one = load_config(DEMO, ["train.threads=1"]).to_toml()
    assert config_differences(one, saved) == [
        f"train.threads: 1 in the run, {base.train.threads!r} now"
    ]
    many = load_config(DEMO, ["train.threads=1", "train.lr=0.5", "seed=7", "train.epochs=9"])
    found = config_differences(many.to_toml(), saved, limit=2)
    assert found == [
        f"seed: 7 in the run, {base.seed!r} now",
        f"train.epochs: 9 in the run, {base.train.epochs!r} now",
        "2 more",
    ]
    # the settings that decide many others (another data source: other data keys) come first,
    # then the rest by name
    other = load_config(DEMO, ["mechanism='mmoe'", "train.lr=0.5", "data.n_dev=60"])
    assert [d.split(":")[0] for d in config_differences(other.to_toml(), saved, limit=5)][:3] == [
        "mechanism",
        "data.n_dev",
        "train.lr",
    ]
    broken = saved.replace("[train]", "[train]\nno_such_key = 1", 1)
    assert config_differences(broken, saved)[0].startswith("the run's config no longer loads")
    # never empty where same_config says the configs differ (empty would let the run resume)
    monkeypatch.setattr(mtlshare.config, "same_config", lambda saved, current: False)
    assert config_differences(saved, saved) == ["its text differs"]


def test_cuda_is_refused_where_torch_sees_no_gpu(monkeypatch):
    import torch

    from mtlshare.training.settings import TrainConfig

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match=r"train\.device: 'cuda' but torch sees no GPU"):
        TrainConfig(device="cuda").validate()
    TrainConfig(device="auto").validate()


def test_the_table_of_a_mechanism_without_settings_takes_no_keys(monkeypatch):
    """A mechanism registered without a config dataclass: a key in its table (a typo, a
    setting it does not have) was ignored without a word."""
    monkeypatch.setitem(MECHANISMS._entries, "plain", Entry("plain", object, None, "", ""))
    assert load_config(DEMO, ["mechanism=plain"]).mechanism_config is None
    with pytest.raises(
        ConfigError, match=r"unknown key plain\.depth; allowed keys in \[plain\]: \(none\)$"
    ):
        load_config(DEMO, ["mechanism=plain", "plain.depth=2"])


@pytest.mark.parametrize(
    "name",
    [
        "train",  # its table was read as [train]: every config failed on train.epochs
        "single",  # compare's row of single-task baselines: the mechanism was never run
        "v1.2",  # no override can reach its table, no comparison folder holds it
    ],
)
def test_a_mechanism_of_ones_own_under_a_name_a_config_cannot_tell_apart(monkeypatch, name):
    monkeypatch.setitem(MECHANISMS._entries, name, Entry(name, object, None, "", ""))
    with pytest.raises(ConfigError, match=rf"^mechanism '{name}': register it under another"):
        from_dict({"data": {"source": "synthetic"}})


@dataclass
class _OwnConfig:
    """A mechanism of one's own: field types a dataclass may have that the library's lack."""

    mode: Literal["a", "b"] = "a"
    sizes: tuple[int, ...] = (1, 2)
    pair: tuple[int, str] = (0, "x")
    limit: int | None = None


def test_a_mechanism_of_ones_own_with_literal_tuple_and_none_fields(monkeypatch):
    """Every config writes every registered mechanism's table: such a table made every run's
    to_toml fail (None) or every saved config unreadable (Literal, tuple), whatever it trained."""
    MECHANISMS.names()  # the library's own are registered before the planted one
    monkeypatch.setitem(MECHANISMS._entries, "own", Entry("own", object, _OwnConfig, "", ""))
    cfg = load_config(DEMO)  # a hard run
    again = from_dict(tomllib.loads(cfg.to_toml()))
    assert again.mechanisms["own"] == _OwnConfig()
    own = load_config(
        DEMO, ["mechanism=own", "own.mode=b", "own.sizes=[3]", 'own.pair=[4, "y"]', "own.limit=4"]
    )
    assert own.mechanism_config == _OwnConfig("b", (3,), (4, "y"), 4)
    assert from_dict(tomllib.loads(own.to_toml())).mechanism_config == own.mechanism_config
    with pytest.raises(ConfigError, match=r"own\.mode: expected one of 'a', 'b', got 'c'$"):
        load_config(DEMO, ["own.mode=c"])
    with pytest.raises(ConfigError, match=r"own\.pair: expected 2 values, got \[1\]$"):
        load_config(DEMO, ["own.pair=[1]"])
    with pytest.raises(ConfigError, match=r"own\.sizes\[1\]: expected an integer"):
        load_config(DEMO, ['own.sizes=[1, "z"]'])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("own.sizes=3", r"own\.sizes: expected a list, got 3$"),
        ("own.limit=x", r"own\.limit: 'x' does not fit int \| None$"),
        ('own.limit="4"', r"own\.limit: '4' does not fit int \| None$"),
        ("compare.seeds_of=3", r"compare\.seeds_of: expected a table, got 3$"),
        ("compare.seeds=[1, 2, 1]", r"compare\.seeds: \[1, 2, 1\] lists a seed twice$"),
    ],
)
def test_a_value_of_the_wrong_shape_is_refused_naming_the_key(monkeypatch, override, message):
    MECHANISMS.names()
    monkeypatch.setitem(MECHANISMS._entries, "own", Entry("own", object, _OwnConfig, "", ""))
    with pytest.raises(ConfigError, match=message):
        load_config(DEMO, [override])


@dataclass
class _FlagConfig:
    strict: bool = False
    cap: int | None = 5


def test_a_flag_of_ones_own_takes_true_or_false_and_none_is_never_written(monkeypatch):
    """None reaches a field only from a dict (TOML has no null): kept where the field's type
    takes it, it cannot be written where the field's default is not None (it would read back as
    that default)."""
    MECHANISMS.names()
    monkeypatch.setitem(MECHANISMS._entries, "own", Entry("own", object, _FlagConfig, "", ""))
    assert load_config(DEMO, ["own.strict=true"]).mechanisms["own"] == _FlagConfig(True, 5)
    with pytest.raises(ConfigError, match=r"own\.strict: expected true or false, got 1$"):
        load_config(DEMO, ["own.strict=1"])
    raw = tomllib.loads(DEMO.read_text())
    cfg = from_dict({**raw, "own": {"cap": None}})
    assert cfg.mechanisms["own"] == _FlagConfig(False, None)
    with pytest.raises(ConfigError, match=r"^own\.cap: None cannot be written to TOML$"):
        cfg.to_toml()


@dataclass
class _PathConfig:
    where: Path = Path(".")


def test_a_config_field_toml_cannot_carry_is_named_when_a_config_is_read(monkeypatch):
    """A Path field wrote no config.toml (a TypeError after training); it is one line up front."""
    MECHANISMS.names()
    monkeypatch.setitem(MECHANISMS._entries, "own", Entry("own", object, _PathConfig, "", ""))
    with pytest.raises(
        ConfigError,
        match=r"own\.where: a config field of type Path cannot be read from TOML; use bool",
    ):
        load_config(DEMO)


def test_a_run_written_beside_a_mechanism_of_ones_own_loads_where_it_is_not_registered(
    tmp_path, monkeypatch
):
    """Every run's config.toml has a table per registered mechanism: a hard run trained in a
    process that registered a mechanism of one's own could not be loaded ("unknown key") nor
    resumed without it, and that mechanism's own run did not say what was missing."""
    MECHANISMS.names()
    with monkeypatch.context() as m:
        m.setitem(MECHANISMS._entries, "own", Entry("own", object, _OwnConfig, "", ""))
        saved = load_config(DEMO, ["own.mode=b"]).to_toml()  # a hard run, trained beside own
        own_run = load_config(DEMO, ["mechanism=own"]).to_toml()
    assert "own" not in MECHANISMS
    path = tmp_path / "config.toml"
    path.write_text(saved)
    assert load_trained_config(path).to_toml() == load_config(DEMO).to_toml()
    assert same_config(saved, load_config(DEMO).to_toml())  # so --resume takes it up here
    assert not same_config(saved, load_config(DEMO, ["seed=1"]).to_toml())
    path.write_text(own_run)
    with pytest.raises(ConfigError, match=r"unknown mechanism 'own'.*registered by importing"):
        load_trained_config(path)
    with pytest.raises(ConfigError, match=r"unknown key 'own'"):  # a file one writes: strict
        load_config(tmp_path / "config.toml", ["mechanism=hard"])


@pytest.mark.parametrize(
    "override",
    ["data.input_dim=100000000000000000000", "trunk.hidden=[100000000000000000000]"],
)
def test_an_integer_longer_than_64_bits_is_a_config_error(override, tmp_path, capsys):
    # TOML's integers are 64-bit; a longer one reached torch, whose overflow was a traceback
    with pytest.raises(ConfigError, match="not a 64-bit integer"):
        load_config(DEMO, [override])
    load_config(DEMO, ["data.n_dev=9223372036854775807"])  # the largest one still reads

    from mtlshare.cli import main

    assert main(["run", str(DEMO), override, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mtlshare: error: ") and err.count("\n") == 1, err


@pytest.mark.parametrize(
    ("table", "setting", "line", "message"),
    [
        ("trunk", "dropout = 1.0", 4, "trunk.dropout: must be in [0, 1), got 1.0"),
        (
            "train",
            "temperature = 0.0",
            4,
            "train.temperature: must be a finite number > 0, got 0.0",
        ),
        (
            "weighting",
            "temperature = 0.0",
            4,
            "weighting.temperature: must be a finite number > 0, got 0.0",
        ),
        ("weighting", "lr = inf", 4, "weighting.lr: must be a finite number > 0, got inf"),
        ("weighting", "alpha = -1.0", 4, "weighting.alpha: must be a finite number >= 0, got -1.0"),
        (
            "weighting",
            'aggregator = "pcgrad"',
            4,
            "weighting.aggregator: set only with weighting.kind = 'aggregator' (kind is 'fixed')",
        ),
        # two keys together: the table's line
        (
            "sparse",
            "round_steps = 0\nround_epochs = 0",
            3,
            "sparse: set round_steps or round_epochs > 0 (k, the training per pruning round)",
        ),
    ],
)
def test_a_setting_out_of_range_is_refused_naming_its_line_and_bound(
    tmp_path, table, setting, line, message
):
    path = tmp_path / "c.toml"
    path.write_text(f'[data]\nsource = "synthetic"\n[{table}]\n{setting}\n')
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(err.value) == f"{path}:{line}: {message}"

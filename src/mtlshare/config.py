"""Configuration: a dataclass per component, loaded from TOML, with ``key=value`` overrides.

The top level holds ``mechanism`` (which sharing mechanism to train), ``seed``, ``tasks`` (a
subset of the data's tasks; empty = all) and one table per component: ``[data]`` (its ``source``
picks a registered data source, whose own fields sit beside it, or is ``"custom"``: the data is
a ``Problem`` passed from Python, ``mtlshare.run(cfg, out, problem=...)``), ``[trunk]``,
``[train]``, ``[weighting]``, and one table per registered mechanism (``[hard]``, ``[soft]``,
...), so that switching ``mechanism`` never needs another file. Unknown keys are errors that name
the key and the allowed ones.
"""

from __future__ import annotations

import dataclasses
import datetime
import re
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w
import torch

import mtlshare.data
import mtlshare.forecasting.config
import mtlshare.sharing  # noqa: F401  (these register their components on import)
from mtlshare import config_lines
from mtlshare.errors import ConfigError, check_list, check_seed
from mtlshare.files import parse_toml
from mtlshare.models.trunks import TrunkConfig
from mtlshare.registry import DATA_SOURCES, EXPERIMENTS, MECHANISMS, Entry, Registry
from mtlshare.training.objective import JOINT_ONLY, WeightingConfig
from mtlshare.training.settings import TrainConfig

TOP_KEYS = ("experiment", "mechanism", "seed", "tasks")
SECTIONS = ("data", "trunk", "train", "weighting", "compare")  # the tables every config has
SINGLE = "single"  # compare's row of single-task baselines
SUBNET = "single_subnet"  # and of each task alone on the mask the sparse run chose for it
ROW_NAME = re.compile(r"[\w][\w+-]{0,63}")  # a comparison row: a folder name
# data.source of a config whose data is a Problem built in Python (``run(..., problem=...)``):
# no data source, no other [data] keys; what would read the data from the config refuses it
CUSTOM = "custom"
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1  # the integers TOML has

EXPERIMENTS.register("train", summary="train the configured mechanism (the default)")(None)


@dataclass
class CompareConfig:
    """``[compare]``: what ``mtlshare compare`` runs when the command line does not say.

    ``mechanisms``: in order, e.g. ``["single", "hard", "sparse", "single_subnet"]`` (empty:
    single, every registered mechanism and every variant); ``single_subnet`` trains each task
    alone on the mask that the ``sparse`` run (listed before it) selected. ``seeds``: empty =
    the config's seed. ``seeds_of``: per mechanism, a subset of the seeds to run it with
    (costly rows on fewer seeds, e.g. ``{ soft = [0] }``); such a row is compared with
    single-task training under the same seeds. ``overrides``: per row (a mechanism, a variant,
    ``single`` or ``single_subnet``),
    dotted keys and values applied to its runs only, e.g. ``hierarchical = { "trunk.hidden" =
    [200, 200] }`` (``single_subnet`` also takes ``sparse``'s). ``variants``: rows of their own
    name that train a registered mechanism with other settings, e.g. ``"hard+upgrad" = {
    mechanism = "hard", "train.schedule" = "joint", "weighting.kind" = "aggregator",
    "weighting.aggregator" = "upgrad" }``; list them in ``mechanisms`` like any row. ``title``:
    a heading for ``comparison.md``.
    """

    mechanisms: list[str] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)
    seeds_of: dict[str, list[int]] = field(default_factory=dict)
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)
    title: str = ""

    def rows(self) -> list[str]:
        """Every row name a comparison may list."""
        return [SINGLE, SUBNET, *MECHANISMS.names(), *self.variants]

    def default_rows(self) -> list[str]:
        """The rows of a comparison that names none: ``mechanisms``, else single-task
        training, every registered mechanism and every variant (``mtlshare demo``'s rows)."""
        return self.mechanisms or [SINGLE, *MECHANISMS.names(), *self.variants]

    def validate(self) -> None:
        for name, changes in self.variants.items():
            if name in (SINGLE, SUBNET, *MECHANISMS.names()) or not ROW_NAME.fullmatch(name):
                raise ConfigError(
                    f"compare.variants.{name}: a variant needs a name of its own (letters, "
                    "digits, '_', '-', '+'), not a mechanism's"
                )
            if changes.get("mechanism") not in MECHANISMS.names():
                raise ConfigError(
                    f"compare.variants.{name}.mechanism: name a registered mechanism "
                    f"({', '.join(MECHANISMS.names())})"
                )
        known = self.rows()
        for name in [*self.mechanisms, *self.overrides, *self.seeds_of]:
            if name not in known:
                raise ConfigError(
                    f"compare: unknown mechanism {name!r}; choose from {', '.join(known)}"
                )
        for where, table in (("overrides", self.overrides), ("variants", self.variants)):
            for name, changes in table.items():
                for key in changes:
                    if key.split(".")[0] in ("data", "tasks", "seed") or (
                        key == "mechanism" and where == "overrides"
                    ):
                        raise ConfigError(
                            f"compare.{where}.{name}: {key!r} would change the data or the run "
                            "itself; every mechanism in a comparison trains on the same data"
                        )
        for seed in self.seeds:
            check_seed(seed, "compare.seeds")
        if len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"compare.seeds: {self.seeds} lists a seed twice")


@dataclass
class Config:
    experiment: str = "train"
    mechanism: str = "hard"
    seed: int = 0
    tasks: list[str] = field(default_factory=list)
    data: Any = None  # the data source's config dataclass (None for CUSTOM)
    data_source: str = CUSTOM
    trunk: TrunkConfig = field(default_factory=TrunkConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    weighting: WeightingConfig = field(default_factory=WeightingConfig)
    mechanisms: dict[str, Any] = field(default_factory=dict)
    experiments: dict[str, Any] = field(default_factory=dict)
    compare: CompareConfig = field(default_factory=CompareConfig)
    # the folder of the TOML file this config was read from (``load_config``): relative data
    # paths resolve against it, as on the command line; not part of the config itself
    base_dir: Path | None = field(default=None, compare=False, repr=False)

    @property
    def mechanism_config(self) -> Any:
        return self.mechanisms[self.mechanism]

    def to_dict(self) -> dict[str, Any]:
        """The fully resolved config as it would be written to TOML."""
        out: dict[str, Any] = {
            "experiment": self.experiment,
            "mechanism": self.mechanism,
            "seed": self.seed,
            "tasks": list(self.tasks),
        }
        own = _table(self.data, "data") if self.data is not None else {}
        out["data"] = {"source": self.data_source, **own}
        out["trunk"] = dataclasses.asdict(self.trunk)
        out["train"] = dataclasses.asdict(self.train)
        out["weighting"] = dataclasses.asdict(self.weighting)
        out["compare"] = dataclasses.asdict(self.compare)
        for name, cfg in self.experiments.items():
            out[name] = _table(cfg, name)
        for name, cfg in self.mechanisms.items():
            out[name] = _table(cfg, name) if cfg is not None else {}
        return out

    def to_toml(self) -> str:
        return tomli_w.dumps(self.to_dict())

    def replace(self, **overrides: Any) -> Config:
        """A copy with top-level fields or dotted keys replaced (``{"train.epochs": 3}``)."""
        raw = self.to_dict()
        for key, value in overrides.items():
            set_dotted(raw, key, value)
        new = from_dict(raw)
        new.base_dir = self.base_dir
        return new


def _table(cfg: Any, section: str) -> dict[str, Any]:
    """A component's dataclass as a TOML table. TOML has no null: a field at its default of
    None is left out and reads back as that default (a component of one's own may have such
    fields; one of them made every run's ``to_toml`` fail with a TypeError)."""
    table = dataclasses.asdict(cfg)
    for f in dataclasses.fields(cfg):
        if table[f.name] is None:
            if f.default is not None:
                raise ConfigError(f"{section}.{f.name}: None cannot be written to TOML")
            del table[f.name]
    return table


def _coerce(value: Any, hint: Any, key: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        for option in args:
            try:
                return _coerce(value, option, key)
            except ConfigError:
                continue
        raise ConfigError(f"{key}: {value!r} does not fit {hint}")
    if hint is type(None):
        if value is None:
            return None
        raise ConfigError(f"{key}: expected nothing, got {value!r}")
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            # TOML's integers are 64-bit (tomllib reads longer ones); torch overflows on them
            if not INT64_MIN <= value <= INT64_MAX:
                raise ConfigError(
                    f"{key}: {value} is not a 64-bit integer (-2**63 to 2**63 - 1), as TOML's are"
                )
            return value
        raise ConfigError(f"{key}: expected an integer, got {value!r}")
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{key}: expected a number, got {value!r}")
    if hint is str:
        if isinstance(value, str):
            return value
        if type(value) is datetime.date:  # an unquoted TOML date, as in data.origin=2012-10-03
            return value.isoformat()
        raise ConfigError(f"{key}: expected a string, got {value!r}")
    if origin is typing.Literal:  # a choice among fixed values, e.g. Literal["a", "b"]
        if any(value == a and type(value) is type(a) for a in args):
            return value
        raise ConfigError(f"{key}: expected one of {', '.join(map(repr, args))}, got {value!r}")
    if origin is tuple:  # TOML has arrays only: tuple[int, ...] or tuple[int, str]
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], f"{key}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"{key}: expected {len(args)} values, got {value!r}")
        return tuple(
            _coerce(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args, strict=True))
        )
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        return [_coerce(v, args[0], f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a table, got {value!r}")
        return {str(k): _coerce(v, args[1], f"{key}.{k}") for k, v in value.items()}
    raise ConfigError(f"{key}: unsupported type {hint}")  # pragma: no cover - checked up front


def build_dataclass(cls: type, raw: dict[str, Any], prefix: str) -> Any:
    """``cls(**raw)`` with every key checked against the fields and every value type-checked."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{prefix}: expected a table, got {raw!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = [k for k in raw if k not in names]
    if unknown:
        raise ConfigError(
            f"unknown key {prefix}.{unknown[0]}; allowed keys in [{prefix}]: "
            f"{', '.join(names) or '(none)'}"
        )
    for name in names:  # a component of one's own may declare a type TOML cannot carry
        if not _readable(hints[name]):
            raise ConfigError(
                f"{prefix}.{name}: a config field of type {_type_name(hints[name])} cannot be "
                "read from TOML; use bool, int, float, str, Literal[...], list[...], tuple[...], "
                "dict[str, ...] or a union of them with None"
            )
    values = {k: _coerce(v, hints[k], f"{prefix}.{k}") for k, v in raw.items()}
    return cls(**values)


def _type_name(hint: Any) -> str:
    return hint.__name__ if isinstance(hint, type) else str(hint)


def _readable(hint: Any) -> bool:
    """Whether ``_coerce`` reads a value of this type from TOML."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint in (Any, bool, int, float, str, type(None)) or origin is typing.Literal:
        return True
    if origin in (typing.Union, types.UnionType, list, tuple):
        return all(a is Ellipsis or _readable(a) for a in args)
    if origin is dict:
        return args[0] is str and _readable(args[1])
    return False


def _registered(registry: Registry[Any], name: str, key: str, also: str = "") -> Entry[Any]:
    """``registry[name]``, its error naming the config ``key``, ``also`` (another value it may
    take) and how a component of one's own is registered."""
    try:
        return registry[name]
    except ConfigError as e:
        raise ConfigError(
            f"{key}: {e}{also} (one of your own is registered by importing the module that "
            "defines it, from Python, before the config is read)"
        ) from None


def _without_unused_tables(raw: dict[str, Any]) -> dict[str, Any]:
    """A saved config without the tables of mechanisms and experiment sections that were
    registered where it was written but are not here, and that it does not use: every
    ``config.toml`` holds every registered mechanism's table, so a hard run trained beside a
    mechanism of one's own names that mechanism, and reads here without it."""
    known = {*TOP_KEYS, *SECTIONS, *(e.name for e in EXPERIMENTS), *MECHANISMS.names()}
    used = {raw.get("mechanism"), raw.get("experiment")}
    return {k: v for k, v in raw.items() if k in known or k in used or not isinstance(v, dict)}


def from_dict(raw: dict[str, Any]) -> Config:
    """Build and validate a ``Config`` from a TOML-shaped dict."""
    raw = dict(raw)
    sections = [e.name for e in EXPERIMENTS if e.config is not None]
    taken = [*TOP_KEYS, *SECTIONS, *sections]
    for name in MECHANISMS.names():  # a name of one's own that a config cannot tell apart
        if name in (*taken, SINGLE, SUBNET) or not ROW_NAME.fullmatch(name):
            raise ConfigError(
                f"mechanism {name!r}: register it under another name. A mechanism's name is "
                "its config table, its comparison row and a folder name: letters, digits, "
                f"'_', '-' and '+', none of {', '.join([*taken, SINGLE, SUBNET])}"
            )
    cfg = Config()
    # before the unknown keys: the table of a mechanism of one's own that is not registered
    # here is unknown too, and "unknown key" would not say what is missing
    cfg.experiment = _coerce(raw.get("experiment", cfg.experiment), str, "experiment")
    _registered(EXPERIMENTS, cfg.experiment, "experiment")
    cfg.mechanism = _coerce(raw.get("mechanism", cfg.mechanism), str, "mechanism")
    _registered(MECHANISMS, cfg.mechanism, "mechanism")
    allowed = [*taken, *MECHANISMS.names()]
    unknown = [k for k in raw if k not in allowed]
    if unknown:
        raise ConfigError(
            f"unknown key {unknown[0]!r}; allowed top-level keys: {', '.join(allowed)}"
        )
    cfg.seed = _coerce(raw.get("seed", 0), int, "seed")
    check_seed(cfg.seed)
    cfg.tasks = _coerce(raw.get("tasks", []), list[str], "tasks")
    data = raw.get("data", {})
    if not isinstance(data, dict):
        raise ConfigError(f"data: expected a table, got {data!r}")
    data = dict(data)
    if "source" not in data:
        raise ConfigError(
            f"data.source: missing; choose one of {', '.join(DATA_SOURCES.names())}, or "
            f"{CUSTOM!r} for a Problem passed to mtlshare.run(cfg, out, problem=...)"
        )
    cfg.data_source = _coerce(data.pop("source"), str, "data.source")
    if cfg.data_source == CUSTOM:
        if data:
            raise ConfigError(
                f"unknown key data.{next(iter(data))}; data.source = {CUSTOM!r} takes no other "
                "keys (the data is the Problem passed to mtlshare.run)"
            )
        cfg.data = None
    else:
        also = f", or {CUSTOM!r} for a Problem passed to mtlshare.run"
        entry = _registered(DATA_SOURCES, cfg.data_source, "data.source", also)
        assert entry.config is not None
        cfg.data = build_dataclass(entry.config, data, "data")
    cfg.trunk = build_dataclass(TrunkConfig, raw.get("trunk", {}), "trunk")
    cfg.trunk.validate()
    cfg.train = build_dataclass(TrainConfig, raw.get("train", {}), "train")
    cfg.train.validate()
    cfg.weighting = build_dataclass(WeightingConfig, raw.get("weighting", {}), "weighting")
    cfg.weighting.validate()
    if cfg.weighting.kind in JOINT_ONLY and cfg.train.schedule != "joint":
        raise ConfigError(
            f"weighting.kind = {cfg.weighting.kind!r} combines every task's loss or gradient at "
            "each step: set train.schedule = 'joint'"
        )
    cfg.compare = build_dataclass(CompareConfig, raw.get("compare", {}), "compare")
    cfg.compare.validate()
    for exp in EXPERIMENTS:
        if exp.config is not None:
            cfg.experiments[exp.name] = build_dataclass(exp.config, raw.get(exp.name, {}), exp.name)
    for mech in MECHANISMS:
        if mech.config is not None:
            cfg.mechanisms[mech.name] = build_dataclass(
                mech.config, raw.get(mech.name, {}), mech.name
            )
            if hasattr(cfg.mechanisms[mech.name], "validate"):  # what can be checked early
                cfg.mechanisms[mech.name].validate()
        else:  # a mechanism without settings: its table (written empty) takes no keys
            build_dataclass(_NoSettings, raw.get(mech.name, {}), mech.name)
            cfg.mechanisms[mech.name] = None
    return cfg


@dataclass
class _NoSettings:
    """The table of a mechanism registered without a config dataclass."""


def parse_value(text: str) -> Any:
    """A command-line value as TOML (``3``, ``0.5``, ``true``, ``[1, 2]``), else a string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def set_dotted(raw: dict[str, Any], key: str, value: Any, label: str | None = None) -> None:
    """Set the dotted ``key`` of the TOML table ``raw`` to ``value``. A key that cannot be set
    is refused in words that start with ``label``, the key itself unless told (a command-line
    override is named as the user wrote it; a key from ``Config.replace`` is named alone, so
    that the caller can say where it came from: the empty key as TOML writes it, ``""``, as
    ``: empty part`` would name no key)."""
    named = label if label is not None else key or '""'
    parts = key.split(".")
    if not all(parts):
        raise ConfigError(f"{named}: empty part in the key")
    node = raw
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{named}: {part!r} is not a table")
        node = child
    node[parts[-1]] = value


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    for item in overrides:
        if "=" not in item:
            hint = (
                " (a config file? `run`, `compare` and `add-task` take one before their "
                "overrides; `demo` takes none)"
                if item.endswith(".toml")
                else ""
            )
            raise ConfigError(f"override {item!r}: expected key=value{hint}")
        key, _, text = item.partition("=")
        key = key.strip()
        set_dotted(raw, key, parse_value(text.strip()), label=f"override {key!r}")
    return raw


def same_config(saved: str, current: str) -> bool:
    """Whether a run's saved ``config.toml`` text is the config ``current`` (a ``to_toml``
    text): the same text, or the same once both are read with today's defaults and without
    their ``[compare]`` tables. So a run written before a key with a default was added still
    resumes, and so do the finished runs of a comparison given more rows or another title (which
    rows a comparison has does not change how one of its runs trains: each run's own settings,
    variants and overrides included, are in the rest of its config). A saved config that no
    longer loads (a key since removed) is not the same."""
    if saved == current:
        return True
    try:
        return _training_part(saved) == _training_part(current)
    except (ConfigError, tomllib.TOMLDecodeError):
        return False


def config_differences(saved: str, current: str, limit: int = 3) -> list[str]:
    """What keeps a run's saved ``config.toml`` from being the config ``current``
    (``same_config``): up to ``limit`` settings, e.g. ``"train.threads: 1 in the run, 0 now"``,
    and how many more differ; empty when they are the same. The data source, the mechanism,
    the tasks and the trunk's kind come first, the rest by name. A saved config that no longer
    loads says so."""
    if same_config(saved, current):
        return []
    try:
        old = _flat(parse_toml(_training_part(saved)))
    except (ConfigError, tomllib.TOMLDecodeError) as e:
        return [f"the run's config no longer loads ({str(e).strip().splitlines()[0][:120]})"]
    new = _flat(parse_toml(_training_part(current)))
    # the settings that decide many others (another data source has other data keys) first
    every = sorted(old.keys() | new.keys(), key=lambda k: (k not in _DECIDING, k))
    keys = [k for k in every if old.get(k, _ABSENT) != new.get(k, _ABSENT)]
    if not keys:  # never empty while same_config says they differ: that would let it resume
        return ["its text differs"]
    shown = [f"{k}: {_shown(old, k)} in the run, {_shown(new, k)} now" for k in keys[:limit]]
    if len(keys) > limit:
        shown.append(f"{len(keys) - limit} more")
    return shown


def raised_epochs(saved: str, current: str) -> bool:
    """Whether ``current`` is a run's saved config with only ``train.epochs`` raised: resuming
    then trains on from the run's last checkpoint, as if it had had the higher cap from the
    start (the learning rate is a function of the epoch alone, never of the cap)."""
    try:
        old = _flat(parse_toml(_training_part(saved)))
        new = _flat(parse_toml(_training_part(current)))
    except (ConfigError, tomllib.TOMLDecodeError):
        return False
    more = new.get("train.epochs", 0) > old.get("train.epochs", 0)
    return more and {**old, "train.epochs": None} == {**new, "train.epochs": None}


def resumable_differences(saved: str, current: str, limit: int = 3) -> list[str]:
    """``config_differences``, but a raised ``train.epochs`` alone is no difference: a resumed
    run (finished or not) may be given more epochs (``raised_epochs``)."""
    return [] if raised_epochs(saved, current) else config_differences(saved, current, limit)


_ABSENT = object()
_DECIDING = ("data.source", "mechanism", "tasks", "trunk.kind")


def _flat(table: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A TOML table's values by dotted key (arrays whole)."""
    out: dict[str, Any] = {}
    for key, value in table.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _shown(values: dict[str, Any], key: str) -> str:
    return repr(values[key]) if key in values else "absent"


def _training_part(text: str) -> str:
    """``text`` read with today's defaults, without its ``[compare]`` table."""
    raw = _without_unused_tables(parse_toml(text))
    raw.pop("compare", None)
    return from_dict(raw).to_toml()


def read_toml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path}: a folder, not a config file (a TOML file)")
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    try:
        return parse_toml(path.read_text(encoding="utf-8-sig"))  # an editor's BOM is no key
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: {e}") from None


def check_config(cfg: object, what: str) -> None:
    """``cfg`` given to the Python API ``what`` must be a ``Config``; a path or a dict is a
    ``TypeError`` saying how to make one (it was an AttributeError from deep inside)."""
    if not isinstance(cfg, Config):
        raise TypeError(
            f"{what}: cfg is a mtlshare Config (mtlshare.load_config(path, overrides) reads "
            f"one), not a {type(cfg).__name__}"
        )


def load_config(path: str | Path, overrides: list[str] | None = None) -> Config:
    """Read a TOML config, apply ``key=value`` overrides and validate everything. The
    config's ``base_dir`` is the file's folder: its relative data paths resolve against it."""
    check_list(overrides, "load_config: overrides")
    overrides = overrides or []
    return _config_from(path, apply_overrides(read_toml(path), overrides), overrides)


def _config_from(path: str | Path, raw: dict[str, Any], overrides: list[str]) -> Config:
    """The config of the file at ``path``, read as ``raw`` once ``overrides`` were applied:
    errors name the override that set the key they are about, else the file and the line that
    sets it (the file alone when no line does)."""
    try:
        cfg = from_dict(raw)
    except ConfigError as e:
        raise ConfigError(f"{where(path, overrides, str(e))}: {e}") from None
    cfg.base_dir = Path(path).resolve().parent
    return cfg


def where(path: str | Path, overrides: list[str], message: str) -> str:
    """What a config error's ``message`` is about: ``override 'k=v' (on PATH)`` when an override
    set its key, else ``PATH:LINE`` or ``PATH``; an element of an array (``trunk.hidden[1]``)
    is the line it starts on, where the array spans lines."""
    key = config_lines.key_of(message)
    if key is None:
        return str(path)
    item = config_lines.override_of(overrides, key)
    if item is not None:
        return f"override {item!r} (on {path})"
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError):
        return str(path)
    line = config_lines.key_line(text, key)
    index = config_lines.element_of(message)
    if line is not None and index is not None:  # the line the element starts on, if its own
        line = config_lines.element_line(text, line, index) or line
    return f"{path}:{line}" if line is not None else str(path)


def load_trained_config(path: str | Path) -> Config:
    """A trained run's ``config.toml``, to use here. Its ``train.device`` says where it
    trained, not where it is used: a run trained with "cuda", read on a machine without a GPU,
    gets "auto" (the CPU there) in its place, which ``load_config`` would otherwise refuse.
    The tables of mechanisms registered where it trained but not here, which it does not use,
    are left out (a hard run trained beside a mechanism of one's own loads without it)."""
    raw = _without_unused_tables(read_toml(path))
    train = raw.get("train")
    overrides = []
    if isinstance(train, dict) and train.get("device") == "cuda" and not torch.cuda.is_available():
        overrides.append("train.device=auto")
    return _config_from(path, apply_overrides(raw, overrides), overrides)

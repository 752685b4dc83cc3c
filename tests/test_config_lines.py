"""A config error names where its key was set: the file's line, or the command-line override
(``config_lines`` and its use by ``load_config`` and the command line)."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

from mtlshare.cli import main
from mtlshare.config import load_config, where
from mtlshare.config_lines import (
    covers,
    dotted,
    element_line,
    element_of,
    key_line,
    key_of,
    override_of,
    parts,
)
from mtlshare.errors import ConfigError, DataError, MissingDataFile, data_file
from mtlshare.registry import MECHANISMS, Entry

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "recipes" / "demo" / "demo.toml"

TEXT = """\
mechanism = "hard"   # line 1
tasks = ["t1"]

[train]
epochs = 3
note = \"\"\"
lr = not this one
\"\"\"
lr = 0.1

[compare.overrides.hierarchical]
"trunk.hidden" = [200,
  200]
"hierarchical.depths" = { pos = 1 }

[data.tasks.pos]
column = "pos"

[sparse]
depths.ner = 2
"""


@pytest.mark.parametrize(
    ("key", "line"),
    [
        (("mechanism",), 1),
        (("tasks",), 2),
        (("train",), 4),  # a table: its header
        (("train", "lr"), 9),  # not line 7, inside a multi-line string
        (("train", "momentum"), None),
        (("compare", "overrides", "hierarchical", "trunk.hidden"), 12),
        (("compare", "overrides", "hierarchical", "hierarchical.depths", "pos"), 14),
        (("data", "tasks", "pos", "column"), 17),
        (("sparse", "depths", "ner"), 20),  # a dotted key under a header
        (("sparse", "depths", "pos"), None),  # its holder is not set by a line of its own
        (("train", "patience"), None),  # not in the file: a default
        (("seed",), None),
    ],
)
def test_the_line_that_sets_a_key(key, line):
    assert key_line(TEXT, key) == line


def test_an_inline_table_or_array_that_holds_the_key_is_its_line():
    text = "[hierarchical]\ndepths = { pos = 1, ner = 2 }\n[[x.y]]\nz = 1\n"
    assert key_line(text, ("hierarchical", "depths", "ner")) == 2
    assert key_line(text, ("x", "y", "z")) == 4


@pytest.mark.parametrize(
    ("message", "key"),
    [
        ("train.lr: expected a number, got 'fast'", ("train", "lr")),
        ("unknown key train.epoch; allowed keys in [train]: ...", ("train", "epoch")),
        ("unknown key 'own'; allowed top-level keys: ...", ("own",)),
        ("sparse: set round_steps or round_epochs > 0", ("sparse",)),
        ("tasks: unknown task(s) ['t9']; the data's tasks are ['t1']", ("tasks",)),
        ("a folder, not a config file", None),
        ("expected key=value", None),
    ],
)
def test_the_key_a_message_names(message, key):
    assert key_of(message) == key


def test_the_override_of_a_key_is_the_last_that_sets_it_or_its_table_or_a_key_in_it():
    overrides = ["train.lr=1", "mechanism=sparse", "train.lr=2", "sparse={}"]
    assert override_of(overrides, ("train", "lr")) == "train.lr=2"
    assert override_of(overrides, ("sparse", "alpha")) == "sparse={}"
    assert override_of(["sparse.alpha=2"], ("sparse",)) == "sparse.alpha=2"
    assert override_of(overrides, ("train", "epochs")) is None
    assert override_of(["mechanism=sparse"], ("sparse", "alpha")) is None
    assert parts('a."b.c" . d') == ("a", "b.c", "d")


def _with(tmp_path: Path, old: str, new: str) -> Path:
    text = DEMO.read_text(encoding="utf-8")
    assert text.count(old) == 1
    path = tmp_path / "c.toml"
    path.write_text(text.replace(old, new), encoding="utf-8")
    return path


def _line_of(path: Path, start: str) -> int:
    lines = path.read_text(encoding="utf-8").splitlines()
    return next(i for i, line in enumerate(lines, 1) if line.startswith(start))


def test_a_bad_value_in_the_file_names_its_line(tmp_path):
    path = _with(tmp_path, "[train]\n", "[train]\nbatchsize = 4\n")
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert str(e.value).startswith(f"{path}:{_line_of(path, 'batchsize')}: unknown key train.")


def test_a_bad_override_is_named_not_the_file(tmp_path):
    path = _with(tmp_path, "\nlr = ", '\nlr = "fast"\n# was: lr = ')
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert str(e.value).startswith(f"{path}:{_line_of(path, 'lr')}: train.lr: expected")
    with pytest.raises(ConfigError) as e:  # the file's line is not at fault: the override is
        load_config(DEMO, ["train.lr=fast"])
    assert str(e.value).startswith(f"override 'train.lr=fast' (on {DEMO}): train.lr: expected")


def test_a_key_refused_while_the_model_is_built_names_its_line_or_override(tmp_path, capsys):
    path = _with(tmp_path, "[hard]\n", "[conditioned]\nlayer = 9\n\n[hard]\n")
    out = tmp_path / "run"
    assert main(["run", str(path), "--out", str(out), "mechanism=conditioned"]) == 2
    err = capsys.readouterr().err
    assert err == f"mtlshare: error: {path}:{_line_of(path, 'layer')}: conditioned.layer: " + (
        "must be in [0, 1], got 9\n"
    )
    args = ["run", str(DEMO), "--out", str(out), "mechanism=conditioned", "conditioned.layer=9"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"mtlshare: error: override 'conditioned.layer=9' (on {DEMO}): ")
    assert not out.exists()


def test_an_unknown_task_names_the_key(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", str(DEMO), "--out", str(out), 'tasks=["t9"]']) == 2
    assert capsys.readouterr().err == (
        f"mtlshare: error: override 'tasks=[\"t9\"]' (on {DEMO}): tasks: unknown task(s) "
        "['t9']; the data's tasks are ['t1', 't2']\n"
    )
    assert not out.exists()


@pytest.mark.parametrize(
    ("key", "says"),
    [
        ("data.source", "data.source: unknown data source 'nope'; choose one of "),
        ("mechanism", "mechanism: unknown mechanism 'nope'; choose one of hard, "),
        ("experiment", "experiment: unknown experiment 'nope'; choose one of "),
    ],
)
def test_an_unknown_component_names_its_key(key, says):
    with pytest.raises(ConfigError) as e:
        load_config(DEMO, [f"{key}=nope"])
    assert str(e.value).startswith(f"override '{key}=nope' (on {DEMO}): {says}")
    assert ("'custom' for a Problem" in str(e.value)) == (key == "data.source")


def test_on_the_command_line_an_override_s_error_is_named_once(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", str(DEMO), "--out", str(out), "train.epoch=1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(
        f"mtlshare: error: override 'train.epoch=1' (on {DEMO}): unknown key train.epoch; "
    )
    assert err.count(str(DEMO)) == 1 and err.count("\n") == 1


LAYOUTS = """\
[ compare . variants . my-row ]  # a header with spaces, a hyphen and a comment
mechanism = "soft"
'soft.penalty' = "l2"
note = \"\"\"one line\"\"\"
train . lr = 0.5

[train]
note = '''
first
lr = not this one
'''
lr = 0.1

[data]
sep = "'''"  # a one-line string holding a triple quote opens none
source = "conll"
"""


@pytest.mark.parametrize(
    ("key", "line"),
    [
        (("data", "source"), 16),
        (("compare", "variants", "my-row"), 1),
        (("compare", "variants", "my-row", "mechanism"), 2),
        (("compare", "variants", "my-row", "soft.penalty"), 3),  # a literal-string key
        (("compare", "variants", "my-row", "train", "lr"), 5),  # after a one-line """ string
        (("train", "lr"), 12),  # not line 10, inside a multi-line literal string
    ],
)
def test_the_line_of_a_key_in_other_layouts(key, line):
    assert key_line(LAYOUTS, key) == line


@pytest.mark.parametrize(
    ("message", "key"),
    [
        ("unknown key data.tasks.ner.colum; allowed: ...", ("data", "tasks", "ner", "colum")),
        ("compare.variants.my-row: x", ("compare", "variants", "my-row")),
        ("train.txt:12: a line with one column", None),  # a file's line, not a key
        ('compare.variants."hard+dwa": x', ("compare", "variants", "hard+dwa")),
    ],
)
def test_the_key_a_message_names_or_not(message, key):
    assert key_of(message) == key
    if key is not None:
        assert key_of(f"{dotted(key)}: x") == key


def test_an_override_is_found_with_spaces_around_its_key_and_an_equals_sign_in_its_value():
    assert override_of(["train.lr = 2"], ("train", "lr")) == "train.lr = 2"
    assert override_of(['tasks=["a=b"]'], ("tasks",)) == 'tasks=["a=b"]'
    with pytest.raises(ConfigError) as e:  # not the line of the file that sets train.lr
        load_config(DEMO, ["train.lr = fast"])
    assert str(e.value).startswith(f"override 'train.lr = fast' (on {DEMO}): train.lr: ")


def test_the_line_of_a_file_that_starts_with_a_byte_order_mark(tmp_path):
    text = DEMO.read_text(encoding="utf-8")
    path = tmp_path / "c.toml"
    path.write_text('\ufeffmechanism = "nope"\n' + text.replace('mechanism = "hard"\n', ""))
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert str(e.value).startswith(f"{path}:1: mechanism: unknown mechanism 'nope'")


def test_where_names_the_file_alone_when_it_cannot_read_it_or_the_message_names_no_key(tmp_path):
    gone = tmp_path / "gone.toml"
    assert where(gone, [], "train.lr: expected a number") == str(gone)
    assert where(DEMO, ["train.lr=1"], "a message naming no key") == str(DEMO)
    garbled = tmp_path / "garbled.toml"
    garbled.write_bytes(b"[train]\nlr = '\xff'\n")  # not UTF-8
    assert where(garbled, [], "train.lr: expected a number") == str(garbled)


def test_where_names_an_array_s_line_when_its_element_has_no_line_of_its_own(tmp_path):
    """An element the array's text does not show (past its end, or an array of tables) is
    named at the array's line; a key no line sets, at the file alone."""
    path = tmp_path / "c.toml"
    path.write_text(
        "[trunk]\nhidden = [64,\n  64]\n[[forecast.candidates]]\nname = 'a'\n", encoding="utf-8"
    )
    assert where(path, [], "trunk.hidden[1]: x") == f"{path}:3"
    assert where(path, [], "trunk.hidden[5]: x") == f"{path}:2"
    assert where(path, [], "forecast.candidates[0].name: x") == f"{path}:4"
    assert where(path, [], "soft.weights[0]: x") == str(path)


def test_a_data_source_s_error_also_offers_custom():
    with pytest.raises(ConfigError, match=r"; choose one of [a-z_, ]+\w, or 'custom' for a Pro"):
        load_config(DEMO, ["data.source=nope"])


def test_only_a_config_error_is_given_the_config_s_line_or_override():
    from argparse import Namespace

    from mtlshare.console import in_config
    from mtlshare.errors import DataError

    args = Namespace(config=str(DEMO), overrides=["train.lr=1"])
    assert in_config(DataError("train.lr: not a setting's error"), args) == (
        "train.lr: not a setting's error"
    )
    assert in_config(ConfigError("train.lr: refused"), args) == (
        f"override 'train.lr=1' (on {DEMO}): train.lr: refused"
    )


@pytest.mark.parametrize(
    ("table", "setting", "row", "says"),
    [
        (  # refused while the row's config is read
            "[compare.overrides.cross_stitch]",
            '"cross_stitch.self_weight" = 5.0',
            "cross_stitch",
            "compare.overrides.cross_stitch: cross_stitch.self_weight: must be in [0, 1]",
        ),
        (  # refused while the row's model is built
            "[compare.overrides.hierarchical]",
            '"hierarchical.depths" = { t1 = 5 }',
            "hierarchical",
            "compare.overrides.hierarchical: hierarchical.depths.t1: depth must be in [1, 2]",
        ),
        (  # a variant whose name is not a bare key
            '[compare.variants."soft+neg"]\nmechanism = "soft"',
            '"soft.weights" = [-1.0]',
            "soft+neg",
            'compare.variants."soft+neg": soft.weights: must be >= 0 and finite',
        ),
        (  # a key of the row's that cannot be set: no override of the user's
            "[compare.overrides.hard]",
            '"train..epochs" = 3',
            "hard",
            "compare.overrides.hard: train..epochs: empty part in the key",
        ),
        (
            "[compare.overrides.soft]",
            '"train.epochs.x" = 3',
            "soft",
            "compare.overrides.soft: train.epochs.x: 'epochs' is not a table",
        ),
        (  # the empty key, named as TOML writes it (": empty part" named no key, no table)
            "[compare.overrides.hard]",
            '"" = 3',
            "hard",
            'compare.overrides.hard: "": empty part in the key',
        ),
    ],
)
def test_a_compare_row_s_setting_names_its_table_not_the_line_the_other_rows_read(
    tmp_path, capsys, table, setting, row, says
):
    """The demo sets cross_stitch.self_weight, hierarchical.depths and soft.weights in their
    own tables, rightly: the comparison's error is about the row's [compare] table."""
    path = tmp_path / "c.toml"
    path.write_text(f"{DEMO.read_text(encoding='utf-8')}\n{table}\n{setting}\n", encoding="utf-8")
    out = tmp_path / "cmp"
    assert main(["compare", str(path), "--out", str(out), "--mechanisms", row]) == 2
    line = _line_of(path, table.splitlines()[0])
    assert capsys.readouterr().err.startswith(f"mtlshare: error: {path}:{line}: {says}")
    assert not out.exists()


def test_a_compare_row_s_setting_its_table_leaves_alone_is_the_file_s_line(tmp_path, capsys):
    path = _with(tmp_path, "depths = { t1 = 1 }", "depths = { t1 = 5 }")
    path.write_text(
        path.read_text(encoding="utf-8")
        + '\n[compare.overrides.hierarchical]\n"trunk.dropout" = 0.1\n',
        encoding="utf-8",
    )
    out = tmp_path / "c"
    assert main(["compare", str(path), "--out", str(out), "--mechanisms", "hierarchical"]) == 2
    line = _line_of(path, "depths")
    assert capsys.readouterr().err.startswith(
        f"mtlshare: error: {path}:{line}: hierarchical.depths.t1: depth must be in [1, 2]"
    )


def test_a_message_that_starts_with_key_equals_value_names_its_line_or_override(tmp_path):
    assert key_of("weighting.kind = 'gradnorm' combines every task's loss") == ("weighting", "kind")
    path = tmp_path / "c.toml"
    path.write_text(DEMO.read_text(encoding="utf-8") + '\n[weighting]\nkind = "gradnorm"\n')
    with pytest.raises(ConfigError) as e:
        load_config(path)
    last = len(path.read_text(encoding="utf-8").splitlines())  # the added `kind = "gradnorm"`
    assert str(e.value).startswith(f"{path}:{last}: weighting.kind = 'gradnorm'")
    with pytest.raises(ConfigError) as e:
        load_config(DEMO, ["weighting.kind=gradnorm"])
    assert str(e.value).startswith(f"override 'weighting.kind=gradnorm' (on {DEMO}): weighting.")


def test_an_element_of_an_array_is_the_key_that_holds_the_array():
    """An override or a line sets an array whole: its element's error names the array's key,
    whose line or override is then found (``trunk.hidden[1]`` named neither)."""
    keys = {
        "trunk.hidden[1]: expected an integer, got 'a'": ("trunk", "hidden"),
        "soft.weights[0]: expected a number, got 'a'": ("soft", "weights"),
        "own.grid[0][1]: expected an integer, got 'x'": ("own", "grid"),  # an array's array
        "conditioned.descriptors.t1[2]: expected a number": ("conditioned", "descriptors", "t1"),
        "forecast.candidates[0].name: a non-empty string": ("forecast", "candidates"),
        'compare.variants."a+b".x[3]: y': ("compare", "variants", "a+b", "x"),
        "trunk.hidden[10]: expected an integer": ("trunk", "hidden"),  # several digits
        "trunk.hidden[a]: x": None,  # not an element's index
        "trunk.hidden[1] x": None,
    }
    assert {message: key_of(message) for message in keys} == keys


def test_a_key_with_an_empty_part_keeps_it():
    """``Config.replace`` names a key it cannot set alone (``train..epochs: ...``): its parts,
    the empty one kept, are what a ``[compare]`` row's ``"train..epochs"`` covers."""
    keys = {
        "train..epochs: empty part in the key": ("train", "", "epochs"),
        ".epochs: empty part in the key": ("", "epochs"),
        "train.: empty part in the key": ("train", ""),
        '"": empty part in the key': ("",),  # the empty key, as TOML writes it
        "train..epochs x": None,
        "train.epochs.x: 'epochs' is not a table": ("train", "epochs", "x"),
    }
    assert {message: key_of(message) for message in keys} == keys
    assert covers("train..epochs", key_of("train..epochs: x") or ())
    assert not covers("train.epochs", key_of("train..epochs: x") or ())


ARRAYS = """\
one = [1, 2, 3]  # line 1
spread = [  # line 2
  "a, [b]",  # 'c', "d"
  ['e', "f\\"g"],
  { x = [1, 2], y = "]" },

  \"\"\"h
  ", i\"\"\", # line 8
  'c:\\', "j",
  'k'
]
last = [
  1,
]
table = { k = [1,
  2] }
"""


@pytest.mark.parametrize(
    ("line", "index", "found"),
    [
        (1, 0, 1),
        (1, 2, 1),
        (1, 3, None),  # no such element
        (2, 0, 3),  # commas, brackets and quotes in strings and comments are not counted
        (2, 1, 4),  # an array inside: one element, its own elements not counted
        (2, 2, 5),  # an inline table with an array and a "]" in it
        (2, 3, 7),  # a multi-line string, past an empty line
        (2, 4, 9),
        (2, 5, 9),
        (2, 6, 10),  # a literal string's backslash escapes nothing
        (2, 7, None),
        (12, 0, 13),
        (12, 1, None),  # past a trailing comma, the array's end is no element
        (15, 0, None),  # an inline table, not an array
        (3, 0, None),  # not a line that sets a key
        (99, 0, None),
    ],
)
def test_the_line_an_element_of_an_array_starts_on(line, index, found):
    assert element_line(ARRAYS, line, index) == found


ESCAPES = """\
a = [
  \"\"\"x
\\\"\"\" y\"\"\", "z",
  "w\\\\", "v",
  'u'
]
c = [
  \"\"\"x\"\"\"\",
  '''y''''', '''w'''', "z",
]
b = [1, 2]"""


@pytest.mark.parametrize(
    ("line", "index", "found"),
    [
        (7, 1, 9),  # a multi-line string ending in quotes: the last three close it
        (7, 2, 9),  # a literal one ending in one quote, as in two
        (7, 3, 9),
        (7, 4, None),
        (1, 1, 3),  # an escaped quote that starts a line of a multi-line string closes nothing
        (1, 2, 4),
        (1, 3, 4),  # an escaped backslash before a quote: the quote closes the string
        (1, 4, 5),
        (11, 1, 11),  # the file's last line, with no newline after it
    ],
)
def test_the_line_an_element_starts_on_past_backslashes_and_on_the_last_line(line, index, found):
    """Backslashes at a line's start or in pairs, quotes that end a multi-line string, and an
    array on the file's last line."""
    assert tomllib.loads(ESCAPES)["a"][2:4] == ["w\\", "v"]  # the text is TOML
    assert tomllib.loads(ESCAPES)["c"] == ['x"', "y''", "w'", "z"]
    assert element_line(ESCAPES, line, index) == found


def test_an_array_the_text_never_closes_has_no_element_past_its_last_line():
    """Text that is no longer the TOML that was read (the file edited since): an array left
    open at the end has the elements it shows, and none past the last line."""
    text = "hidden = [\n  8,\n  16,"
    assert [element_line(text, 1, i) for i in range(3)] == [2, 3, None]


@pytest.mark.parametrize(
    ("message", "index"),
    [
        ("trunk.hidden[1]: expected an integer", 1),
        ("own.grid[0][2]: x", 0),  # the outer array's
        ("trunk.hidden[12]: expected an integer", 12),  # an index of several digits
        ("forecast.candidates[0].name: a non-empty string", 0),
        ("forecast.candidates[3] ('wide'): data.context: too long", 3),
        ("trunk.hidden: expected a list", None),
        ("no key here", None),
    ],
)
def test_the_element_a_message_names(message, index):
    assert element_of(message) == index


def test_a_bad_element_of_an_array_names_the_override_that_set_it(capsys, tmp_path):
    for item in ('trunk.hidden=[64,"a"]', 'soft.weights=["a"]'):
        with pytest.raises(ConfigError) as e:
            load_config(DEMO, [item])
        assert str(e.value).startswith(f"override {item!r} (on {DEMO}): {item.split('=')[0]}[")
    out = tmp_path / "run"  # on the command line, named once
    assert main(["run", str(DEMO), "--out", str(out), 'trunk.hidden=[64,"a"]']) == 2
    assert capsys.readouterr().err == (
        f"mtlshare: error: override 'trunk.hidden=[64,\"a\"]' (on {DEMO}): trunk.hidden[1]: "
        "expected an integer, got 'a'\n"
    )
    assert not out.exists()


def test_a_bad_element_of_an_array_in_the_file_names_its_line(tmp_path):
    """The line the element is on: an array spanning lines is named at its bad element."""
    path = _with(tmp_path, "hidden = [64, 64]", 'hidden = [64,\n  "a"]')
    line = _line_of(path, "hidden") + 1
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert str(e.value) == f"{path}:{line}: trunk.hidden[1]: expected an integer, got 'a'"
    path = _with(tmp_path, "weights = [0.01]", 'weights = ["a"]')
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert str(e.value).startswith(f"{path}:{_line_of(path, 'weights')}: soft.weights[0]: ")


@dataclass
class _Tuples:
    """A mechanism of one's own with tuple fields, whose elements are named as a list's."""

    sizes: tuple[int, ...] = (1, 2)
    pair: tuple[int, str] = (0, "x")


def test_a_bad_element_of_a_tuple_names_its_line_or_override(tmp_path, monkeypatch):
    MECHANISMS.names()  # the library's own are registered before the planted one
    monkeypatch.setitem(MECHANISMS._entries, "own", Entry("own", object, _Tuples, "", ""))
    path = tmp_path / "c.toml"
    path.write_text(
        DEMO.read_text(encoding="utf-8") + "\n[own]\nsizes = [3, 4]\npair = [1, 2]\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert str(e.value) == (
        f"{path}:{_line_of(path, 'pair')}: own.pair[1]: expected a string, got 2"
    )
    with pytest.raises(ConfigError) as e:
        load_config(path, ['own.sizes=[1, "z"]', 'own.pair=[1, "y"]'])
    assert str(e.value) == (
        f"override 'own.sizes=[1, \"z\"]' (on {path}): own.sizes[1]: expected an integer, got 'z'"
    )


def test_a_data_file_is_read_from_the_config_s_folder_and_one_not_there_names_its_key(tmp_path):
    """``data_file``, which every data source reads its configured files through."""
    (tmp_path / "a.csv").write_text("x\n", encoding="utf-8")
    assert data_file("a.csv", tmp_path, "data.path") == tmp_path / "a.csv"
    assert data_file(str(tmp_path / "a.csv"), tmp_path / "no", "data.path") == tmp_path / "a.csv"
    with pytest.raises(MissingDataFile) as e:
        data_file("b.txt", str(tmp_path), "data.tasks.pos.train")
    assert str(e.value) == (
        f"data.tasks.pos.train: {tmp_path / 'b.txt'}: no such file (relative paths are read "
        f"from {tmp_path}: the config's folder, or the --data-dir of evaluate and predict)"
    )
    assert key_of(str(e.value)) == ("data", "tasks", "pos", "train")
    # a data error still, for Python that catches one; a config error, which gets its line
    assert isinstance(e.value, DataError) and isinstance(e.value, ConfigError)
    with pytest.raises(MissingDataFile) as e:  # an absolute path: no folder to name
        data_file(str(tmp_path / "b.txt"), tmp_path, "data.path")
    assert str(e.value) == f"data.path: {tmp_path / 'b.txt'}: no such file"


def test_a_data_file_without_a_folder_is_read_from_the_current_one_and_one_unstatable_is_left(
    tmp_path, monkeypatch
):
    """No ``base_dir`` (a config from a dict): a relative path is the current folder's; a
    path whose check itself fails (a name too long, a folder it may not enter) is returned for
    its reader to name the error, not called missing."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.csv").write_text("x\n", encoding="utf-8")
    assert data_file("a.csv", None, "data.path") == Path("a.csv")
    with pytest.raises(MissingDataFile, match=r"^data.path: b.csv: no such file$"):
        data_file("b.csv", None, "data.path")

    def refused(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "exists", refused)
    assert data_file("b.csv", tmp_path, "data.path") == tmp_path / "b.csv"


# a config of each data source that reads a file, naming files that are not there; the key
# of the first file it reads
SOURCES = {
    "conll": ('train = "data/train.txt"\ndev = "data/dev.txt"\ntest = "data/test.txt"\n', "train"),
    "table": (
        'path = "data/rows.csv"\nfeatures = ["a"]\n[data.tasks.y]\nkind = "regression"\n',
        "path",
    ),
    "daily_csv": ('path = "data/days.csv"\norigin = "2012-01-01"\n', "path"),
    "daily_windows": ('path = "data/days.csv"\norigin = "2012-01-01"\n', "path"),
}


@pytest.mark.parametrize("source", sorted(SOURCES))
def test_a_missing_data_file_names_its_line_or_override_and_the_folder_it_was_read_from(
    tmp_path, capsys, monkeypatch, source
):
    """An override's relative path is read from the config's folder, as the file's are: one
    typed from the current folder was 'no such file' naming neither the override nor where
    relative paths are read from."""
    text, key = SOURCES[source]
    path = tmp_path / "recipe" / "c.toml"
    path.parent.mkdir()
    path.write_text(f'[data]\nsource = "{source}"\n{text}', encoding="utf-8")
    folder = path.parent.resolve()
    read = (
        f"(relative paths are read from {folder}: the config's folder, or the --data-dir of "
        "evaluate and predict)"
    )
    given = text.split('"')[1]
    out = tmp_path / "run"
    assert main(["run", str(path), "--out", str(out)]) == 2
    assert capsys.readouterr().err == (
        f"mtlshare: error: {path}:3: data.{key}: {folder / given}: no such file {read}\n"
    )
    monkeypatch.chdir(tmp_path)  # a file there, named from there
    (tmp_path / "mine.txt").write_text("x\n", encoding="utf-8")
    assert main(["run", str(path), "--out", str(out), f"data.{key}=mine.txt"]) == 2
    assert capsys.readouterr().err == (
        f"mtlshare: error: override 'data.{key}=mine.txt' (on {path}): data.{key}: "
        f"{folder / 'mine.txt'}: no such file {read}\n"
    )
    assert not out.exists()

"""``data.embed``: a table's categorical column read as one id that the network turns into a
learned vector, not as a one-hot per category. The layout (with identity vectors the stem gives
the one-hot inputs to the bit), the width it saves, unseen categories, the refusals, the codec
spec (unchanged without ``embed``), predicting and evaluating a run, and that the vectors learn
what a category stands for; tests/app/test_table_run.py compares every mechanism and adds a task
with ``embed`` too."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

import mtlshare
import mtlshare.data.table as table_module
import mtlshare.data.table_codec as table_codec_module
from mtlshare.cli import main
from mtlshare.config import from_dict
from mtlshare.data.datasets import Problem
from mtlshare.data.table import table_problem
from mtlshare.data.table_codec import TableCodec, table_codec
from mtlshare.errors import ConfigError, DataError, MtlshareError
from mtlshare.models.table_stem import MOST_CATEGORIES, CategoryEmbeddings

USERS = 40


def write_rows(folder: Path, n: int = 400) -> Path:
    """``n`` rows: x1 = i mod 7, city cycling a, b, c, user u0..u39; price is the user's own
    level (3 per user id) plus x1; churn is whether the user's id is below 20."""
    lines = ["id,x1,city,user,price,churn"]
    for i in range(n):
        u = i % USERS
        churn = "yes" if u < 20 else "no"
        lines.append(f"r{i},{i % 7},{'abc'[i % 3]},u{u},{100 + 3 * u + i % 7},{churn}")
    path = folder / "table.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def data(path: Path, **changes: Any) -> dict[str, Any]:
    return {
        "source": "table",
        "path": str(path),
        "features": ["x1"],
        "categorical": ["city", "user"],
        "tasks": {
            "price": {"kind": "regression", "metric": "mae"},
            "churn": {"kind": "classification"},
        },
        **changes,
    }


def build(path: Path, **changes: Any) -> Problem:
    return table_problem(from_dict({"data": data(path, **changes)}).data)


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_rows(tmp_path_factory.mktemp("embed"))


def test_with_identity_vectors_the_stem_gives_the_one_hot_inputs_to_the_bit(table):
    hot, embedded = build(table), build(table, embed={"user": USERS})
    assert embedded.build_stem is not None and hot.build_stem is None
    stem = embedded.build_stem()
    assert isinstance(stem, CategoryEmbeddings) and stem.out_dim == embedded.input_dim
    with torch.no_grad():
        stem.tables[0].weight.zero_()
        stem.tables[0].weight[1:] = torch.eye(USERS)
    for td_hot, td_emb in zip(hot.tasks, embedded.tasks, strict=True):
        for split in ("train", "dev", "test"):
            x_hot, x_emb = getattr(td_hot, split).x, getattr(td_emb, split).x
            assert torch.equal(stem(x_emb), x_hot)
            y_hot, y_emb = getattr(td_hot, split).y, getattr(td_emb, split).y
            torch.testing.assert_close(y_emb, y_hot, rtol=0, atol=0, equal_nan=True)


def test_an_embedded_column_is_one_input_of_ids(table):
    problem = build(table, embed={"user": 5})
    x = problem.tasks[0].train.x
    assert problem.input_dim == 1 + 3 + 5  # x1, city's one-hot, user's vector
    assert x.shape[1] == 1 + 3 + 1
    assert problem.inference["features"] == ["x1", "city=a", "city=b", "city=c", "user"]
    assert problem.inference["embed"] == {"user": 5}
    ids = x[:, -1]
    assert ids.min() >= 1 and ids.max() <= USERS and torch.equal(ids, ids.round())
    # ids follow the sorted categories (u10 before u2), as a one-hot's columns do
    users = sorted(f"u{u}" for u in range(USERS))
    first = problem.meta["lines"]["train"][0] - 2  # the file's row of the first training row
    assert float(ids[0]) == users.index(f"u{first % USERS}") + 1


def test_two_embedded_columns_take_the_order_of_data_categorical(table):
    problem = build(table, embed={"user": 2, "city": 3})
    assert problem.inference["features"] == ["x1", "city", "user"]
    assert problem.inference["embed"] == {"city": 3, "user": 2}
    assert list(problem.inference["embed"]) == ["city", "user"]  # as written: the inputs' order
    stem = problem.build_stem()
    assert [t.num_embeddings for t in stem.tables] == [4, USERS + 1]
    assert stem(problem.tasks[0].train.x).shape[1] == problem.input_dim == 1 + 3 + 2
    assert stem.out_dim == problem.input_dim  # the width the trunk is built for


def test_a_codec_given_its_embed_in_another_order_reads_the_ids_in_data_categoricals():
    """``embed``'s own order (a codec built in Python, an edited ``inference.json``) is not
    the inputs': the ids follow ``categorical``, and so do the stem's tables."""
    categorical = {"city": ["a", "b", "c"], "user": ["u0", "u1"]}
    ordered = TableCodec({"x1": [0.0, 1.0]}, categorical, {"city": 3, "user": 2})
    swapped = TableCodec({"x1": [0.0, 1.0]}, categorical, {"user": 2, "city": 3})
    assert swapped.features == ordered.features == ["x1", "city", "user"]
    build_stem = swapped.build_stem()
    assert build_stem is not None
    assert [(t.num_embeddings, t.embedding_dim) for t in build_stem().tables] == [(4, 3), (3, 2)]


def test_without_embed_the_codec_spec_is_what_it_was(table):
    spec = build(table).inference
    assert list(spec) == ["codec", "numeric", "categorical", "features"]
    assert table_codec(spec) == TableCodec(spec["numeric"], spec["categorical"])
    embedded = build(table, embed={"user": 4}).inference
    assert table_codec(embedded).embed == {"user": 4}


def test_an_unseen_category_is_the_zero_vector_with_one_warning(table, tmp_path):
    problem = build(table, embed={"user": 4})
    codec = table_codec(problem.inference)
    source = tmp_path / "in.csv"
    source.write_text("x1,city,user\n1,a,u3\n2,b,stranger\n3,c,stranger\n")
    with pytest.warns(UserWarning) as caught:
        x = codec.read(source, "auto").x
    assert [str(w.message) for w in caught] == [
        f"{source}:3: column 'user' has 'stranger', a category no training row has: its "
        "vector is all zeros (2 such row(s))"
    ]
    assert x[:, -1].tolist() == [sorted(f"u{u}" for u in range(USERS)).index("u3") + 1, 0, 0]
    vectors = problem.build_stem()(x)[:, 4:]
    assert bool(vectors[0].abs().sum() > 0) and torch.equal(vectors[1:], torch.zeros(2, 4))


@pytest.mark.parametrize(
    "embed, message",
    [
        (
            {"x1": 4},
            "data.embed.x1: 'x1' is not a column of data.categorical; only a categorical column "
            "is read as a learned vector",
        ),
        *(
            (
                {"user": bad},
                f"data.embed.user: the vector's size must be a whole number from 1 to 4096, "
                f"got {bad!r}",
            )
            for bad in (0, 4097)
        ),
        ({"user": True}, "data.embed.user: expected an integer, got True"),
    ],
)
def test_a_bad_embed_names_the_key(table, embed, message):
    with pytest.raises(ConfigError) as e:
        build(table, embed=embed)
    assert str(e.value) == message


@pytest.mark.parametrize("size", [True, 1.5])
def test_an_embed_size_from_python_that_is_not_a_whole_number_is_refused(table, size):
    cfg = from_dict({"data": data(table)}).data
    cfg.embed = {"user": size}
    with pytest.raises(ConfigError, match=r"data\.embed\.user: the vector's size must be"):
        table_problem(cfg)


def test_the_largest_vector_size_is_taken(table):
    assert build(table, embed={"user": 4096}).input_dim == 1 + 3 + 4096


def test_only_an_embedded_column_is_refused_for_more_categories_than_an_id_holds(
    table, monkeypatch
):
    """An id is a float32 input: ``data.embed`` reads at most ``MOST_CATEGORIES`` (2**24 - 1,
    here made 40, then 39); a one-hot column has no such bound."""
    monkeypatch.setattr(table_module, "MOST_CATEGORIES", USERS)
    assert build(table, embed={"user": 4}).input_dim == 1 + 3 + 4
    monkeypatch.setattr(table_module, "MOST_CATEGORIES", USERS - 1)
    said = "feature 'user' has 40 categories on the training rows; data.embed reads at most 39"
    with pytest.raises(DataError, match=said):
        build(table, embed={"user": 4})
    assert build(table).input_dim == 1 + 3 + USERS


def test_every_id_up_to_the_most_categories_is_exact_in_a_float32_input():
    largest = torch.tensor([MOST_CATEGORIES, MOST_CATEGORIES - 1], dtype=torch.float32)
    assert largest.long().tolist() == [MOST_CATEGORIES, MOST_CATEGORIES - 1]


def test_the_stem_gives_its_rows_in_the_dtype_of_its_vectors():
    stem = CategoryEmbeddings(2, [(3, 4)]).to(torch.bfloat16)
    out = stem(torch.tensor([[0.5, -1.0, 2.0]]))
    assert out.dtype == torch.bfloat16 and out.shape == (1, 2 + 4)


@pytest.mark.parametrize(
    "embed",
    [[1], None, {"user": 1.5}, {"user": "8"}, {"user": True}, {"user": 0}, {"user": 4097}],
)
def test_a_damaged_embed_in_a_codec_spec_is_a_type_error(table, embed):
    spec = build(table, embed={"user": 4}).inference
    spec["embed"] = embed
    with pytest.raises(TypeError, match="embed: "):
        table_codec(spec)


def test_an_embedded_column_of_more_categories_than_an_id_holds_is_a_type_error(table, monkeypatch):
    spec = build(table, embed={"user": 4}).inference
    assert table_codec(spec).embed == {"user": 4}
    monkeypatch.setattr(table_codec_module, "MOST_CATEGORIES", USERS - 1)
    with pytest.raises(TypeError, match="embed: "):
        table_codec(spec)


def test_an_embed_of_a_column_the_spec_lacks_is_a_type_error(table):
    spec = build(table, embed={"user": 4}).inference
    spec["embed"] = {"shop": 4}
    with pytest.raises(TypeError, match="embed: "):
        table_codec(spec)


CONFIG = """
mechanism = "hard"
[data]
source = "table"
path = "table.csv"
features = ["x1"]
categorical = ["city", "user"]
embed = {{ user = {size} }}
[data.tasks.price]
kind = "regression"
metric = "mae"
[data.tasks.churn]
kind = "classification"
[trunk]
hidden = [16]
[train]
epochs = {epochs}
batch_size = 16
lr = 0.01
[sparse]
round_steps = 2
"""


@pytest.fixture(scope="module")
def folder(table: Path) -> Path:
    home = table.parent
    (home / "run.toml").write_text(CONFIG.format(size=4, epochs=3))
    return home


@pytest.fixture(scope="module")
def embed_run(folder: Path) -> Path:
    out = folder / "run"
    assert main(["run", str(folder / "run.toml"), "--out", str(out), "--quiet"]) == 0
    return out


def test_predict_and_evaluate_read_the_run_back(embed_run, folder, tmp_path):
    spec = json.loads((embed_run / "inference.json").read_text())
    assert spec["input_dim"] == 1 + 3 + 4 and spec["codec"]["embed"] == {"user": 4}
    results = json.loads((embed_run / "results.json").read_text())
    params = results["params"]
    assert params["total"] - params["counted"] >= (USERS + 1) * 4  # the vectors: not counted
    scores = mtlshare.evaluate(embed_run)
    for task in ("price", "churn"):
        assert scores[task]["test"] == pytest.approx(results["tasks"][task]["test"], rel=1e-6)
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    source.write_text("user,x1,city\nu3,2,b\nu30,6,a\n")
    assert main(["predict", str(embed_run), str(source), "--out", str(out)]) == 0
    with open(out) as f:
        written = list(csv.DictReader(f))
    run = mtlshare.load_run(embed_run)
    x = run.codec.read(source, "auto").x
    assert x.shape == (2, 5)
    price = run.predict("price", x)
    cells = [float(w["predicted_price"]) for w in written]  # float32s, read back exactly
    assert torch.equal(torch.tensor(cells, dtype=torch.float32), price)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda x: x[:, :4], "x: shape (2, 4); this run reads 5 features"),
        (
            lambda x: torch.cat([x[:, :4], torch.tensor([[3.0], [41.0]])], 1),
            "x: row 1, input 4 ('user') is 41.0, not the id of one of its 40 categories "
            "(run.codec.encode makes them)",
        ),
        (
            lambda x: torch.cat([x[:, :4], torch.tensor([[2.5], [1.0]])], 1),
            "x: row 0, input 4 ('user') is 2.5, not the id of one of its 40 categories "
            "(run.codec.encode makes them)",
        ),
        (
            lambda x: torch.cat([x[:, :4], torch.tensor([[2.0], [-1.0]])], 1),
            "x: row 1, input 4 ('user') is -1.0, not the id of one of its 40 categories "
            "(run.codec.encode makes them)",
        ),
        (lambda x: x.long(), "x: torch.int64; this run reads torch.float32 features"),
    ],
    ids=["narrow", "id too large", "not whole", "negative", "ids as longs"],
)
def test_inputs_a_run_cannot_read_are_one_line(embed_run, tmp_path, change, message):
    source = tmp_path / "in.csv"
    source.write_text("user,x1,city\nu3,2,b\nu30,6,a\n")
    run = mtlshare.load_run(embed_run)
    x = run.codec.read(source, "auto").x
    with pytest.raises(MtlshareError) as e:
        run.predict("price", change(x))
    assert str(e.value) == message


def test_each_embedded_column_is_checked_against_its_own_categories():
    """Of two embedded columns, a bad id in the second is named there, the ids of an unseen
    category (0) and of each column's last category are taken, and one past it is not."""
    codec = TableCodec(
        {"x1": [0.0, 1.0]}, {"city": ["a", "b", "c"], "user": ["u0", "u1"]}, {"city": 3, "user": 2}
    )
    assert codec.input_error(torch.tensor([[0.5, 0.0, 0.0], [1.0, 3.0, 2.0]])) is None
    assert codec.input_error(torch.tensor([[0.5, 1.0, 2.0], [1.0, 2.0, 3.0]])) == (
        "row 1, input 2 ('user') is 3.0, not the id of one of its 2 categories "
        "(run.codec.encode makes them)"
    )
    assert codec.input_error(torch.tensor([[0.5, 4.0, 1.0]])) == (
        "row 0, input 1 ('city') is 4.0, not the id of one of its 3 categories "
        "(run.codec.encode makes them)"
    )


def test_a_damaged_embed_in_inference_json_is_one_line(embed_run, tmp_path, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(embed_run, copy)
    spec = json.loads((copy / "inference.json").read_text())
    spec["codec"]["embed"] = {"user": "4"}
    (copy / "inference.json").write_text(json.dumps(spec))
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    source.write_text("user,x1,city\nu3,2,b\n")
    capsys.readouterr()
    assert main(["predict", str(copy), str(source), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "the 'table' codec's description is damaged" in err[0]
    assert "embed: " in err[0] and not out.exists()


def test_the_vectors_learn_what_a_category_stands_for(folder, tmp_path):
    """Price is the user's own level: a network that reads the user's vector beats one that
    cannot tell the users apart (the same network with ``user`` left out) several times over."""
    config = tmp_path / "run.toml"
    config.write_text(
        CONFIG.format(size=4, epochs=40).replace(
            'path = "table.csv"', f'path = "{folder / "table.csv"}"'
        )
    )
    maes = {}
    for name, extra in (("embed", []), ("blind", ["data.categorical=['city']", "data.embed={}"])):
        out = tmp_path / name
        assert (
            main(["run", str(config), "--out", str(out), "--quiet", "tasks=['price']", *extra]) == 0
        )
        maes[name] = json.loads((out / "results.json").read_text())["tasks"]["price"]["test"]
    assert maes["embed"] < maes["blind"] / 3, maes


@pytest.mark.parametrize("kind", ["lstm", "gru", "conv"])
def test_a_sequence_trunk_on_embedded_rows_is_one_line_and_no_folder(
    folder, tmp_path, capsys, kind
):
    out = tmp_path / kind
    capsys.readouterr()
    assert main(["run", str(folder / "run.toml"), "--out", str(out), f"trunk.kind={kind}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    said = f"trunk.kind = {kind!r} reads sequences (batch, time, features)"
    assert len(err) == 1 and said in err[0], err
    assert "use trunk.kind = 'mlp'" in err[0] and not out.exists()


def test_a_float64_run_reads_back_the_rows_its_codec_makes(folder, tmp_path):
    """The codec makes float32 rows; under a float64 default the vectors, and so the network,
    are float64: the stem casts the rows, and predict takes them (it refused them before)."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        out = tmp_path / "f64"
        assert main(["run", str(folder / "run.toml"), "--out", str(out), "--quiet"]) == 0
        run = mtlshare.load_run(out)
        source = tmp_path / "in.csv"
        source.write_text("user,x1,city\nu3,2,b\nu30,6,a\n")
        x = run.codec.read(source, "auto").x
        assert x.dtype == torch.float32
        price = run.predict("price", x)
        assert price.dtype == torch.float64 and torch.equal(price, run.predict("price", x.double()))
    finally:
        torch.set_default_dtype(before)


@pytest.mark.parametrize(
    "embed, reads",
    [({"user": 5}, 9), ({"user": 3}, 7), ({"city": 4}, 45), ({}, 44), (None, 44)],
    ids=["another size", "a smaller size", "another column", "emptied", "removed"],
)
def test_an_edited_embed_in_inference_json_names_the_file(
    embed_run, tmp_path, capsys, embed, reads
):
    """Sizes of the right type but not the run's: the checkpoint would not fit, and the line
    said so of config.toml, which nobody had edited."""
    copy = tmp_path / "copy"
    shutil.copytree(embed_run, copy)
    spec = json.loads((copy / "inference.json").read_text())
    if embed is None:
        del spec["codec"]["embed"]
    else:
        spec["codec"]["embed"] = embed
    (copy / "inference.json").write_text(json.dumps(spec))
    with pytest.raises(MtlshareError) as e:
        mtlshare.load_run(copy)
    assert str(e.value) == (
        f"{copy / 'inference.json'}: its codec gives the network {reads} inputs, but its "
        "input_dim is 8 (the file is not as the run wrote it)"
    )

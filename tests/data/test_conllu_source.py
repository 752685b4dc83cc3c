"""The ``conll`` data source reading CoNLL-U (``data.format = "conllu"``): the ten UD columns
in place of ``columns``, ``word_column`` "word" read as FORM, tasks of their own corpora in
either format, error lines that are the file's, a config written before the key resuming, and
a model trained on a CoNLL-U copy of a CoNLL-2003 slice equal to one trained on the slice."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch

from mtlshare.app.build import build_problem
from mtlshare.app.run import run
from mtlshare.cli import main
from mtlshare.config import config_differences, load_config, same_config
from mtlshare.data.conllu import UD_COLUMNS
from mtlshare.data.tagging import ConllConfig
from mtlshare.errors import ConfigError, DataError, UnseenTagsWarning
from mtlshare.training.checkpoint import load_checkpoint


def ud(*sentences: list[tuple[str, str, str, str]], extras: bool = True) -> str:
    """A CoNLL-U text of sentences of (FORM, UPOS, XPOS, DEPREL) words; with ``extras`` a
    comment before each, a multiword range before the first two words and an empty node after
    the first word of each sentence (all to be skipped)."""
    out = []
    for k, words in enumerate(sentences, start=1):
        if extras:
            out += [f"# sent_id = {k}", "# text = " + " ".join(w[0] for w in words)]
        for i, (form, upos, xpos, deprel) in enumerate(words, start=1):
            if extras and i == 1 and len(words) > 1:
                out.append(f"1-2\t{form}{words[1][0]}\t_\t_\t_\t_\t_\t_\t_\t_")
            out.append(f"{i}\t{form}\t{form.lower()}\t{upos}\t{xpos}\t_\t0\t{deprel}\t_\t_")
            if extras and i == 1:
                out.append(f"1.1\t{form}\t_\t_\t_\t_\t_\t_\t_\t_")
        out.append("")
    return "\n".join(out) + "\n"


TRAIN = ud(
    [("The", "DET", "DT", "det"), ("cat", "NOUN", "NN", "nsubj"), ("sat", "VERB", "VBD", "root")],
    [("New York", "PROPN", "NNP", "root"), ("!", "PUNCT", ".", "punct")],
    [("Dogs", "NOUN", "NNS", "nsubj"), ("bark", "VERB", "VBP", "root")],
)
DEV = ud([("The", "DET", "DT", "det"), ("dog", "NOUN", "NN", "root")])
TEST = ud(
    [("A", "DET", "DT", "det"), ("cat", "NOUN", "NN", "nsubj"), ("ran", "VERB", "VBD", "root")]
)
CONFIG = """
[data]
source = "conll"
format = "conllu"
train = "train.conllu"
dev = "dev.conllu"
test = "test.conllu"
word_dim = 8
char_dim = 4
char_filters = 4
unseen_tags = "map"
[data.tasks.upos]
column = "upos"
[data.tasks.xpos]
column = "xpos"
[data.tasks.deprel]
column = "deprel"
[trunk]
kind = "lstm"
hidden = [8]
[train]
epochs = 1
batch_size = 2
threads = 1
"""


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    for name, text in (("train", TRAIN), ("dev", DEV), ("test", TEST)):
        (tmp_path / f"{name}.conllu").write_text(text, encoding="utf-8")
    (tmp_path / "run.toml").write_text(CONFIG, encoding="utf-8")
    return tmp_path


def problem(corpus: Path, *overrides: str):
    return build_problem(load_config(corpus / "run.toml", list(overrides)), corpus)


def test_tasks_read_the_ud_columns_and_the_words_are_the_forms(corpus):
    p = problem(corpus)
    upos, xpos, deprel = p.tasks
    assert upos.task.labels == ("NOUN", "VERB", "DET", "PROPN", "PUNCT")
    assert set(xpos.task.labels) == {"DT", "NN", "VBD", "NNP", ".", "NNS", "VBP"}
    assert set(deprel.task.labels) == {"det", "nsubj", "root", "punct"}
    assert upos.train.lengths.tolist() == [3, 2, 2]  # ranges and empty nodes are no words
    codec = p.inference
    assert codec["format"] == "conllu" and codec["word_column"] == "form"
    assert codec["columns"] == list(UD_COLUMNS)
    assert "New York" in codec["words"] and "TheThe" not in codec["words"]  # no range FORM
    assert codec["tasks"]["upos"] == {"kind": "tags", "scheme": "", "encode": "", "column": "upos"}
    assert codec["layouts"] == [
        {"columns": codec["columns"], "word_column": "form", "format": "conllu"}
    ]


def test_the_word_column_may_be_another_ud_column(corpus):
    codec = problem(corpus, "data.word_column=lemma").inference
    assert codec["word_column"] == "lemma" and "new york" in codec["words"]
    assert "New York" not in codec["words"]
    # the ten names written out are the default columns
    names = '["id","form","lemma","upos","xpos","feats","head","deprel","deps","misc"]'
    assert problem(corpus, f"data.columns={names}").inference == problem(corpus).inference


def test_a_column_of_one_tag_is_said_to_teach_nothing(corpus):
    """FEATS is '_' on every word here, as XPOS is in some treebanks: a task on it scores 1.0
    having learnt nothing (a new user's trial trained one without a word said)."""
    with pytest.warns(UserWarning) as caught:
        problem(corpus, "data.tasks.upos.column=feats")
    said = [str(w.message) for w in caught if "holds one tag" in str(w.message)]
    assert len(said) == 1 and said[0].endswith(
        "train.conllu: task 'upos': column 'feats' holds one tag ('_') on every training "
        "token: the task has nothing to learn and its score says nothing (a column the corpus "
        "leaves empty, '_'?)"
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*holds one tag")
        problem(corpus)  # UPOS has several


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("data.format=conllx", "data.format: 'conllx' is not one of conll, conllu"),
        (
            'data.columns=["word","pos"]',
            "data.columns: a conllu file has the ten CoNLL-U columns id, form, lemma, upos, xpos, "
            "feats, head, deprel, deps, misc; leave columns unset (or name those ten), got "
            "['word', 'pos']",
        ),
        (
            "data.word_column=token",
            "data.word_column: 'token' is not a CoNLL-U column (id, form, lemma, upos, xpos, "
            "feats, head, deprel, deps, misc)",
        ),
        (
            "data.tasks.upos.column=pos",
            "data.tasks.upos.column: no column named 'pos'; columns are ['id', 'form', 'lemma', "
            "'upos', 'xpos', 'feats', 'head', 'deprel', 'deps', 'misc']",
        ),
        (  # a CoNLL-U config without its format: the columns are CoNLL-2003's defaults
            "data.format=conll",
            "data.tasks.upos.column: no column named 'upos'; columns are ['word', 'pos', "
            "'chunk', 'ner']; a CoNLL-U file? set format = \"conllu\" (data.format)",
        ),
    ],
)
def test_bad_settings_are_one_line_config_errors(corpus, override, message):
    with pytest.raises(ConfigError) as caught:
        problem(corpus, override)
    assert str(caught.value) == message


def test_a_task_reads_its_own_corpus_in_either_format(corpus):
    (corpus / "ner.txt").write_text("EU NNP B-ORG\nrejects VBZ O\n\nPeter NNP B-PER\n", "utf-8")
    # a CoNLL task under CoNLL-U [data]: its columns default as [data]'s do in CoNLL
    own = '{ column = "ner", scheme = "iob2", train = "ner.txt", dev = "ner.txt", test = "ner.txt"'
    p = problem(
        corpus, f"data.tasks.ner={own}, format = 'conll', columns = ['word','pos','ner'] }}"
    )
    assert [td.task.name for td in p.tasks] == ["upos", "xpos", "deprel", "ner"]
    assert p.tasks[3].task.labels == ("B-ORG", "O", "B-PER")
    assert p.inference["layouts"][1] == {"columns": ["word", "pos", "ner"], "word_column": "word"}
    # a CoNLL-U task under CoNLL [data] (the CoNLL-2003 layout, read for a task of its own)
    conll = CONFIG.replace('format = "conllu"\n', "").replace("train.conllu", "ner.txt")
    conll = conll.replace("dev.conllu", "ner.txt").replace("test.conllu", "ner.txt")
    conll = conll.split("[data.tasks.upos]")[0] + (
        '[data.tasks.ner]\ncolumn = 2\n[data.tasks.upos]\ncolumn = "upos"\nformat = "conllu"\n'
        'train = "train.conllu"\ndev = "dev.conllu"\ntest = "test.conllu"\n'
        + "[trunk]"
        + CONFIG.split("[trunk]")[1]
    )
    (corpus / "mixed.toml").write_text(conll, encoding="utf-8")
    cfg = load_config(corpus / "mixed.toml", ['data.columns=["word","pos","ner"]'])
    p = build_problem(cfg, corpus)
    assert p.tasks[1].task.labels == ("NOUN", "VERB", "DET", "PROPN", "PUNCT")
    assert "New York" in p.inference["words"] and "Peter" in p.inference["words"]
    assert "format" not in p.inference  # the shared files are CoNLL
    # a format of its own needs files of its own
    with pytest.raises(ConfigError, match=r"data\.tasks\.upos\.format: a task's own corpus starts"):
        problem(corpus, 'data.tasks.upos={ column = "upos", format = "conllu" }')
    with pytest.raises(ConfigError, match=r"data\.tasks\.ner\.format: 'ud' is not one of"):
        problem(corpus, f"data.tasks.ner={own}, format = 'ud' }}")


def test_a_task_s_own_corpus_takes_the_format_and_layout_of_data_where_it_names_none(corpus):
    """A task's own files without ``format`` are in ``[data]``'s format, and without
    ``columns`` or ``word_column`` take ``[data]``'s where the formats agree; in the other
    format they default as ``[data]``'s own do (for CoNLL-U: the ten columns, FORM)."""
    (corpus / "own.conllu").write_text(TRAIN, encoding="utf-8")
    own = 'train = "own.conllu", dev = "own.conllu", test = "own.conllu" }'
    p = problem(corpus, "data.word_column=lemma", f'data.tasks.own={{ column = "upos", {own}')
    assert p.inference["layouts"][-1] == {
        "columns": list(UD_COLUMNS),
        "word_column": "lemma",
        "format": "conllu",
    }
    # CoNLL [data] of its own columns: a CoNLL task's files read them; a CoNLL-U task's FORM
    (corpus / "ner.txt").write_text("EU NNP B-ORG\nrejects VBZ O\n\nPeter NNP B-PER\n", "utf-8")
    conll = CONFIG.replace('format = "conllu"\n', 'columns = ["w", "pos", "ner"]\n')
    conll = conll.replace('source = "conll"', 'source = "conll"\nword_column = "w"')
    for name in ("train", "dev", "test"):
        conll = conll.replace(f"{name}.conllu", "ner.txt", 1)
    conll = conll.split("[data.tasks.upos]")[0] + (
        '[data.tasks.ner]\ncolumn = "ner"\nscheme = "iob2"\n'
        'train = "ner.txt"\ndev = "ner.txt"\ntest = "ner.txt"\n'
        '[data.tasks.upos]\ncolumn = "upos"\nformat = "conllu"\n'
        'train = "train.conllu"\ndev = "dev.conllu"\ntest = "test.conllu"\n'
        "[trunk]" + CONFIG.split("[trunk]")[1]
    )
    (corpus / "mixed.toml").write_text(conll, encoding="utf-8")
    p = build_problem(load_config(corpus / "mixed.toml"), corpus)
    assert [td.task.name for td in p.tasks] == ["ner", "upos"]
    assert p.inference["layouts"] == [
        {"columns": ["w", "pos", "ner"], "word_column": "w"},
        {"columns": list(UD_COLUMNS), "word_column": "form", "format": "conllu"},
    ]
    # a CoNLL task's entry is the one runs trained before CoNLL-U wrote (evaluate compares it)
    assert p.inference["tasks"]["ner"] == {"kind": "tags", "scheme": "iob2", "encode": "iob2"}
    assert p.inference["tasks"]["upos"]["column"] == "upos"
    with pytest.raises(ConfigError) as caught:
        build_problem(load_config(corpus / "mixed.toml", ["data.tasks.ner.word_column=token"]))
    assert str(caught.value) == (
        "data.tasks.ner.word_column: 'token' is not one of columns ['w', 'pos', 'ner']"
    )


def test_errors_name_the_file_s_own_lines(corpus):
    # the unseen tag's word sits after a comment, a range and an empty node
    (corpus / "dev.conllu").write_text(DEV.replace("NOUN", "X"), encoding="utf-8")
    lines = (corpus / "dev.conllu").read_text().splitlines()
    line = next(n for n, text in enumerate(lines, start=1) if "\tX\t" in text)
    assert line == 6
    with pytest.raises(DataError) as caught:
        problem(corpus, "data.unseen_tags=error")
    assert str(caught.value) == (
        f"{corpus / 'dev.conllu'}:6: task 'upos': tag 'X' never occurs in the training file "
        "(set data.unseen_tags = 'map' to map it)"
    )
    (corpus / "test.conllu").write_text("# c\n1\tword\t_\n", encoding="utf-8")
    with pytest.raises(DataError) as caught:
        problem(corpus)
    assert str(caught.value) == (
        f"{corpus / 'test.conllu'}:2: 3 TAB-separated fields where a CoNLL-U token line has 10"
    )
    # a CoNLL-U file read as CoNLL (the default) fails at its first comment, as it always did
    with pytest.raises(
        DataError, match=r"train\.conllu:2: 6 columns where every token line has 4$"
    ):
        problem(corpus, "data.format=conll", 'data.tasks={ x = { column = "word" } }')


def test_a_span_tag_error_and_the_unseen_tag_warning_name_the_file_s_own_lines(corpus):
    """Token i is not on line ``line + i`` where a range and an empty node sit between the
    words: the second word of each sentence below is on its line 6, not 5."""
    (corpus / "dev.conllu").write_text(DEV.replace("NOUN", "X"), encoding="utf-8")
    with pytest.warns(UnseenTagsWarning) as caught:
        problem(corpus)  # unseen_tags = "map"
    assert [str(w.message).split(": task")[0] for w in caught if "'upos'" in str(w.message)] == [
        f"{corpus / 'dev.conllu'}:6"
    ]
    spans = ud([("a", "O", "O", "x"), ("b", "X", "Y", "x")])
    (corpus / "train.conllu").write_text(spans, encoding="utf-8")
    with pytest.raises(DataError) as error:
        problem(corpus, 'data.tasks={ chunk = { column = "upos", scheme = "iob2" } }')
    assert str(error.value).startswith(f"{corpus / 'train.conllu'}:6: task 'chunk': tag 'X'")


def test_the_default_format_is_conll_and_configs_without_the_key_still_resume(tmp_path, corpus):
    assert ConllConfig().format == "conll"
    assert ConllConfig().columns == ["word", "pos", "chunk", "ner"]
    assert ConllConfig().word_column == "word"
    conll = CONFIG.replace('format = "conllu"\n', "").replace(".conllu", ".txt")
    conll = conll.split("[data.tasks.upos]")[0] + '[data.tasks.pos]\ncolumn = "pos"\n[trunk]'
    conll += CONFIG.split("[trunk]")[1]
    (corpus / "train.txt").write_text("The DT\ncat NN\n\nA DT\ndog NN\n", "utf-8")
    (corpus / "dev.txt").write_text("The DT\ndog NN\n", "utf-8")
    (corpus / "test.txt").write_text("A DT\ncat NN\n", "utf-8")
    (corpus / "conll.toml").write_text(conll, encoding="utf-8")
    out = tmp_path / "run"
    argv = ["run", str(corpus / "conll.toml"), 'data.columns=["word","pos"]', "--quiet"]
    assert main([*argv, "--out", str(out)]) == 0
    saved = (out / "config.toml").read_text(encoding="utf-8")
    assert 'format = "conll"\n' in saved
    # the config.toml of a run trained before the key existed
    older = saved.replace('format = "conll"\n', "")
    assert older != saved and same_config(older, saved) and config_differences(older, saved) == []
    (out / "config.toml").write_text(older, encoding="utf-8")
    assert main([*argv, "--out", str(out), "--resume"]) == 0
    # while a config that reads CoNLL-U is another config
    assert config_differences(older, saved.replace('format = "conll"', 'format = "conllu"')) == [
        "data.format: 'conll' in the run, 'conllu' now"
    ]


# -- a CoNLL-U copy of a CoNLL-2003 slice trains the same model as the slice -------------------
DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "conll2003"
needs_conll = pytest.mark.skipif(
    not (DATA / "train.txt").is_file(),
    reason=f"the real CoNLL-2003 files are not at {DATA} (../shared/data beside the repository)",
)


def conll_slice(source: Path, n: int) -> str:
    """The first ``n`` sentences of a CoNLL-2003 file, ``-DOCSTART-`` lines kept."""
    kept: list[str] = []
    count = 0
    for line in source.read_text(encoding="utf-8").split("\n"):
        if not line.split() and kept and kept[-1].split() and kept[-1].split()[0] != "-DOCSTART-":
            count += 1
            if count >= n:
                break
        kept.append(line)
    return "\n".join(kept) + "\n"


def as_conllu(conll: str) -> str:
    """A CoNLL-2003 text as CoNLL-U: word -> FORM, POS -> UPOS, chunk -> XPOS, NER -> DEPREL;
    a document marker becomes a ``# newdoc`` comment; each sentence gets comments, and every
    other one a multiword range over its first two words and an empty node after its first."""
    out: list[str] = []
    words: list[list[str]] = []
    k = 0

    def close() -> None:
        nonlocal k
        if not words:
            return
        k += 1
        out.extend([f"# sent_id = {k}", "# text = " + " ".join(w[0] for w in words)])
        for i, (word, pos, chunk, ner) in enumerate(words, start=1):
            if k % 2 and i == 1 and len(words) > 1:
                out.append(f"1-2\t{word}{words[1][0]}\t_\t_\t_\t_\t_\t_\t_\tSpaceAfter=No")
            out.append(f"{i}\t{word}\t_\t{pos}\t{chunk}\t_\t{i - 1}\t{ner}\t_\t_")
            if k % 2 and i == 1:
                out.append(f"1.1\t{word}\t_\t_\t_\t_\t_\tdep\t_\t_")
        out.append("")
        words.clear()

    for line in conll.split("\n"):
        fields = line.split()
        if not fields:
            close()
        elif fields[0] == "-DOCSTART-":
            close()
            out.append("# newdoc")
        else:
            words.append(fields)
    close()
    return "\n".join(out) + "\n"


EQUIVALENT = """
mechanism = "hard"
seed = 3
[data]
source = "conll"
train = "train.{ext}"
dev = "dev.{ext}"
test = "test.{ext}"
{layout}
word_dim = 8
char_dim = 4
char_filters = 4
unseen_tags = "map"
[data.tasks.pos]
column = "{pos}"
[data.tasks.chunk]
column = "{chunk}"
scheme = "iob2"
[data.tasks.ner]
column = "{ner}"
scheme = "iob2"
encode = "bioes"
[trunk]
kind = "lstm"
hidden = [8]
bidirectional = true
[train]
epochs = 2
batch_size = 8
threads = 1
"""


@needs_conll
def test_a_conllu_copy_of_conll2003_trains_the_same_model(tmp_path):
    results, weights = [], []
    for ext, layout, columns in (
        ("txt", "", ("pos", "chunk", "ner")),
        ("conllu", 'format = "conllu"', ("upos", "xpos", "deprel")),
    ):
        folder = tmp_path / ext
        folder.mkdir()
        for split, n in (("train", 40), ("dev", 15), ("test", 15)):
            text = conll_slice(DATA / f"{split}.txt", n)
            (folder / f"{split}.{ext}").write_text(
                as_conllu(text) if ext == "conllu" else text, encoding="utf-8"
            )
        pos, chunk, ner = columns
        config = EQUIVALENT.format(ext=ext, layout=layout, pos=pos, chunk=chunk, ner=ner)
        (folder / "run.toml").write_text(config, encoding="utf-8")
        cfg = load_config(folder / "run.toml")
        with pytest.warns(UserWarning, match="never seen in training"):
            results.append(run(cfg, folder / "run", base_dir=folder, progress=False))
        weights.append(load_checkpoint(folder / "run" / "checkpoint" / "best")[0])
    conllu_text = (tmp_path / "conllu" / "train.conllu").read_text(encoding="utf-8")
    assert "\n1-2\t" in conllu_text and "\n1.1\t" in conllu_text and "# newdoc" in conllu_text
    timing = ("train_seconds", "wall_seconds")
    plain_results, ud_results = ({k: v for k, v in r.items() if k not in timing} for r in results)
    assert plain_results == ud_results and plain_results["epochs_run"] == 2
    plain, ud_ = weights
    assert plain.keys() == ud_.keys() and plain
    for key in plain:
        assert torch.equal(plain[key], ud_[key]), key

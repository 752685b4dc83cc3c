"""Data source ``conll``: sequence-labelling tasks read from CoNLL column files (CoNLL-2003:
``word POS chunk NER``) or CoNLL-U files (``format = "conllu"``: Universal Dependencies, UPOS,
XPOS, DEPREL... as tasks), plus the synthetic Position Prediction task of the Sparse Sharing
paper's negative-transfer experiment (each token's label is its index in the sentence).

Tasks read the shared files or each its own corpus (``data.corpora``: e.g. POS from the Penn
Treebank, chunking from CoNLL-2000, NER from CoNLL-2003), and one input encoder (word
embeddings + character CNN, the paper's Table 2) serves them all: a step of a task reads only
its own corpus. Tags can be converted between IOB1, IOB2 and BIOES: the paper trains NER in
BIOES and chunking in IOB2; span F1 is scored on the converted tags, which hold the same spans.
Word and character vocabularies come from every corpus's training sentences; word vectors are
random unless ``glove`` names a GloVe-format file or an installed vector package
(``"glove-6b-50d"``); words of the dev and test files that have a vector join the vocabulary
then, as in Ma and Hovy, 2016. Vectors are looked up by the word, else by its lower-cased form
(GloVe's vocabulary is lower-cased), while the word vocabulary keeps case unless ``lowercase``.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from mtlshare.data.corpora import (
    DEFAULT_COLUMNS,
    DEFAULT_WORD_COLUMN,
    Corpus,
    CorpusSpec,
    check_shared,
    read_corpus,
    shared_spec,
)
from mtlshare.data.datasets import PackedSplit, Problem, TaskData
from mtlshare.data.tag_tasks import TaskSpec, tag_ids, tags_of, task_spec
from mtlshare.data.tagging_codec import TaggingCodec, encode_tokens
from mtlshare.data.vocab import VECTOR_PACKAGES, Vocab, embedding_matrix, read_vectors, word_key
from mtlshare.errors import ConfigError, check_seed, data_file, one_of
from mtlshare.models.tagger import TaggerInputConfig, WordCharEncoder
from mtlshare.registry import DATA_SOURCES
from mtlshare.tasks.task import Task

UNSEEN = ("error", "map")


def _default_tasks() -> dict[str, dict[str, Any]]:
    return {
        "pos": {"column": "pos"},
        "chunk": {"column": "chunk", "scheme": "iob2"},
        "ner": {"column": "ner", "scheme": "iob2", "encode": "bioes"},
    }


@dataclass
class ConllConfig:
    """``[data]`` with ``source = "conll"``.

    The input encoder follows the paper's Table 2 by default: 100-d word embeddings, a
    character CNN of ``char_filters`` filters of width ``char_width`` over ``char_dim``-d
    character embeddings (``char_filters = 0``: words only), dropout ``dropout``.
    ``train``/``dev``/``test``: CoNLL column files (relative paths are read from the config
    file's folder); ``format``: "conll" (whitespace-separated columns) or "conllu" (CoNLL-U,
    ``data.conllu``); ``columns``: the names of their columns; ``word_column``: which holds
    the words (for CoNLL-U: the format's ten columns, ``id`` to ``misc``, and "word" means
    ``form``; see ``data.corpora``). ``tasks``: one table per task, keys ``kind`` ("tags" or
    "position"), ``column`` (a name or 0-based index), ``scheme`` (the file's span scheme,
    "iob1", "iob2", "bioes", or "" for plain tags such as POS), ``encode`` (the scheme to train
    in; default: the file's),
    ``metric`` (default: span F1 for span tags, accuracy otherwise), ``head`` ("linear" or
    "crf"), ``max_position`` (position task: classes 0..max_position-1, later positions share
    the last; 0 = the longest training sentence). ``*_sentences``: read only the first N
    sentences of a file (0 = all). ``unseen_tags``: a dev or test tag never seen in training is
    an "error", or (with a warning) "map"s to a class of its own that no prediction matches:
    the gold stays the file's, and the metric counts that token (or chunk) as an error.
    ``glove``: initial word vectors: "" (random: ``nn.Embedding``'s N(0, 1)), the path of a
    GloVe-format text file, or "glove-6b-50d" (GloVe 6B 50-d from the installed package, the
    extra ``mtlshare[glove]``; set ``word_dim = 50``). ``dev_from_train = N`` (instead of a
    dev file): N training sentences drawn with ``dev_seed`` are the dev split, never trained on.

    A task may read its own corpus: ``train``, ``test`` and ``dev`` (or ``dev_from_train``),
    ``format``, ``columns``, ``word_column`` and ``*_sentences`` in its table (see
    ``data.corpora``).
    """

    train: str = ""
    dev: str = ""
    test: str = ""
    columns: list[str] = field(default_factory=lambda: list(DEFAULT_COLUMNS))
    word_column: str = DEFAULT_WORD_COLUMN
    format: str = "conll"
    tasks: dict[str, dict[str, Any]] = field(default_factory=_default_tasks)
    train_sentences: int = 0
    dev_sentences: int = 0
    test_sentences: int = 0
    lowercase: bool = False
    min_freq: int = 1
    max_word_length: int = 30
    unseen_tags: str = "error"
    glove: str = ""
    word_dim: int = 100
    char_dim: int = 30
    char_filters: int = 30
    char_width: int = 3
    dropout: float = 0.5
    embedding_seed: int = 0
    dev_from_train: int = 0
    dev_seed: int = 0

    def validate(self) -> None:
        if not self.tasks:
            raise ConfigError("data.tasks: define at least one task")
        shared = shared_spec(self)
        specs = [task_spec(name, spec, shared) for name, spec in self.tasks.items()]
        if any(s.corpus == shared for s in specs):
            check_shared(shared)
        for key in ("train_sentences", "dev_sentences", "test_sentences", "dev_from_train"):
            if getattr(self, key) < 0:
                raise ConfigError(f"data.{key}: must be >= 0, got {getattr(self, key)}")
        for key in ("min_freq", "max_word_length", "word_dim", "char_dim"):
            if getattr(self, key) < 1:
                raise ConfigError(f"data.{key}: must be >= 1, got {getattr(self, key)}")
        if self.char_filters < 0:
            raise ConfigError(
                f"data.char_filters: must be >= 0 (0: no character CNN), got {self.char_filters}"
            )
        if self.char_width < 1 or self.char_width % 2 == 0:
            raise ConfigError(f"data.char_width: must be odd and >= 1, got {self.char_width}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"data.dropout: must be in [0, 1), got {self.dropout}")
        if self.unseen_tags not in UNSEEN:
            raise ConfigError(
                f"data.unseen_tags: {self.unseen_tags!r} is not one of {one_of(UNSEEN)}"
            )
        for key in ("embedding_seed", "dev_seed"):
            check_seed(getattr(self, key), f"data.{key}")


def _targets(ids: list[list[int]]) -> Tensor:
    """Every sentence's class ids, one sentence after another (``PackedSplit.tokens_y``)."""
    return torch.tensor([i for row in ids for i in row], dtype=torch.long)


def _word_vocab(
    cfg: ConllConfig, corpora: list[Corpus], base_dir: str | None
) -> tuple[Vocab, Tensor | None, int]:
    """The word vocabulary (every corpus's training words, and with word vectors the dev and
    test words that have one), the initial embeddings (None: random) and how many words found
    a vector."""
    word_counts: Counter[str] = Counter(
        word_key(row[c.spec.word_index], cfg.lowercase)
        for c in corpora
        for s in c.sentences["train"]
        for row in s.rows
    )
    words = Vocab.build(word_counts, cfg.min_freq)
    if not cfg.glove:
        return words, None, 0
    seen = {
        word_key(r[c.spec.word_index], cfg.lowercase)
        for c in corpora
        for ss in c.sentences.values()
        for s in ss
        for r in s.rows
    }
    packaged = cfg.glove in VECTOR_PACKAGES
    source = cfg.glove if packaged else data_file(cfg.glove, base_dir, "data.glove")
    table, dim = read_vectors(source, seen | {w.lower() for w in seen})
    if dim != cfg.word_dim:
        raise ConfigError(f"data.word_dim = {cfg.word_dim} but {cfg.glove} holds {dim}-d vectors")
    # dev and test words join when they have a vector, looked up as embedding_matrix does
    # (a cased "Bonn" finds GloVe's lower-cased "bonn")
    joining = sorted(w for w in seen if (w in table or w.lower() in table) and w not in words)
    words = Vocab([*words.itos[2:], *joining])
    g = torch.Generator().manual_seed(cfg.embedding_seed)
    vectors, found = embedding_matrix(words, table, dim, g)
    return words, vectors, found


def _labels_and_ids(
    spec: TaskSpec, cfg: ConllConfig, corpus: Corpus, words: Vocab
) -> tuple[list[str], dict[str, list[list[int]]], list[str]]:
    """A task's class names, per split every sentence's class ids, and the dev and test tags
    never seen in training (gold-only classes, after the others; see ``tag_ids``)."""
    data, paths, word_col = corpus.sentences, corpus.paths, corpus.spec.word_index
    if spec.kind == "position":
        longest = max(len(s) for s in data["train"])
        classes = spec.max_position or longest
        ids = {
            split: [[min(i, classes - 1) for i in range(len(s))] for s in sents]
            for split, sents in data.items()
        }
        return [str(i) for i in range(classes)], ids, []
    if spec.kind == "next_word":
        ids = {
            split: [
                [words.id(word_key(r[word_col], cfg.lowercase)) for r in s.rows[1:]] + [0]
                for s in sents
            ]
            for split, sents in data.items()
        }
        return list(words.itos), ids, []
    counts = Counter(t for s in data["train"] for t in tags_of(spec, s, paths["train"]))
    if len(counts) == 1:  # a CoNLL-U column left '_', say: one class, nothing to learn
        (tag,) = counts
        column = corpus.spec.columns[spec.column]
        warnings.warn(
            f"{paths['train']}: task {spec.name!r}: column {column!r} holds one tag ({tag!r}) "
            "on every training token: the task has nothing to learn and its score says nothing "
            "(a column the corpus leaves empty, '_'?)",
            stacklevel=3,
        )
    vocab = Vocab.build(counts, specials=False)
    gold_only: list[str] = []
    ids = {
        split: tag_ids(spec, sents, paths[split], vocab, cfg.unseen_tags, gold_only, split)
        for split, sents in data.items()
    }
    return vocab.itos, ids, gold_only


@DATA_SOURCES.register(
    "conll",
    config=ConllConfig,
    summary="sequence labelling from CoNLL column files (POS, chunking, NER), position task",
    paper="Tjong Kim Sang and De Meulder, CoNLL 2003; Sun, Shao et al., AAAI 2020",
)
def conll_problem(cfg: ConllConfig, base_dir: str | None = None) -> Problem:
    """Read every task's corpus (each once) and build one task per ``cfg.tasks`` entry."""
    cfg.validate()
    shared = shared_spec(cfg)
    specs = [task_spec(name, raw, shared) for name, raw in cfg.tasks.items()]
    corpora: dict[CorpusSpec, Corpus] = {}
    for spec in specs:
        if spec.corpus not in corpora:
            owner = None if spec.corpus == shared else spec.name
            corpora[spec.corpus] = read_corpus(spec.corpus, base_dir, cfg.dev_seed, owner)
    read = list(corpora.values())
    words, vectors, found = _word_vocab(cfg, read, base_dir)
    chars = Vocab.build(
        Counter(
            c
            for corpus in read
            for s in corpus.sentences["train"]
            for row in s.rows
            for c in row[corpus.spec.word_index]
        )
    )
    inputs = {
        key: {
            split: encode_tokens(
                [s.column(key.word_index) for s in sents],
                words,
                chars,
                cfg.lowercase,
                cfg.max_word_length,
            )
            for split, sents in corpus.sentences.items()
        }
        for key, corpus in corpora.items()
    }
    tasks: list[TaskData] = []
    labels_of: dict[str, list[str]] = {}
    for spec in specs:
        labels, ids, gold_only = _labels_and_ids(spec, cfg, corpora[spec.corpus], words)
        labels_of[spec.name] = labels
        task = Task(
            spec.name,
            "classification",
            out_dim=len(labels),
            metric=spec.metric,
            head=spec.head,
            labels=tuple(labels),
            tie_embedding=cfg.word_dim if spec.tie_embedding else 0,
            gold_only=tuple(gold_only),
        )
        splits = {}
        for split, (x, lengths) in inputs[spec.corpus].items():
            splits[split] = PackedSplit(x, _targets(ids[split]), lengths)
        tasks.append(TaskData(task, splits["train"], splits["dev"], splits["test"]))
    encoder = TaggerInputConfig(
        n_words=len(words),
        n_chars=len(chars),
        word_dim=cfg.word_dim,
        char_dim=cfg.char_dim,
        char_filters=cfg.char_filters,
        char_width=cfg.char_width,
        dropout=cfg.dropout,
    )

    def build_stem() -> nn.Module:
        return WordCharEncoder(encoder, vectors)

    stem: Callable[[], nn.Module] = build_stem
    meta = _meta(cfg, specs, corpora, inputs, words, chars, labels_of, found)
    codec = TaggingCodec(
        columns=list(shared.columns),
        word_column=shared.word_column,
        lowercase=cfg.lowercase,
        max_word_length=cfg.max_word_length,
        words=list(words.itos),
        chars=list(chars.itos),
        encoder=dataclasses.asdict(encoder),
        tasks={s.name: _codec_task(s) for s in specs},
        layouts=[_layout(k) for k in corpora],
        format=shared.format,
        corpus_of={s.name: list(corpora).index(s.corpus) for s in specs},
    )
    return Problem(tasks, encoder.out_dim, stem, meta, codec.spec())


def _codec_task(spec: TaskSpec) -> dict[str, Any]:
    """A task as the codec sees it; a task of a CoNLL-U corpus also names its column (predict
    writes its tags there). The entries of CoNLL runs are those of runs trained before
    CoNLL-U was read: ``evaluate`` compares them with ``inference.json``."""
    entry: dict[str, Any] = {"kind": spec.kind, "scheme": spec.scheme, "encode": spec.encode}
    if spec.corpus.format != "conll" and spec.kind == "tags":
        entry["column"] = spec.corpus.columns[spec.column]
    return entry


def _layout(corpus: CorpusSpec) -> dict[str, Any]:
    """A corpus's columns as the codec sees them (its format only where it is not CoNLL, as
    for ``_codec_task``)."""
    entry: dict[str, Any] = {"columns": list(corpus.columns), "word_column": corpus.word_column}
    if corpus.format != "conll":
        entry["format"] = corpus.format
    return entry


def _meta(
    cfg: ConllConfig,
    specs: list[TaskSpec],
    corpora: dict[CorpusSpec, Corpus],
    inputs: dict[CorpusSpec, dict[str, tuple[Tensor, Tensor]]],
    words: Vocab,
    chars: Vocab,
    labels_of: dict[str, list[str]],
    found: int,
) -> dict[str, Any]:
    """What the source tells beside the tasks: sizes (of the first task's corpus, and of every
    task's), vocabularies, labels, and how many words started from a pretrained vector."""
    first = specs[0].corpus
    meta: dict[str, Any] = {
        "sentences": {split: len(s) for split, s in corpora[first].sentences.items()},
        "tokens": {split: int(lengths.sum()) for split, (_, lengths) in inputs[first].items()},
        "corpora": {
            spec.name: {split: len(s) for split, s in corpora[spec.corpus].sentences.items()}
            for spec in specs
        },
        "words": len(words),
        "chars": len(chars),
        "labels": labels_of,
        "glove_found": found,
    }
    if cfg.glove:  # how many word types start from a pretrained vector (results.json)
        meta["word_vectors"] = {"source": cfg.glove, "word_types": len(words) - 2, "found": found}
    return meta

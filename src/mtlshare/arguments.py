"""The ``mtlshare`` command line's arguments: every command, its options and its help, parsed
by argparse with errors as one line. Imports nothing heavy: ``mtlshare --help`` stays
torch-free."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, NoReturn

from mtlshare import __version__

# mtlshare.app.demo.DEMO_CONFIG, named here for the demo's help without importing torch: the
# file installed with the package (a clone's recipes/demo/demo.toml links to it; an installed
# package has no recipes/)
DEMO_CONFIG = Path(__file__).with_name("demo.toml")


class Parser(argparse.ArgumentParser):
    """argparse's parser with its errors as one line, like every other error of the command
    (argparse prints its usage first: 2 to 6 lines), naming the ``--help`` that lists the
    arguments; exit code 2 as argparse's."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"mtlshare: error: {message} (see `{self.prog} --help`)\n")

    def add_subparsers(self, **kwargs: Any) -> Any:
        kwargs.setdefault("parser_class", Parser)
        return super().add_subparsers(**kwargs)


def _command(sub: Any, name: str, summary: str) -> argparse.ArgumentParser:
    """A subcommand whose ``--help`` starts with the line the command list shows for it."""
    parser: argparse.ArgumentParser = sub.add_parser(name, help=summary, description=summary)
    return parser


def parser() -> argparse.ArgumentParser:
    """The ``mtlshare`` command line's parser: every command, its arguments and help."""
    p = Parser(
        prog="mtlshare",
        description="Multi-task learning by parameter sharing: hard, conditioned, soft, "
        "cross-stitch, hierarchical, sparse sharing, mixtures of experts (mmoe, ple) and "
        "adapters, compared against single-task "
        "training; new tasks added to trained models; trained runs used to predict.",
    )
    p.add_argument("--version", action="version", version=f"mtlshare {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    _training_commands(sub)
    _using_commands(sub)
    _command(sub, "mechanisms", "list the registered sharing mechanisms")
    m = _command(sub, "masks", "densities and overlaps of a finished sparse-sharing run")
    m.add_argument("run_dir", help="the --out directory of a sparse run")
    cv = _command(
        sub,
        "curves",
        "draw the dev score per epoch of every run in a folder, and print how each run ended",
    )
    cv.add_argument("folder", help="a run or comparison --out directory")
    cv.add_argument("--out", default="", help="the PNG to write (default FOLDER/dev_curves.png)")
    cv.add_argument("--title", default="", help="a title above the panels")
    cv.add_argument(
        "--gaps",
        default=None,
        metavar="EPOCHS",
        help="also print, for a comparison folder with a 'single' row, each row's dev score "
        "minus single-task training's of the same seed at these epochs (1,5,10,20), between "
        "the runs' best scores and at their kept epochs (accuracy and F1 in points, other "
        "metrics in their units; positive = the row is better): does a lead hold at the "
        "plateau, or only at equal epochs?",
    )
    sl = _command(
        sub,
        "slim",
        "free the disk under finished runs: remove their checkpoint/last and a sparse run's "
        "search checkpoints, keep checkpoint/best (what predict, evaluate and --resume read)",
    )
    sl.add_argument("folder", help="a run or comparison --out directory (every run under it)")
    sl.add_argument(
        "--dry-run", action="store_true", help="say what would be removed; remove nothing"
    )
    return p


def _overrides(parser: argparse.ArgumentParser, help: str) -> None:
    """The ``key=value ...`` config overrides a command takes after its config."""
    parser.add_argument("overrides", nargs="*", default=[], metavar="key=value", help=help)


def _training_commands(sub: Any) -> None:
    """``run``, ``compare``, ``demo`` and ``add-task``."""
    r = _command(sub, "run", "train one mechanism from a TOML config")
    r.add_argument("config", help="TOML config file")
    _overrides(
        r,
        "config overrides, e.g. mechanism=soft train.epochs=5 (quote a value with spaces: "
        "'soft.weights=[0.1, 0.01]')",
    )
    r.add_argument("--out", required=True, help="output directory")
    r.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in OUT from its checkpoint/last (a finished run is read back; "
        "given a higher train.epochs, it trains on to the new cap)",
    )
    r.add_argument("--quiet", action="store_true", help="no progress bar")

    c = _command(sub, "compare", "single-task baselines and several mechanisms, one table")
    c.add_argument("config", help="TOML config file")
    _overrides(c, "config overrides for every run")
    c.add_argument(
        "--mechanisms",
        default="",
        help="comma-separated, e.g. single,hard,soft (default: [compare] mechanisms in the "
        "config, else single, every mechanism and every [compare] variant)",
    )
    c.add_argument("--out", required=True, help="output directory, a folder per row")
    c.add_argument(
        "--resume",
        action="store_true",
        help="read back the finished runs in OUT, continue the interrupted ones (and the "
        "finished ones given a higher train.epochs), train the rest",
    )
    c.add_argument(
        "--seeds",
        default=None,
        help="comma-separated seeds (default: [compare] seeds, else the config's seed)",
    )
    c.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="train the independent runs in N worker processes that divide the cores between "
        "them (default 1: one after another in this process)",
    )
    c.add_argument("--quiet", action="store_true", help="no progress bars (the plan line stays)")

    d = _command(sub, "demo", "the main job: every mechanism on synthetic tasks")
    d.add_argument(
        "--out", default="mtlshare-demo", help="output directory (default: mtlshare-demo)"
    )
    d.add_argument(
        "--seeds", default="0,1,2", help="comma-separated training seeds (default: 0,1,2)"
    )
    d.add_argument(
        "--jobs",
        type=int,
        default=0,
        help="train the runs in N worker processes with one core's share each (default 0: "
        "one worker per available core; 1: one after another in this process)",
    )
    _overrides(
        d,
        f"overrides of the demo's config ({DEMO_CONFIG}), e.g. train.epochs=5; "
        "not of data.relatedness, data.n_tasks, tasks or mechanism, which the demo sets itself",
    )
    d.add_argument("--quiet", action="store_true", help="no progress bars")

    a = _command(
        sub,
        "add-task",
        "train a new task on a trained hard, sparse, mmoe or ple model, leaving its tasks "
        "unchanged",
    )
    a.add_argument("run_dir", help="the --out folder of the trained run")
    a.add_argument("config", help="TOML config whose data holds the trained and the new tasks")
    _overrides(a, "config overrides")
    a.add_argument("--out", required=True, help="output directory of the new run")
    a.add_argument(
        "--resume",
        action="store_true",
        help="continue the new run in OUT from its checkpoint/last",
    )
    a.add_argument("--quiet", action="store_true", help="no progress bar")


def _using_commands(sub: Any) -> None:
    """``predict`` and ``evaluate``: a trained run used."""
    pr = _command(
        sub, "predict", "a trained run's predictions for new inputs (CoNLL, CoNLL-U, text or CSV)"
    )
    pr.add_argument("run_dir", help="the --out folder of a finished run")
    pr.add_argument(
        "input",
        help="a CoNLL column file, a CoNLL-U file, plain text (a sentence a line), a CSV of "
        "features, or for a daily_windows run a CSV of its series' recent values (it "
        "forecasts the days after)",
    )
    pr.add_argument("--out", required=True, help="the file to write (written whole or not at all)")
    pr.add_argument(
        "--tasks",
        default="",
        help="comma-separated tasks or series (default: all); a daily_windows run's file then "
        "needs only those series",
    )
    pr.add_argument(
        "--format",
        default="auto",
        choices=("auto", "conll", "conllu", "text", "csv"),
        help="the input's format (default auto: found from the file)",
    )
    pr.add_argument(
        "--data-dir",
        default=None,
        help="for a run without inference.json: where its config's relative data paths start",
    )

    ev = _command(sub, "evaluate", "score a trained run again from its checkpoint")
    ev.add_argument("run_dir", help="the --out folder of a finished run")
    ev.add_argument("--split", default="test", choices=("test", "dev"), help="default test")
    ev.add_argument(
        "--data-dir",
        default=None,
        help="where the config's relative data paths start (default: where it was trained)",
    )
    for parser, verb in ((pr, "predicts"), (ev, "is scored")):
        parser.add_argument(
            "--checkpoint",
            default="best",
            choices=("best", "last"),
            help="best (selected on dev, the default) or last",
        )
        parser.add_argument(
            "--device",
            default="cpu",
            help=f"where the model {verb}: cpu (the default, wherever the run was trained), "
            "cuda, cuda:N, or auto (a GPU when torch sees one)",
        )

"""``mtlshare`` command line: run, compare, add-task, demo, predict, evaluate, curves,
mechanisms, masks, slim.

Errors caused by input (config, data, checkpoints) print one line and exit with code 2.
"""

from __future__ import annotations

import argparse
import gc
import os
import signal
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from mtlshare import arguments, console
from mtlshare.errors import CheckpointError, MtlshareError, count

if TYPE_CHECKING:
    from mtlshare.config import Config

_parser = arguments.parser  # (looked up when called: a test stands in for it)


def entry() -> NoReturn:
    """The ``mtlshare`` command (and ``python -m mtlshare``): ``main``, then exit.

    Before exiting, every object is frozen out of the garbage collector (``gc.freeze``): the
    interpreter's last full collection would otherwise walk the millions of objects torch and
    torch._dynamo keep, about a second of every command's exit here (2.6 s under load). Files
    are closed by then and nothing is collected that the exit still needs. The exit code is
    ``main``'s, also after an interrupt it caught (``forget_caught_interrupt``)."""
    from mtlshare.interrupts import forget_caught_interrupt

    code = main()
    forget_caught_interrupt()
    gc.freeze()
    sys.exit(code)


def main(argv: list[str] | None = None) -> int:
    """Run the command line ``argv`` (default: this process's) and return the exit code. What
    it sets for the command (warnings as one line, signal handlers, the streams) is put back
    before it returns."""
    shown, warnings.showwarning = warnings.showwarning, console.show_warning
    args: argparse.Namespace | None = None
    taken = console.take_terminating()
    with console.command_streams() as has_stdout:
        try:
            args = _arguments(argv)
            _load_library()
            code = _dispatch(args)
            if has_stdout:  # the output written here, where its error is one line
                sys.stdout.flush()
            return code
        except MtlshareError as e:
            print(f"mtlshare: error: {console.in_config(e, args)}", file=sys.stderr)
            return 2
        except BrokenPipeError:  # the reader of our output left (`mtlshare masks DIR | head`)
            # as Unix tools do: stop quietly; stdout goes nowhere, so flushing it again must
            # not fail
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
        except OSError as e:  # a folder or file the command cannot use: the user's to fix
            print(f"mtlshare: error: {e}{console.when_full(e, args)}", file=sys.stderr)
            return 2
        except (MemoryError, RuntimeError) as e:  # torch's allocator found no memory left
            if not (line := console.out_of_memory(e)):
                raise
            hint = console.when_out(args)
            print(f"mtlshare: error: out of memory: {line}{hint}", file=sys.stderr)
            return 2
        except KeyboardInterrupt as e:  # from the first line on: building the parser too
            print(console.interrupted(args), file=sys.stderr)
            return 128 + e.signum if isinstance(e, console.Terminated) else 130
        finally:
            for number, handler in taken.items():
                signal.signal(number, handler)
            # leave a torchrun process group cleanly; only when our module is whole (an
            # interrupt during `import torch` leaves torch half-imported, and importing it
            # again would fail)
            distributed = sys.modules.get("mtlshare.training.distributed")
            if distributed is not None:
                distributed.shutdown()
            warnings.showwarning = shown


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = _parser()
    # key=value overrides may stand before or after options: collect the ones argparse left over
    # (one without "=" too: the config's reader names it, as it does before the options)
    args, extra = parser.parse_known_args(argv)
    stray = [e for e in extra if e.startswith("-")]
    if stray or (extra and not hasattr(args, "overrides")):
        parser.error(f"unrecognized arguments: {' '.join(stray or extra)}")
    if extra:
        args.overrides = [*args.overrides, *extra]
    return args


def _load_library() -> None:
    """Import torch and the library with Ctrl-C (and SIGTERM and SIGHUP, which ``main`` raises
    as interrupts) held back until they are whole: an interrupt inside torch's import can abort
    the process ("terminate called after throwing an instance of 'python_error'") or leave
    torch half-imported. An interrupt meanwhile is raised after."""
    from mtlshare.interrupts import held_interrupts

    signals = [signal.SIGINT]
    signals += [n for n in console.TERMINATING if signal.getsignal(n) is console.terminated]
    with held_interrupts(tuple(signals)) as held:
        import torch  # noqa: F401

        import mtlshare.config  # noqa: F401  (registers every component)
    for number in console.TERMINATING:
        if number in held:
            raise console.Terminated(number)
    if held:
        raise KeyboardInterrupt


def _under_torchrun() -> bool:
    """Whether this process is one of several that torchrun started."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def _dispatch(args: argparse.Namespace) -> int:
    # imported here so that `mtlshare --help` answers without loading torch
    from mtlshare.registry import MECHANISMS

    if _under_torchrun() and args.command not in ("run", "mechanisms"):
        # before anything is read or written: every process would run the whole command, and
        # all but one would find the others writing the same folder
        raise MtlshareError(
            "under torchrun only `mtlshare run` of a training config is distributed; run "
            f"`{args.command}` as a single process"
        )
    if args.command == "mechanisms":
        import mtlshare.sharing  # noqa: F401  (registers the mechanisms)

        for entry in MECHANISMS:
            print(f"{entry.name:14s} {entry.summary}  [{entry.paper}]")
        return 0
    if args.command == "masks":
        from mtlshare.app.add_task import SUMMARY
        from mtlshare.config import read_toml
        from mtlshare.sharing.sparse import describe_kept, describe_masks, masks_from_state
        from mtlshare.training.folder import CONFIG, RESULTS, RunFolder, not_a_run

        folder = RunFolder(args.run_dir)
        has_config = folder.file(CONFIG).is_file()
        if not has_config and not folder.has_checkpoint("best"):
            raise MtlshareError(not_a_run(folder.path, f"{CONFIG}, no checkpoint"))
        # read_toml: a byte-order mark, bytes that are not UTF-8 or a TOML error is one line
        # naming the file
        config = read_toml(folder.file(CONFIG)) if has_config else {}
        if config.get("mechanism") not in ("sparse", None):
            raise MtlshareError(
                f"{folder.path}: a {config['mechanism']!r} run; only sparse-sharing runs have masks"
            )
        if not folder.has_checkpoint("best") and folder.finished:
            # a kept run (recipes/keep_runs.py copies no checkpoint): what results.json says
            source, kept = folder.file(RESULTS), folder.results()
            if "sparse" not in kept and folder.file(SUMMARY).is_file():  # an added task's
                source, kept = folder.file(SUMMARY), folder.read_json(SUMMARY)
            print(describe_kept(kept, str(source)))
            print(f"(read from {source}: the run's checkpoints were not kept)")
            return 0
        state = folder.model_state("best")
        try:
            masks = masks_from_state(state)
        except CheckpointError as e:  # damaged masks: the line names the checkpoint
            raise CheckpointError(f"{folder.checkpoint_dir('best')}: {e}") from None
        depths = config.get("sparse", {}).get("depths", {})
        print(describe_masks(masks, depths))
        return 0
    if args.command == "curves":
        from mtlshare.evaluation.curves import stopping_table, write_dev_curves
        from mtlshare.evaluation.gaps import gap_table, parse_epochs
        from mtlshare.training.folder import OutputFolder

        epochs = parse_epochs(args.gaps) if args.gaps is not None else None
        with OutputFolder(args.folder) as drawn_in:
            if not args.out and drawn_in.path.is_dir():  # its figure written into the folder:
                drawn_in.open()  # not while another process writes there (one at a time)
            # the gaps first: a folder they refuse gets no figure and no half of the output
            gaps = gap_table(args.folder, epochs) if epochs is not None else None
            print(write_dev_curves(args.folder, args.out or None, args.title))
            print(stopping_table(args.folder))
            if gaps is not None:
                print(f"\n{gaps}")
        return 0
    if args.command == "slim":
        from mtlshare.app.slim import describe, slim

        done = slim(args.folder, dry_run=args.dry_run)
        print(describe(done, Path(args.folder), dry_run=args.dry_run))
        return 0
    if args.command == "predict":
        return _predict(args)
    if args.command == "evaluate":
        return _evaluate(args)
    if args.command == "demo":
        from mtlshare.app.demo import run_demo
        from mtlshare.app.jobs import available_cores

        if args.jobs < 0:
            raise MtlshareError(
                f"--jobs: expected 0 (one worker per available core) or a number of worker "
                f"processes >= 1, got {args.jobs}"
            )
        run_demo(
            args.out,
            progress=not args.quiet,
            overrides=args.overrides,
            seeds=_seeds(args.seeds),
            jobs=args.jobs or available_cores(),
        )
        return 0
    from mtlshare.config import load_config

    cfg = load_config(args.config, args.overrides)
    if args.command == "add-task":
        return _add_task(args, cfg)
    if _under_torchrun() and cfg.experiment != "train":  # other commands: refused above
        raise MtlshareError(
            "under torchrun only `mtlshare run` of a training config is distributed; run "
            f"this `{args.command}` (experiment {cfg.experiment!r}) as a single process"
        )
    if args.command == "run":
        return _run(args, cfg)
    return _compare(args, cfg)


def _run(args: argparse.Namespace, cfg: Config) -> int:
    from mtlshare.app.experiments import runner
    from mtlshare.app.run import reads_back
    from mtlshare.training.folder import RunFolder

    args.resumable = cfg.experiment == "train"  # a forecasting study keeps no checkpoint
    extra = {}
    if cfg.experiment == "train":  # under torchrun: one process group, rank 0 writes
        from mtlshare.training import distributed

        where = distributed.from_environment(cfg.train.device)
        extra["dist"] = where
        if not where.is_main:
            args.quiet = True
    base = Path(args.config).resolve().parent
    # resuming a finished run reads it back (``app.run.train``): say so, its results are the same
    read_back = cfg.experiment == "train" and reads_back(
        RunFolder(args.out), cfg.to_toml(), args.resume
    )
    results = runner(cfg.experiment)(
        cfg, args.out, base_dir=base, resume=args.resume, progress=not args.quiet, **extra
    )
    if "dist" in extra:  # every process done (rank 0 has written) before any leaves
        distributed.barrier(extra["dist"])
        if not extra["dist"].is_main:
            return 0
    if read_back:
        print(
            f"mtlshare: {args.out}: the run had finished; its results were read back, "
            "nothing was trained",
            file=sys.stderr,
        )
    for name, r in results.get("tasks", {}).items():
        print(f"{name}: dev {r['metric']} {r['dev']:.4g}  test {r['metric']} {r['test']:.4g}")
    _print_forecasts(results.get("forecast", {}))
    if (Path(args.out) / "forecast.md").is_file():
        print((Path(args.out) / "forecast.md").read_text(encoding="utf-8"), end="")
    print(f"results: {Path(args.out) / 'results.json'}")
    return 0


def _compare(args: argparse.Namespace, cfg: Config) -> int:
    from mtlshare.app.compare import compare, comparison_markdown

    if cfg.experiment != "train":
        raise MtlshareError(
            f"compare runs training experiments; this config has experiment = {cfg.experiment!r}"
        )
    names = [m.strip() for m in args.mechanisms.split(",") if m.strip()]
    if not names:
        names = cfg.compare.default_rows()
    comparison = compare(
        cfg,
        names,
        args.out,
        seeds=_seeds(args.seeds) if args.seeds is not None else cfg.compare.seeds,
        base_dir=Path(args.config).resolve().parent,
        progress=not args.quiet,
        resume=args.resume,
        jobs=args.jobs,
    )
    print(comparison_markdown(comparison, cfg.compare.title or None))
    print(f"comparison: {Path(args.out) / 'comparison.md'}")
    return 0


def _predict(args: argparse.Namespace) -> int:
    from mtlshare.app.predict import load_run

    run = load_run(args.run_dir, args.checkpoint, args.data_dir, args.device)
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()] or None
    done = run.predict_file(args.input, args.out, tasks, args.format)
    unit, names = done["unit"], ", ".join(done["tasks"])
    if "forecast days" in done:  # days, each forecast for every series: not days x series
        values = f" ({done[unit]:,} {unit})" if len(done["tasks"]) > 1 else ""
        what = (
            f"{done['forecast days']:,} days forecast for {names}{values} "
            f"from {done['first_day']} to {done['last_day']}"
        )
    elif "format" in done:  # a tagger: what the file was read as, which --format can change
        sentences = count(done["sentences"], "sentences")
        what = (
            f"{count(done[unit], unit)} ({sentences}, read as {done['format']}) predicted for "
            f"{names}"
        )
    else:
        what = f"{count(done[unit], unit)} predicted for {names}"
    speed = f"{done[f'{unit}_per_second']:,.0f} {unit}/s"
    print(f"{what} in {done['seconds']:.2f} s ({speed}): {args.out}")
    return 0


def _print_forecasts(forecasts: dict[str, dict[str, Any]]) -> None:
    """A forecasting run's test horizon per series, scored in the data's units."""
    for name, f in forecasts.items():
        mase = f"  MASE {f['mase']:.3f}" if "mase" in f else ""
        print(
            f"{name}: the {f['days']} test days from {f['first_day']} on its own scale: "
            f"MAE {f['mae']:.4g}  RMSE {f['rmse']:.4g}  sMAPE {f['smape']:.1f}%{mase}"
        )


def _evaluate(args: argparse.Namespace) -> int:
    from mtlshare.app.predict import evaluate

    scores = evaluate(args.run_dir, args.split, args.checkpoint, args.data_dir, args.device)
    for name, r in scores.items():
        print(f"{name}: {args.split} {r['metric']} {r[args.split]:.6g}")
    _print_forecasts({n: r["forecast"] for n, r in scores.items() if "forecast" in r})
    return 0


def _add_task(args: argparse.Namespace, cfg: Config) -> int:
    from mtlshare.app.add_task import add_task

    summary = add_task(
        args.run_dir,
        cfg,
        args.out,
        base_dir=Path(args.config).resolve().parent,
        resume=args.resume,
        progress=not args.quiet,
    )
    for name, r in summary["existing_tasks"].items():
        print(
            f"{name} (trained): dev {r['metric']} {r['dev_before']:.4g} before, "
            f"{r['dev_after']:.4g} after"
        )
    for name, r in summary["new_tasks"].items():
        print(f"{name} (added): dev {r['metric']} {r['dev']:.4g}  test {r['test']:.4g}")
    print(f"existing tasks unchanged: {summary['existing_unchanged']}")
    print(f"results: {Path(args.out) / 'add_task.json'}")
    return 0


def _seeds(text: str) -> list[int]:
    """The seeds of ``--seeds``: integers, comma-separated, each once. An empty list or item
    (``''``, ``0,,1``) is refused, not read as the default seeds or skipped."""
    try:
        seeds = [int(s) for s in text.split(",")]
    except ValueError:
        raise MtlshareError(f"--seeds: expected integers like 0,1,2, got {text!r}") from None
    if len(set(seeds)) != len(seeds):
        raise MtlshareError(f"--seeds: {text!r} lists a seed twice")
    return seeds


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

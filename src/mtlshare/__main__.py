from mtlshare.errors import INTERRUPTED

try:
    from mtlshare.cli import entry
except KeyboardInterrupt:  # Ctrl-C while the command line module itself is imported
    import sys

    print(INTERRUPTED, file=sys.stderr)
    eval("None")  # clears CPython's note of the interrupt, as cli.entry does: exit 130, not -2
    raise SystemExit(130) from None

entry()

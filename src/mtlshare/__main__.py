from mtlshare.errors import INTERRUPTED

try:
    from mtlshare.cli import entry
except KeyboardInterrupt:  # Ctrl-C while the command line module itself is imported
    import sys

    print(INTERRUPTED, file=sys.stderr)
    raise SystemExit(130) from None

entry()

from mtlshare.errors import INTERRUPTED

try:
    from mtlshare.cli import entry
except KeyboardInterrupt:  # Ctrl-C while the command line module itself is imported
    import sys

    from mtlshare.interrupts import forget_caught_interrupt

    print(INTERRUPTED, file=sys.stderr)
    forget_caught_interrupt()  # exit 130, not by SIGINT
    raise SystemExit(130) from None

entry()

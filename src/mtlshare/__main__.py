try:
    from mtlshare.cli import main
except KeyboardInterrupt:  # Ctrl-C while the command line module itself is imported
    import sys

    print(
        "mtlshare: interrupted; the last checkpoint is whole (resume with --resume)",
        file=sys.stderr,
    )
    raise SystemExit(130) from None

raise SystemExit(main())

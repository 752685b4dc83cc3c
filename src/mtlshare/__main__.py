from mtlshare.cli import main

raise SystemExit(main())

from kbgp.cli import main

raise SystemExit(main())

from fbifpn.cli import main

raise SystemExit(main())

from orbitstore.cli import main

raise SystemExit(main())

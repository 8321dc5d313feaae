"""Allow `python -m edge_rap`."""

from edge_rap.cli import main

raise SystemExit(main())

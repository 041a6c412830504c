"""``python -m cotiza``: the same as the ``cotiza`` command."""

from cotiza.cli.main import main

raise SystemExit(main())

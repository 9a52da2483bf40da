"""`python -m fillpoint.lsp`: the same as the `fillpoint` command."""

from .cli import main

raise SystemExit(main())

"""``python -m replaywire``: the same as the ``replaywire`` command."""

from replaywire.cli import main

raise SystemExit(main())

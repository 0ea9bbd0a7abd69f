"""``python -m benches``: the benchmark suite (see benches/suite.py)."""

from benches.suite import main

raise SystemExit(main())

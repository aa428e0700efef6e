"""``python -m benchmarks [--quick] [--sizes 1,10,100] ...``: the benchmark suite (benchmarks/suite.py)."""

import sys

from benchmarks.suite import main

sys.exit(main())

"""``python -m bpe_numba``: the ``bpe-numba`` command (see :mod:`bpe_numba.cli`)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())

"""``python -m bpe_numba``: the ``bpe-numba`` command (see :mod:`bpe_numba.cli`)."""

import sys

from .cli import entry

if __name__ == "__main__":
    sys.exit(entry())

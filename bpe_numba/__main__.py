"""``python -m bpe_numba``: the ``bpe-numba`` command (see :mod:`bpe_numba.cli`)."""

import sys

try:
    from .cli import entry
except KeyboardInterrupt:  # Ctrl-C while the command loads: the same quiet exit as later on
    print("bpe-numba: interrupted", file=sys.stderr)
    sys.exit(130)

if __name__ == "__main__":
    sys.exit(entry())

"""bpe_numba's benchmarks. ``python -m benchmarks`` runs the whole suite (see ``suite.py`` and README.md).

The scripts beside this file also run on their own (``python benchmarks/bench_train.py ...``); none of
them is part of the installed package.
"""

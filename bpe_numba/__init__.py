"""bpe_numba: exact CS336-semantics byte-level BPE training on flat arrays with Numba kernels.

>>> from bpe_numba import train_bpe
>>> vocab, merges = train_bpe("corpus.txt", 10_000, ["<|endoftext|>"])  # doctest: +SKIP
>>> ids = Tokenizer(vocab, merges, ["<|endoftext|>"]).encode("Once upon a time")  # doctest: +SKIP

Importing the package compiles nothing and does not import Numba; the kernels load (from Numba's
on-disk cache after the first run) when training starts.
"""

from .errors import BPEInputError, InvalidUTF8Error
from .pretokenize import GPT2_PATTERN, count_pretokens
from .tokenizer import Tokenizer
from .trainer import train_bpe

__version__ = "0.1.0"

__all__ = ["train_bpe", "Tokenizer", "count_pretokens", "GPT2_PATTERN", "BPEInputError", "InvalidUTF8Error", "__version__"]

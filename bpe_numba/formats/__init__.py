"""Model files, one module per format.

- :mod:`~bpe_numba.formats.gpt2`: ``vocab.json`` + ``merges.txt`` in GPT-2's byte-to-unicode alphabet and
  the ``bpe_numba.json`` sidecar (``save_model``, ``load_model``; the alphabet's ``bytes_to_gpt2_str`` and
  ``gpt2_str_to_bytes``). The format of GPT-2, the CS336 fixtures and Hugging Face.
- :mod:`~bpe_numba.formats.pickle`: ``load_pickle``, the pickled ``(vocab, merges)`` of CS336 solutions,
  read without running code.
- :mod:`~bpe_numba.formats.hf`: ``export_hf_tokenizer_json``, a Hugging Face ``tokenizer.json``, and
  ``save_hf_pretrained``, a directory for ``transformers.AutoTokenizer.from_pretrained``.
- :mod:`~bpe_numba.formats.tiktoken`: ``export_tiktoken``, ``read_tiktoken_ranks`` and
  ``tiktoken_encoding``.

Every writer is atomic (:mod:`bpe_numba.atomic`); every reader raises a
:class:`~bpe_numba.errors.BPEInputError` naming the file and the line or key of a problem; the checks of an
in-memory model live in :mod:`bpe_numba.validation`. These modules import only the standard library.
"""

from .gpt2 import (
    FORMAT_NAME,
    FORMAT_VERSION,
    MERGES_FILE,
    META_FILE,
    VOCAB_FILE,
    bytes_to_gpt2_str,
    gpt2_bytes_to_unicode,
    gpt2_str_to_bytes,
    gpt2_unicode_to_bytes,
    load_model,
    save_model,
    save_trained_model,
    special_token_ids,
)
from .hf import (
    FIRST_SPECIAL,
    HF_FILES,
    export_hf_tokenizer_json,
    hf_tokenizer_config,
    hf_tokenizer_dict,
    misdecoded_special_tokens,
    save_hf_pretrained,
)
from .pickle import load_pickle
from .tiktoken import export_tiktoken, read_tiktoken_ranks, tiktoken_encoding, tiktoken_ranks

__all__ = [
    "FIRST_SPECIAL",
    "HF_FILES",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "MERGES_FILE",
    "META_FILE",
    "VOCAB_FILE",
    "bytes_to_gpt2_str",
    "export_hf_tokenizer_json",
    "export_tiktoken",
    "gpt2_bytes_to_unicode",
    "gpt2_str_to_bytes",
    "gpt2_unicode_to_bytes",
    "hf_tokenizer_config",
    "hf_tokenizer_dict",
    "load_model",
    "load_pickle",
    "misdecoded_special_tokens",
    "read_tiktoken_ranks",
    "save_hf_pretrained",
    "save_model",
    "save_trained_model",
    "special_token_ids",
    "tiktoken_encoding",
    "tiktoken_ranks",
]

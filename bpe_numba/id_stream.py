"""Many documents into one id stream for language-model training: each document's ids, then the
end-of-text id, in input order, streamed into one ``.npy`` that appears only when complete.

>>> import tempfile, os, numpy as np
>>> from bpe_numba import Tokenizer
>>> d = tempfile.mkdtemp()
>>> for name, text in [("a.txt", "ab"), ("b.txt", "b a")]:
...     with open(os.path.join(d, name), "w") as f:
...         _ = f.write(text)
>>> tok = Tokenizer({i: bytes([i]) for i in range(256)}, [], ["<|endoftext|>"], backend="python")
>>> encode_documents(tok, [os.path.join(d, "a.txt"), os.path.join(d, "b.txt")], os.path.join(d, "ids.npy"))
7
>>> np.load(os.path.join(d, "ids.npy")).tolist()
[97, 98, 256, 98, 32, 97, 256]
"""

from __future__ import annotations

import os
import shutil

import numpy as np

from .atomic import atomic_file, temp_name
from .encoding import ids_dtype, npy_header
from .errors import BPETypeError, BPEValueError
from .python_bpe import read_text
from .validation import check_errors_mode, check_input_file, check_one_of_specials, check_output_file, resolve_progress, resolve_workers

#: A document up to this size is read and encoded whole; a larger one goes through ``encode_file`` (chunks,
#: workers, memory bounded by its chunk size) into a temporary ``.npy`` that is then copied into the stream.
WHOLE_DOCUMENT_BYTES = 16 << 20
_COPY_IDS = 1 << 22  # ids copied from such a temporary file at a time


def encode_documents(tok, inputs, output_path, *, eot: str | None = None, errors: str = "strict",
                     progress: bool | None = None, num_workers: int | None = None) -> int:
    """Encode each file of ``inputs`` (one document each) with ``tok`` and write the ids into the ``.npy``
    at ``output_path`` (``uint16``, or ``uint32`` when an id needs it), ``eot``'s id after every document.
    Returns the number of ids written, end-of-text ids included.

    ``eot`` is one of ``tok``'s special tokens (default: its first). The ids equal the concatenation of
    ``tok.encode(document) + [eot_id]`` over the documents in the order given. Every input is checked
    before anything is written, and the output is written to a temporary file beside ``output_path`` that
    replaces it only when complete. ``errors``: invalid UTF-8 is an error naming the file and byte offset
    (``"strict"``) or reads as U+FFFD (``"replace"``). ``num_workers`` goes to ``encode_file`` for the
    documents above :data:`WHOLE_DOCUMENT_BYTES`; the others are encoded in this process.
    """
    if isinstance(inputs, (str, bytes, os.PathLike)):
        raise BPETypeError(f"inputs must be a list of file paths, not a single {type(inputs).__name__}; "
                           f"wrap one document in a list: [path]")
    paths = [check_input_file(p, "document") for p in inputs]
    check_errors_mode(errors)
    resolve_workers(num_workers)
    eot_id = _eot_id(tok, eot)
    out = check_output_file(output_path, {f"document {k + 1} of {len(paths)}": p for k, p in enumerate(paths)})
    dtype = ids_dtype(tok)
    end = np.array([eot_id], dtype=dtype)
    sizes = [os.path.getsize(p) for p in paths]

    from .progress import progress_bar

    bar = progress_bar(resolve_progress(progress), total=sum(sizes), unit="B", unit_scale=True, desc="encode")
    scratch = None  # a temporary folder for the documents too large to encode whole, made when needed
    n = 0
    try:
        with atomic_file(out) as f:
            f.write(npy_header(dtype, 0))
            for path, size in zip(paths, sizes):
                if size <= WHOLE_DOCUMENT_BYTES:
                    ids = tok.encode_to_array(read_text(path, errors)).astype(dtype)
                    f.write(ids.tobytes())
                    n += len(ids)
                else:
                    if scratch is None:
                        scratch = temp_name(out)  # a killed run's leftover is removed by the next write here
                        os.mkdir(scratch)
                    n += _copy_encoded_file(tok, path, os.path.join(scratch, "document.npy"), f, dtype,
                                            errors, num_workers)
                f.write(end.tobytes())
                n += 1
                bar.update(size)
            f.seek(0)
            f.write(npy_header(dtype, n))
    finally:
        bar.close()
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    return n


def _eot_id(tok, eot) -> int:
    if eot is None:
        if not tok.special_tokens:
            raise BPEValueError("the tokenizer has no special tokens, so there is no end-of-text token to put "
                                "after each document; build it with one (e.g. special_tokens=['<|endoftext|>'])")
        eot = tok.special_tokens[0]
    return tok.special_ids[check_one_of_specials(eot, tok.special_tokens, "eot")]


def _copy_encoded_file(tok, path: str, scratch_npy: str, f, f_dtype: np.dtype, errors: str, workers) -> int:
    """Encode ``path`` with ``tok.encode_file`` into ``scratch_npy`` and append its ids to ``f``."""
    n = tok.encode_file(path, scratch_npy, errors=errors, progress=False, num_workers=workers)
    ids = np.load(scratch_npy, mmap_mode="r")
    for start in range(0, n, _COPY_IDS):
        f.write(np.ascontiguousarray(ids[start : start + _COPY_IDS], dtype=f_dtype).tobytes())
    del ids
    os.unlink(scratch_npy)
    return n

"""Unlabeled text for general distillation: read it, tokenise it, pack it into full-length sequences.

Sources are plain text files (one document or sentence a line, read line by line), tables
(any format of :func:`protege.data.load_examples`, text column detected) and ``datasets`` hub
names (``name`` or ``name:config``), streamed. Packing concatenates documents, separated the
way the tokenizer's model expects, and cuts the stream into ``max_length`` blocks (Devlin et
al. 2019; Liu et al. 2019 "RoBERTa", FULL-SENTENCES; Radford et al. 2019), so no compute is
spent on padding.
"""

from __future__ import annotations

import os
from itertools import islice
from pathlib import Path

import numpy as np

from protege.data.tables import SUPPORTED_EXTENSIONS, TEXT_COLUMNS, _looks_like_hub_name
from protege.errors import ProtegeError
from protege.utils.handles import lookup

__all__ = ["read_lines", "tokenize_lines", "pack_sequences", "require_one_sequence", "encode_lines", "token_counts"]

_CHUNK = 4096  # lines per tokenizer call


def read_lines(source: str, *, split: str | None = None, text_column: str | None = None, max_lines: int | None = None) -> list[str]:
    """Non-empty, stripped texts of ``source`` (at most ``max_lines``).

    A ``.txt`` file (or any file that is not a table) is read line by line; tables go through
    :func:`protege.data.load_examples`; a hub name is streamed from ``datasets`` (``split``
    defaults to ``train``). A table object or its handle (the Python API's) is read as a table.
    """
    if max_lines is not None and max_lines < 1:
        raise ProtegeError(f"the line limit must be a positive integer, got {max_lines}")
    if not isinstance(source, (str, os.PathLike)) or lookup(os.fspath(source)) is not None:
        from protege.data.tables import load_examples

        return [t.strip() for t in load_examples(source, split=split, text_column=text_column, max_examples=max_lines).texts]
    source = str(source)
    path = Path(source).expanduser()
    if path.is_dir():
        raise ProtegeError(f"{source} is a folder; pass a text file with one document or sentence a line")
    if path.is_file():
        if path.suffix.lower() in SUPPORTED_EXTENSIONS:
            from protege.data.tables import load_examples

            lines = [t.strip() for t in load_examples(source, text_column=text_column, max_examples=max_lines).texts]
        else:
            lines = _file_lines(path, source, max_lines)
    elif _looks_like_hub_name(source):
        lines = _hub_lines(source, split, text_column, max_lines)
    else:
        raise ProtegeError(f"{source}: no such file; pass a text file (one document a line), a table or a datasets name")
    lines = [line for line in lines if line]
    if not lines:
        raise ProtegeError(f"{source}: no text (every line is empty); pass a file with one document or sentence a line")
    return lines


def _file_lines(path: Path, source: str, max_lines: int | None) -> list[str]:
    out: list[str] = []
    try:
        with path.open(encoding="utf-8-sig") as f:
            for line in f:
                line = line.strip()
                if line:
                    out.append(line)
                    if max_lines is not None and len(out) >= max_lines:
                        break
    except UnicodeDecodeError as e:
        raise ProtegeError(f"{source}: not UTF-8 text (bad byte at offset {e.start}); re-save it as UTF-8") from None
    return out


def _hub_lines(source: str, split: str | None, text_column: str | None, max_lines: int | None) -> list[str]:
    name, _, config = source.partition(":")
    try:
        import datasets

        stream = datasets.load_dataset(name, config or None, split=split or "train", streaming=True)
        first = next(iter(stream))
    except Exception as e:  # noqa: BLE001 - offline, unknown name, bad config or split
        first_line = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ProtegeError(f"could not stream dataset '{source}' from the Hugging Face hub ({first_line[:160]}); "
                           "pass a local text file") from None
    column = text_column or next((c for c in TEXT_COLUMNS if c in first), None)
    if column is None or column not in first:
        raise ProtegeError(f"{source}: no text column found; columns are {', '.join(first)}; pass --text-column")
    rows = (str(row[column]).strip() for row in stream if row.get(column) is not None)
    return list(islice((r for r in rows if r), max_lines))


def tokenize_lines(lines: list[str], tokenizer, *, add_special_tokens: bool = False) -> list[list[int]]:
    """Token ids of every line (no truncation), in chunks through the fast tokenizer."""
    out: list[list[int]] = []
    for start in range(0, len(lines), _CHUNK):
        enc = tokenizer(lines[start:start + _CHUNK], add_special_tokens=add_special_tokens, truncation=False,
                        padding=False, return_attention_mask=False, return_token_type_ids=False)
        out.extend(list(ids) for ids in enc["input_ids"])
    return out


def _frame(tokenizer) -> tuple[list[int], list[int], list[int]]:
    """``(prefix, separator, suffix)`` token ids around packed documents for this tokenizer.

    Encoders with CLS/SEP (BERT, RoBERTa's <s>/</s>): ``[CLS] doc [SEP] doc [SEP]``; decoders:
    ``[BOS] doc [EOS] [BOS] doc [EOS]`` (BOS only when the tokenizer adds one itself).
    """
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    if cls is not None and sep is not None:
        return [cls], [sep], [sep]
    probe = tokenizer("a", add_special_tokens=True)["input_ids"]
    bos = tokenizer.bos_token_id
    prefix = [bos] if bos is not None and probe[:1] == [bos] else []
    eos = tokenizer.eos_token_id
    return prefix, ([eos] if eos is not None else []), []


def pack_sequences(token_lists: list[list[int]], tokenizer, *, max_length: int) -> list[dict]:
    """Concatenate documents and cut them into blocks of ``max_length`` tokens (features).

    Encoders: each block is ``[CLS] tokens [SEP]`` with documents separated by ``[SEP]``
    inside; decoders: documents each followed by EOS (and led by BOS where the model uses one).
    The last block may be shorter. Features hold ``input_ids`` and ``attention_mask``.
    """
    if not isinstance(max_length, int) or max_length < 4:
        raise ProtegeError(f"--max-length must be at least 4 to pack text, got {max_length!r}")
    prefix, sep, suffix = _frame(tokenizer)
    encoder = bool(suffix)
    stream: list[int] = []
    for ids in token_lists:
        if not ids:
            continue
        stream.extend(ids if encoder else prefix + ids)
        stream.extend(sep)
    if encoder and stream:
        stream.pop()  # the block frame closes with [SEP] itself
    body = max_length - (len(prefix) + len(suffix) if encoder else 0)
    features = []
    for start in range(0, len(stream), body):
        chunk = stream[start:start + body]
        ids = prefix + chunk + suffix if encoder else chunk
        features.append({"input_ids": ids, "attention_mask": [1] * len(ids)})
    return features


def require_one_sequence(features: list[dict], source: str, max_length: int) -> None:
    """Refuse packed text that does not fill one sequence of ``max_length`` tokens (nothing to learn or measure)."""
    tokens = sum(len(f["input_ids"]) for f in features)
    if tokens < max_length:
        raise ProtegeError(f"{source} is too short: {tokens} tokens, not one sequence of --max-length {max_length}; "
                           "pass more text or a smaller --max-length")


def encode_lines(lines: list[str], tokenizer, *, max_length: int) -> list[dict]:
    """One feature per line (with the model's special tokens, truncated): for sentence-level objectives."""
    features = []
    for start in range(0, len(lines), _CHUNK):
        enc = tokenizer(lines[start:start + _CHUNK], truncation=True, max_length=max_length, padding=False,
                        return_token_type_ids=False)
        features.extend({"input_ids": list(ids), "attention_mask": list(mask)}
                        for ids, mask in zip(enc["input_ids"], enc["attention_mask"]))
    return features


def token_counts(features: list[dict], vocab_size: int) -> np.ndarray:
    """How often each token id occurs in ``features`` (int64 array of ``vocab_size``)."""
    if not features:
        return np.zeros(vocab_size, dtype=np.int64)
    ids = np.fromiter((t for f in features for t in f["input_ids"]), dtype=np.int64)
    if ids.size and (ids.max() >= vocab_size or ids.min() < 0):
        raise ProtegeError(f"token id {int(ids.max())} is outside the model's vocabulary of {vocab_size}; "
                           "the tokenizer does not belong to this model")
    return np.bincount(ids, minlength=vocab_size).astype(np.int64)

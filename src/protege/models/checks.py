"""Checks that turn broken model folders and impossible settings into one-line errors.

Each of these once produced silent garbage or a traceback: a folder without tokenizer files
loaded as a 5-token tokenizer that reads every text as ``[UNK]``; a truncated
``model.safetensors`` died deep inside the safetensors reader; a ``--max-length`` above the
model's position table crashed (or silently truncated) in the middle of training.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from protege.errors import ProtegeError

__all__ = ["TOKENIZER_FILES", "check_tokenizer", "check_weight_files", "weights_error", "position_limit",
           "check_max_length"]

# files one of which a save_pretrained tokenizer folder holds (fast, WordPiece, BPE, SentencePiece)
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "merges.txt", "spiece.model", "sentencepiece.bpe.model",
                   "sentencepiece.model", "tokenizer.model", "source.spm", "tekken.json")
# ordinary words that any real tokenizer reads as something other than [UNK]
_PROBE = "the movie was good and the people of the city liked it"
_MIN_VOCAB = 11  # transformers' fallback BERT tokenizer has the 5 special tokens only
# model types whose position ids start after the padding index (RoBERTa's layout): the first
# pad_token_id + 1 rows of the position table are never used for text
_OFFSET_POSITIONS = {"roberta", "xlm-roberta", "xlm-roberta-xl", "camembert", "roberta-prelayernorm", "data2vec-text",
                     "longformer", "ibert", "mpnet", "luke", "markuplm", "xmod", "esm", "lilt", "layoutlmv3"}
_MAX_HEADER = 100_000_000  # the safetensors format caps its JSON header at 100 MB


def check_tokenizer(tokenizer, name: str) -> None:
    """Refuse a missing or degenerate tokenizer: a tiny vocabulary, or one that reads ordinary words as [UNK].

    transformers builds a 5-token tokenizer when a BERT folder has a config but no vocabulary;
    training on it gives a model that sees every text as the same sequence of unknown tokens.
    """
    folder = Path(name).expanduser()
    missing = folder.is_dir() and not any((folder / f).is_file() for f in TOKENIZER_FILES)
    size = len(tokenizer)
    problem = None
    if size < _MIN_VOCAB:
        problem = f"has only {size} tokens"
    else:
        unk = getattr(tokenizer, "unk_token_id", None)
        try:
            ids = tokenizer(_PROBE, add_special_tokens=False)["input_ids"]
        except Exception:  # noqa: BLE001 - a tokenizer that cannot read plain English is degenerate too
            ids = None
        if ids is None or (unk is not None and ids and all(i == unk for i in ids)):
            problem = "reads ordinary English words all as the unknown token"
    if problem is None:
        return
    if missing:
        raise ProtegeError(f"{name}: no tokenizer files in this folder ({', '.join(TOKENIZER_FILES[:3])} ...); save the "
                           "tokenizer of the model it came from into it (tokenizer.save_pretrained(folder))")
    raise ProtegeError(f"the tokenizer of '{name}' {problem}; it is not a usable tokenizer: save the tokenizer of the model "
                       "it came from into the folder (tokenizer.save_pretrained(folder))")


def _safetensors_problem(path: Path) -> str | None:
    """Why ``path`` is not a whole safetensors file (header readable, data exactly covered), or None."""
    size = path.stat().st_size
    if size < 8:
        return f"only {size} bytes long"
    with path.open("rb") as fh:
        n = int.from_bytes(fh.read(8), "little")
        if n < 2 or n > _MAX_HEADER or 8 + n > size:
            return "truncated or not a safetensors file (its header does not fit in the file)"
        try:
            header = json.loads(fh.read(n))
        except (UnicodeDecodeError, ValueError):
            return "corrupted (its header is not valid JSON)"
    if not isinstance(header, dict):
        return "corrupted (its header is not a JSON object)"
    try:
        end = max((int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"), default=0)
    except (TypeError, KeyError, IndexError, ValueError):
        return "corrupted (its header lists tensors without data offsets)"
    expected = 8 + n + end
    if size < expected:
        return f"truncated ({size:,} of {expected:,} bytes)"
    if size > expected:
        return f"corrupted ({size - expected:,} bytes more than its header describes)"
    return None


def _bin_problem(path: Path) -> str | None:
    """Why a torch ``.bin`` file cannot be a saved state dict (a cut zip archive), or None."""
    with path.open("rb") as fh:
        head = fh.read(2)
    if zipfile.is_zipfile(path) or head[:1] == b"\x80":  # torch's zip format, or the legacy pickle format
        return None
    return "truncated or corrupted (not a whole torch archive)"


def check_weight_files(folder) -> None:
    """Refuse a model folder whose weight files are cut short or corrupted, naming the file.

    Reads only the headers: each ``*.safetensors`` must have a JSON header whose tensors cover
    the file exactly; each ``pytorch_model*.bin`` must be a whole zip archive.
    """
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        return
    for path in sorted(folder.glob("*.safetensors")):
        problem = _safetensors_problem(path)
        if problem:
            raise ProtegeError(f"{path}: the weights file is {problem}; re-save the model (save_pretrained) or download it again")
    for path in sorted(folder.glob("pytorch_model*.bin")):
        problem = _bin_problem(path)
        if problem:
            raise ProtegeError(f"{path}: the weights file is {problem}; re-save the model (save_pretrained) or download it again")


def weights_error(name: str, err: BaseException) -> ProtegeError | None:
    """A one-line error for an unreadable weights file met inside ``from_pretrained`` (e.g. a hub download), else None."""
    if type(err).__name__ == "SafetensorError" or "PytorchStreamReader" in str(err):
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        return ProtegeError(f"the weights of '{name}' are truncated or corrupted ({first[:120]}); re-save the model "
                            "(save_pretrained) or download it again")
    return None


def position_limit(config) -> int | None:
    """The most tokens one sequence may have: ``max_position_embeddings``, less RoBERTa's offset; None if unknown."""
    limit = getattr(config, "max_position_embeddings", None)
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        return None
    if getattr(config, "model_type", None) in _OFFSET_POSITIONS:
        pad = getattr(config, "pad_token_id", None)
        limit -= (pad if isinstance(pad, int) and pad >= 0 else 1) + 1
    return limit


def check_max_length(config, max_length, flag: str = "--max-length", *, role: str = "model", default: int | None = None):
    """The tokens per sequence to use with ``config``'s model: ``max_length``, or refuse one it cannot read.

    A ``max_length`` equal to the flag's ``default`` (the user did not choose it) above the model's
    position table becomes the table's limit; any other value above it is bad input, refused
    before anything trains. Returns the length to use.
    """
    limit = position_limit(config)
    if limit is None or max_length is None or isinstance(max_length, bool) or not isinstance(max_length, int):
        return max_length
    if max_length <= limit:
        return max_length
    if default is not None and max_length == default:
        return limit
    table = getattr(config, "max_position_embeddings", limit)
    reserved = f" ({table} positions, {table - limit} of them reserved)" if table != limit else ""
    raise ProtegeError(f"{flag} {max_length} exceeds the {role}'s {limit} positions{reserved}; pass {flag} {limit} or less")

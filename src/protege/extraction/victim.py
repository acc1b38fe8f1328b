"""``Victim``: a classifier answering queries the way a prediction API does, in-process.

The HTTP server (:mod:`protege.extraction.server`) wraps one; tests and research use it directly.
Answers go through the same steps as on the server: class probabilities, then the watermark
(if any), then output hardening (label, rounded probabilities or top-k)::

    victim = Victim("runs/victim", output="probs", decimals=2)
    victim.predict(["a gorgeous film", "dull"])   # [{"label": 1, "name": "positive", "probs": [...]}, ...]
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from protege.errors import ProtegeError
from protege.extraction.defenses.hardening import check_output_mode, harden

__all__ = ["Victim", "check_queries"]


class Victim:
    """A sequence classifier behind an answer format: ``predict(texts, pairs) -> list of answers``.

    ``model`` is a classifier folder or hub id (``tokenizer`` then comes from it) or a loaded
    ``AutoModelForSequenceClassification`` with its ``tokenizer``. ``output``, ``top_k`` and
    ``decimals`` choose what an answer reveals (:func:`~protege.extraction.defenses.hardening.harden`);
    ``watermark`` (a :class:`~protege.extraction.defenses.watermark.Watermark`) answers a keyed
    fraction of queries wrong. ``calls`` and ``queries`` count predict calls and texts answered.
    """

    def __init__(self, model, tokenizer=None, *, output: str = "label", top_k: int | None = None,
                 decimals: int | None = None, watermark=None, max_length: int = 128, batch_size: int = 32,
                 device: str = "cpu", name: str | None = None):
        from protege.utils.device import resolve_device
        from protege.deploy.folders import load_model
        from protege.models import load_tokenizer, problem_type_of

        if isinstance(model, (str, Path)):
            self.name = name or str(model)
            model, where = load_model(str(model), role="victim")  # exported folders (ONNX, int8) serve what ships
            tokenizer = tokenizer or load_tokenizer(str(where))
        elif tokenizer is None:
            raise ProtegeError("a Victim built from a model object needs its tokenizer too: Victim(model, tokenizer)")
        else:
            self.name = name or getattr(model.config, "_name_or_path", None) or type(model).__name__
        if problem_type_of(model.config) != "single_label_classification":
            raise ProtegeError(f"victim '{self.name}' is a regression model; extraction covers classifiers only")
        if not isinstance(max_length, int) or max_length < 2 or not isinstance(batch_size, int) or batch_size < 1:
            raise ProtegeError("--max-length must be >= 2 and --batch-size >= 1")
        self.labels = [str(model.config.id2label[i]) for i in range(model.config.num_labels)]
        check_output_mode(output, top_k=top_k, decimals=decimals, num_labels=len(self.labels))
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.output, self.top_k, self.decimals = output, top_k, decimals
        self.watermark = watermark
        from protege.models import position_limit

        limit = position_limit(model.config)  # RoBERTa-style position tables reserve their first entries
        self.max_length = min(max_length, limit) if limit and limit > 2 else max_length
        self.batch_size = batch_size
        self.device = resolve_device(device)
        self.model.to(self.device)
        self.calls = 0
        self.queries = 0
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Victim({self.name!r}, output={self.output!r}, labels={self.labels})"

    def info(self) -> dict:
        """What the API tells every caller: label names and the output format (never the watermark)."""
        return {"labels": list(self.labels), "output": self.output, "top_k": self.top_k, "decimals": self.decimals}

    def predict(self, texts: list[str], pairs: list[str] | None = None) -> list[dict]:
        """One answer per text (or text pair), in order."""
        check_queries(texts, pairs)
        probs = self.probabilities(texts, pairs)
        if self.watermark is not None:
            probs, _ = self.watermark.apply(probs, texts, pairs)
        with self._lock:
            self.calls += 1
            self.queries += len(texts)
        return harden(probs, self.labels, output=self.output, top_k=self.top_k, decimals=self.decimals)

    def probabilities(self, texts: list[str], pairs: list[str] | None = None) -> np.ndarray:
        """The model's own class probabilities (N, C), before watermark and hardening."""
        return self._forward(texts, pairs, hidden=False)[1]

    def embed(self, texts: list[str], pairs: list[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Mean-pooled last-layer hidden states (N, H) and class probabilities (N, C)."""
        return self._forward(texts, pairs, hidden=True)

    def _forward(self, texts, pairs, *, hidden: bool):
        import torch

        from protege.data import Examples
        from protege.data.batching import collate, encode

        check_queries(texts, pairs)
        features = encode(Examples(list(texts), None if pairs is None else list(pairs), None, "queries", "text",
                                   None if pairs is None else "text_pair", None), self.tokenizer, max_length=self.max_length)
        order = sorted(range(len(features)), key=lambda i: len(features[i]["input_ids"]))
        probs = np.zeros((len(features), len(self.labels)), dtype=np.float64)
        pooled = None
        pad = self.tokenizer.pad_token_id or 0
        with self._lock, torch.inference_mode():  # one forward at a time: a server calls from threads
            for start in range(0, len(order), self.batch_size):
                idx = order[start:start + self.batch_size]
                batch = {k: v.to(self.device) for k, v in collate([features[i] for i in idx], pad).items()}
                out = self.model(**batch, output_hidden_states=hidden)
                probs[idx] = torch.softmax(out.logits.float(), dim=-1).cpu().numpy()
                if hidden:
                    mask = batch["attention_mask"].unsqueeze(-1).float()
                    mean = (out.hidden_states[-1].float() * mask).sum(1) / mask.sum(1).clamp(min=1)
                    if pooled is None:
                        pooled = np.zeros((len(features), mean.shape[-1]), dtype=np.float32)
                    pooled[idx] = mean.cpu().numpy()
        return pooled, probs


def check_queries(texts, pairs=None) -> None:
    """Fail with one line unless ``texts`` is a non-empty list of non-empty strings (``pairs`` alike, same length)."""
    for what, values in (("texts", texts), ("pairs", pairs)):
        if values is None and what == "pairs":
            continue
        if not isinstance(values, (list, tuple)) or not values:
            raise ProtegeError(f"{what} must be a non-empty list of strings")
        for i, t in enumerate(values):
            if not isinstance(t, str) or not t.strip():
                raise ProtegeError(f"{what}[{i}] must be a non-empty string, got {t!r}")
    if pairs is not None and len(pairs) != len(texts):
        raise ProtegeError(f"got {len(texts)} texts but {len(pairs)} second texts; give one pair per text")

"""Sentence-transformers folders without the library: read the pipeline, run it, write it back.

A sentence-transformers model is a folder with ``modules.json`` listing its stages: a
Transformer (a ``save_pretrained`` folder, usually the root), a Pooling stage
(``1_Pooling/config.json``: mean, CLS, max, mean-sqrt-len, weighted-mean or last-token), optional
Dense layers and a Normalize stage (Reimers & Gurevych 2019, "Sentence-BERT"). protege reads it
into a :class:`SentenceEncoder` (a plain ``nn.Module`` that the trainer trains like any model) and
writes students in the same layout, so ``SentenceTransformer(folder)`` loads them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import torch
from torch import nn

from protege.errors import ProtegeError

__all__ = ["POOLING_MODES", "SentencePipeline", "SentenceEncoder", "is_sentence_transformer", "read_pipeline",
           "load_sentence_encoder", "save_sentence_encoder", "pool"]

POOLING_MODES = ("mean", "cls", "max", "mean_sqrt_len_tokens", "weightedmean", "lasttoken")
_LEGACY_KEYS = {"pooling_mode_mean_tokens": "mean", "pooling_mode_cls_token": "cls", "pooling_mode_max_tokens": "max",
                "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
                "pooling_mode_weightedmean_tokens": "weightedmean", "pooling_mode_lasttoken": "lasttoken"}
_ACTIVATIONS = {"torch.nn.modules.linear.Identity": nn.Identity, "torch.nn.modules.activation.Tanh": nn.Tanh,
                "torch.nn.modules.activation.ReLU": nn.ReLU, "torch.nn.modules.activation.GELU": nn.GELU}


@dataclass(frozen=True)
class SentencePipeline:
    """What a sentence-transformers folder says: where the transformer is and how it pools."""

    transformer_path: Path
    pooling: tuple[str, ...] = ("mean",)
    normalize: bool = False
    dense: tuple[Path, ...] = ()
    max_seq_length: int | None = None
    do_lower_case: bool = False


def is_sentence_transformer(folder) -> bool:
    """Whether ``folder`` is a local sentence-transformers model (has ``modules.json``)."""
    return (Path(folder).expanduser() / "modules.json").is_file()


def _read_json(path: Path, what: str):
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ProtegeError(f"{path}: cannot read the {what} ({err.__class__.__name__}); re-save the sentence-transformers folder") from None


def _pooling_modes(config: dict, path: Path) -> tuple[str, ...]:
    if "pooling_mode" in config:
        modes = config["pooling_mode"]
        modes = (modes,) if isinstance(modes, str) else tuple(modes)
    else:
        modes = tuple(mode for key, mode in _LEGACY_KEYS.items() if config.get(key))
    bad = [m for m in modes if m not in POOLING_MODES]
    if not modes or bad:
        raise ProtegeError(f"{path}: unsupported pooling {bad or 'none'}; protege reads {', '.join(POOLING_MODES)}")
    return modes


def read_pipeline(folder) -> SentencePipeline:
    """Parse ``modules.json`` (+ pooling, Dense and ``sentence_bert_config.json``) of a local folder."""
    root = Path(folder).expanduser()
    modules = _read_json(root / "modules.json", "module list")
    if not isinstance(modules, list) or not modules:
        raise ProtegeError(f"{root / 'modules.json'}: expected a list of modules; re-save the sentence-transformers folder")
    transformer, pooling, normalize, dense = None, None, False, []
    for module in sorted(modules, key=lambda m: m.get("idx", 0)):
        kind = str(module.get("type", "")).rsplit(".", 1)[-1]
        path = root / module.get("path", "")
        if kind == "Transformer":
            transformer = path
        elif kind == "Pooling":
            pooling = _pooling_modes(_read_json(path / "config.json", "pooling config"), path)
        elif kind == "Normalize":
            normalize = True
        elif kind == "Dense":
            dense.append(path)
        else:
            raise ProtegeError(f"{root}: sentence-transformers module '{module.get('type')}' is not supported; "
                               "protege reads Transformer, Pooling, Dense and Normalize pipelines")
    if transformer is None or not (transformer / "config.json").is_file():
        raise ProtegeError(f"{root}: modules.json names no Transformer folder with a config.json; re-save the model")
    settings = {}
    for candidate in (transformer / "sentence_bert_config.json", root / "sentence_bert_config.json"):
        if candidate.is_file():
            settings = _read_json(candidate, "sentence-bert config")
            break
    return SentencePipeline(transformer, pooling or ("mean",), normalize, tuple(dense), settings.get("max_seq_length"),
                            bool(settings.get("do_lower_case", False)))


def pool(token_states: torch.Tensor, attention_mask: torch.Tensor, modes: tuple[str, ...]) -> torch.Tensor:
    """Sentence-transformers pooling of (B, L, H) token states into (B, H * len(modes))."""
    mask = attention_mask.to(token_states.dtype).unsqueeze(-1)
    out = []
    for mode in modes:
        if mode == "cls":
            out.append(token_states[:, 0])
        elif mode == "max":
            out.append(token_states.masked_fill(mask == 0, float("-inf")).max(dim=1).values)
        elif mode in ("mean", "mean_sqrt_len_tokens"):
            summed, count = (token_states * mask).sum(1), mask.sum(1).clamp(min=1e-9)
            out.append(summed / count if mode == "mean" else summed / count.sqrt())
        elif mode == "weightedmean":
            w = mask * torch.arange(1, token_states.shape[1] + 1, device=token_states.device, dtype=token_states.dtype)[None, :, None]
            out.append((token_states * w).sum(1) / w.sum(1).clamp(min=1e-9))
        else:  # lasttoken (right padding)
            last = attention_mask.long().sum(1).clamp(min=1) - 1
            out.append(token_states[torch.arange(token_states.shape[0], device=token_states.device), last])
    return torch.cat(out, dim=-1)


class SentenceEncoder(nn.Module):
    """Transformer -> pooling -> Dense layers -> optional L2 normalisation, as sentence-transformers runs it.

    ``forward`` takes tokenizer outputs and returns a namespace with ``embeddings`` (final),
    ``pooled`` (before Dense/normalisation), ``hidden_states`` and ``attentions`` (when asked).
    """

    def __init__(self, transformer: nn.Module, pooling: tuple[str, ...] = ("mean",), normalize: bool = False,
                 dense: list[nn.Module] | None = None, max_seq_length: int | None = None, do_lower_case: bool = False):
        super().__init__()
        self.transformer = transformer
        self.pooling = tuple(pooling)
        self.normalize = normalize
        self.dense = nn.ModuleList(dense or [])
        self.max_seq_length = max_seq_length
        self.do_lower_case = do_lower_case

    @property
    def config(self):
        """The transformer's config (so size and speed helpers treat the encoder like a model)."""
        return self.transformer.config

    @property
    def embedding_dim(self) -> int:
        dim = self.config.hidden_size * len(self.pooling)
        for layer in self.dense:
            dim = layer.linear.out_features
        return dim

    def forward(self, input_ids, attention_mask, token_type_ids=None, output_hidden_states=False, output_attentions=False):
        kwargs = {"token_type_ids": token_type_ids} if token_type_ids is not None else {}
        out = self.transformer(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=output_hidden_states,
                               output_attentions=output_attentions, **kwargs)
        pooled = pool(out.last_hidden_state, attention_mask, self.pooling)
        emb = pooled
        for layer in self.dense:
            emb = layer(emb)
        if self.normalize:
            emb = nn.functional.normalize(emb, p=2, dim=-1)
        return SimpleNamespace(embeddings=emb, pooled=pooled, last_hidden_state=out.last_hidden_state,
                               hidden_states=getattr(out, "hidden_states", None), attentions=getattr(out, "attentions", None))


class DenseLayer(nn.Module):
    """sentence-transformers' Dense stage: ``activation(linear(x))`` (weights named ``linear.*``)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, activation: str = "torch.nn.modules.linear.Identity"):
        super().__init__()
        if activation not in _ACTIVATIONS:
            raise ProtegeError(f"Dense activation {activation} is not supported; protege reads {', '.join(_ACTIVATIONS)}")
        self.linear = nn.Linear(in_features, out_features, bias=bias)
        self.activation_name = activation
        self.activation = _ACTIVATIONS[activation]()

    def forward(self, x):
        return self.activation(self.linear(x))


def _load_dense(path: Path) -> DenseLayer:
    cfg = _read_json(path / "config.json", "Dense config")
    layer = DenseLayer(cfg["in_features"], cfg["out_features"], cfg.get("bias", True),
                       cfg.get("activation_function", "torch.nn.modules.activation.Tanh"))
    from protege.models.checks import check_weight_files

    check_weight_files(path)  # a cut Dense file is named, not met as a traceback in the reader
    if (path / "model.safetensors").is_file():
        from safetensors.torch import load_file

        state = load_file(path / "model.safetensors")
    elif (path / "pytorch_model.bin").is_file():
        state = torch.load(path / "pytorch_model.bin", map_location="cpu", weights_only=True)
    else:
        raise ProtegeError(f"{path}: no model.safetensors for this Dense layer; re-save the sentence-transformers folder")
    try:
        layer.load_state_dict(state)
    except RuntimeError:
        raise ProtegeError(f"{path}: the Dense weights do not fit its config.json; re-save the sentence-transformers folder") from None
    return layer


def load_sentence_encoder(folder, *, attn_implementation: str | None = None, role: str = "teacher") -> SentenceEncoder:
    """A :class:`SentenceEncoder` from a sentence-transformers folder (eval mode)."""
    from protege.models.families import load_model

    pipeline = read_pipeline(folder)
    transformer = load_model(str(pipeline.transformer_path), "encoder", attn_implementation=attn_implementation, role=role)
    dense = [_load_dense(p) for p in pipeline.dense]
    return SentenceEncoder(transformer, pipeline.pooling, pipeline.normalize, dense, pipeline.max_seq_length,
                           pipeline.do_lower_case).eval()


def save_sentence_encoder(encoder: SentenceEncoder, tokenizer, folder) -> None:
    """Write ``encoder`` as a sentence-transformers folder: transformer at the root, then Pooling, Dense, Normalize."""
    from safetensors.torch import save_file

    root = Path(folder)
    encoder.transformer.save_pretrained(root)
    tokenizer.save_pretrained(root)
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"}]
    (root / "1_Pooling").mkdir(exist_ok=True)
    pooling = {"word_embedding_dimension": encoder.config.hidden_size}
    pooling.update({key: mode in encoder.pooling for key, mode in _LEGACY_KEYS.items()})
    (root / "1_Pooling" / "config.json").write_text(json.dumps(pooling, indent=2) + "\n")
    modules.append({"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"})
    for layer in encoder.dense:
        idx = len(modules)
        sub = root / f"{idx}_Dense"
        sub.mkdir(exist_ok=True)
        lin = layer.linear
        (sub / "config.json").write_text(json.dumps({"in_features": lin.in_features, "out_features": lin.out_features,
                                                     "bias": lin.bias is not None,
                                                     "activation_function": layer.activation_name}, indent=2) + "\n")
        save_file({k: v.detach().cpu().contiguous() for k, v in layer.state_dict().items()}, sub / "model.safetensors")
        modules.append({"idx": idx, "name": str(idx), "path": sub.name, "type": "sentence_transformers.models.Dense"})
    if encoder.normalize:
        idx = len(modules)
        modules.append({"idx": idx, "name": str(idx), "path": f"{idx}_Normalize", "type": "sentence_transformers.models.Normalize"})
    (root / "modules.json").write_text(json.dumps(modules, indent=2) + "\n")
    settings = {"max_seq_length": encoder.max_seq_length or 256, "do_lower_case": encoder.do_lower_case}
    (root / "sentence_bert_config.json").write_text(json.dumps(settings, indent=2) + "\n")

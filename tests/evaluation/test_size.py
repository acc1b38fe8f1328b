"""parameter_counts and disk_size."""

import pytest
import torch
from torch import nn

from protege.errors import ProtegeError
from protege.evaluation.size import disk_size, parameter_counts


def test_tiny_teacher_counts_match_hand_sum(tiny_teacher):
    named = dict(tiny_teacher.named_parameters())
    total = sum(p.numel() for p in named.values())
    embeddings = sum(p.numel() for n, p in named.items() if n.endswith("_embeddings.weight"))
    assert embeddings > 0
    assert parameter_counts(tiny_teacher) == {"parameters": total, "non_embedding_parameters": total - embeddings}


def test_shared_parameter_counted_once():
    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4))
    model[1].weight = model[0].weight
    assert parameter_counts(model) == {"parameters": 16 + 4 + 4, "non_embedding_parameters": 24}


def test_distinct_parameters_over_one_tensor_counted_once():
    a, b = nn.Linear(4, 4, bias=False), nn.Linear(4, 4, bias=False)
    b.weight = nn.Parameter(a.weight.data)
    assert parameter_counts(nn.ModuleList([a, b]))["parameters"] == 16


def test_embedding_tied_to_head():
    class LM(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(10, 4)
            self.norm = nn.LayerNorm(4)
            self.head = nn.Linear(4, 10, bias=False)
            self.head.weight = self.emb.weight

    assert parameter_counts(LM()) == {"parameters": 40 + 8, "non_embedding_parameters": 8}


def test_parameter_counts_rejects_non_module():
    with pytest.raises(ProtegeError):
        parameter_counts(torch.zeros(3))


def test_disk_size_of_saved_model(tiny_teacher_dir):
    size = disk_size(tiny_teacher_dir)
    assert size > 0
    assert size == sum(p.stat().st_size for p in tiny_teacher_dir.glob("*.safetensors"))


def test_disk_size_bin_only_and_not_double_counted(tmp_path):
    (tmp_path / "pytorch_model.bin").write_bytes(b"x" * 100)
    (tmp_path / "training_args.bin").write_bytes(b"x" * 7)
    assert disk_size(tmp_path) == 100
    (tmp_path / "model.safetensors").write_bytes(b"x" * 60)
    assert disk_size(tmp_path) == 60


def test_disk_size_errors(tmp_path):
    with pytest.raises(ProtegeError):
        disk_size(tmp_path)
    with pytest.raises(ProtegeError):
        disk_size(tmp_path / "missing")

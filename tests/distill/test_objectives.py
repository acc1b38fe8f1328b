"""The weighted task-distillation objective built from the loss functions."""

from types import SimpleNamespace

import pytest
import torch

from protege import losses
from protege.objectives.task import Objective, distillation_losses
from protege.errors import ProtegeError


def _out(logits, hidden=None, attn=None):
    return SimpleNamespace(logits=logits, hidden_states=hidden, attentions=attn)


def test_kd_is_zero_when_the_student_matches_and_terms_are_weighted():
    torch.manual_seed(0)
    logits = torch.randn(4, 3)
    batch = {"attention_mask": torch.ones(4, 5), "labels": torch.tensor([0, 1, 2, 0])}
    same = distillation_losses(_out(logits.clone().requires_grad_()), _out(logits), batch, Objective(alpha_kd=1.0))
    assert same["kd"].item() == pytest.approx(0.0, abs=1e-6)
    student = torch.randn(4, 3, requires_grad=True)
    o = Objective(alpha_kd=0.7, alpha_ce=0.3, temperature=3.0)
    terms = distillation_losses(_out(student), _out(logits), batch, o)
    assert terms["kd"].item() == pytest.approx(losses.kl_divergence(student, logits, temperature=3.0).item())
    assert terms["ce"].item() == pytest.approx(losses.hard_cross_entropy(student, batch["labels"]).item())
    assert terms["loss"].item() == pytest.approx(0.7 * terms["kd"].item() + 0.3 * terms["ce"].item())


def test_kd_has_the_gradient_of_hintons_soft_cross_entropy():
    torch.manual_seed(1)
    t = torch.randn(6, 4)
    s1 = torch.randn(6, 4, requires_grad=True)
    s2 = s1.detach().clone().requires_grad_()
    distillation_losses(_out(s1), _out(t), {"attention_mask": torch.ones(6, 2)}, Objective(temperature=2.0))["loss"].backward()
    losses.soft_cross_entropy(s2, t, temperature=2.0).backward()
    assert torch.allclose(s1.grad, s2.grad, atol=1e-6)


def test_hidden_and_attention_terms_follow_the_layer_map():
    torch.manual_seed(2)
    mask = torch.ones(2, 5)
    t_hidden = [torch.randn(2, 5, 8) for _ in range(5)]  # embeddings + 4 blocks
    t_attn = [torch.softmax(torch.randn(2, 2, 5, 5), -1) for _ in range(4)]
    s_hidden = [t_hidden[0], t_hidden[2], t_hidden[4]]  # student blocks match teacher blocks 1 and 3
    s_attn = [t_attn[1], t_attn[3]]
    o = Objective(alpha_kd=0.0, alpha_hidden=1.0, alpha_attn=1.0, alpha_embed=1.0, layer_map=(1, 3))
    logits = torch.zeros(2, 2)
    terms = distillation_losses(_out(logits, s_hidden, s_attn), _out(logits, t_hidden, t_attn), {"attention_mask": mask}, o)
    assert terms["hidden"].item() == pytest.approx(0.0) and terms["attn"].item() == pytest.approx(0.0)
    assert terms["embed"].item() == pytest.approx(0.0)
    wrong = Objective(alpha_kd=0.0, alpha_hidden=1.0, layer_map=(0, 2))
    assert distillation_losses(_out(logits, s_hidden, s_attn), _out(logits, t_hidden, t_attn), {"attention_mask": mask}, wrong)["hidden"] > 0.1


def test_regression_uses_mse_and_hard_loss_needs_labels():
    s = torch.randn(5, 1, requires_grad=True)
    t = torch.randn(5, 1)
    o = Objective(alpha_kd=1.0, alpha_ce=1.0, problem_type="regression")
    terms = distillation_losses(_out(s), _out(t), {"attention_mask": torch.ones(5, 3), "labels": torch.randn(5)}, o)
    assert terms["kd"].item() == pytest.approx(torch.mean((s - t) ** 2).item())
    with pytest.raises(ProtegeError, match="--alpha-ce"):
        distillation_losses(_out(s), _out(t), {"attention_mask": torch.ones(5, 3)}, o)

"""LoRA students (--student-lora-r): only adapters and head train, and the output is a stock, merged classifier folder."""

import json

import pytest
import torch

import protege
from protege.errors import ProtegeError
from protege.models.lora import add_lora, merge_lora, parameter_split
from protege.recipes.distill.config import build_distill_config

QUIET = dict(progress=False, speed=False, max_length=24, batch_size=8)


def test_only_adapters_and_head_train_and_merging_keeps_the_function(tiny_teacher, tiny_tokenizer, tmp_path):
    from transformers import AutoModelForSequenceClassification

    model = add_lora(tiny_teacher, r=4, target="query,value")
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n or "classifier" in n for n in trainable)
    assert any("lora_A" in n for n in trainable) and any("classifier" in n for n in trainable)
    split = parameter_split(model)
    assert 0 < split["trainable_parameters"] < split["total_parameters"] / 5
    with torch.no_grad():  # lora_B starts at 0 (a no-op); give the adapters something to merge
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.5)
    batch = tiny_tokenizer(["the movie was good", "a dull plot"], return_tensors="pt", padding=True)
    model.eval()
    with torch.no_grad():
        before = model(**batch).logits
    merged = merge_lora(model)
    assert type(merged).__name__ == "BertForSequenceClassification"
    assert not any("lora" in n for n, _ in merged.named_parameters())
    merged.save_pretrained(tmp_path / "m")
    loaded = AutoModelForSequenceClassification.from_pretrained(tmp_path / "m").eval()
    with torch.no_grad():
        assert torch.allclose(loaded(**batch).logits, before, atol=1e-5)


def test_distill_a_lora_student_trains_adapters_and_head_only(tiny_teacher_dir, tiny_data_dir, tmp_path):
    from transformers import AutoModelForSequenceClassification

    out = tmp_path / "student"
    metrics = protege.distill(teacher=str(tiny_teacher_dir), train=str(tiny_data_dir / "train.tsv"),
                              eval=str(tiny_data_dir / "dev.tsv"), student_layers="0,1,2,3", out=str(out),
                              student_lora_r=4, student_lora_alpha=8, student_lora_target="query,value",
                              max_steps=8, lr=1e-2, **QUIET)
    lora = metrics["student"]["lora"]
    assert lora["r"] == 4 and lora["alpha"] == 8 and lora["target"] == ["query", "value"]
    assert 0 < lora["trainable_parameters"] < lora["total_parameters"]
    assert "LoRA r=4" in metrics["student"]["description"]
    assert not (out / "adapter_config.json").exists()
    assert json.loads((out / "config.json").read_text())["architectures"] == ["BertForSequenceClassification"]
    student = AutoModelForSequenceClassification.from_pretrained(out)
    teacher = AutoModelForSequenceClassification.from_pretrained(tiny_teacher_dir)
    s, t = student.state_dict(), teacher.state_dict()
    assert set(s) == set(t)  # a stock folder: the teacher's parameter names, no adapters
    frozen = [k for k in s if "key" in k or "intermediate" in k or "embeddings" in k]
    assert frozen and all(torch.equal(s[k], t[k]) for k in frozen)  # untouched: not targeted, not the head
    assert not torch.allclose(s["bert.encoder.layer.0.attention.self.query.weight"],
                              t["bert.encoder.layer.0.attention.self.query.weight"])  # the merged adapter
    assert not torch.allclose(s["classifier.weight"], t["classifier.weight"])  # the head trained in full


def _options(tiny_teacher_dir, tiny_data_dir, tmp_path, **kw):
    return {"teacher": str(tiny_teacher_dir), "train": str(tiny_data_dir / "train.tsv"), "out": str(tmp_path / "s"), **kw}


@pytest.mark.parametrize("extra, message", [
    ({"student_lora_alpha": 8}, r"--student-lora-alpha sets up a LoRA student; add --student-lora-r"),
    ({"student_lora_r": 0}, r"--student-lora-r must be a positive integer"),
    ({"student_lora_r": 4, "student_num_layers": 2}, r"not a random-init student"),
    ({"student_lora_r": 4, "student_lora_alpha": -1.0}, r"--student-lora-alpha must be > 0"),
])
def test_bad_lora_settings_are_refused_before_anything_loads(tiny_teacher_dir, tiny_data_dir, tmp_path, extra, message):
    with pytest.raises(ProtegeError, match=message):
        build_distill_config(_options(tiny_teacher_dir, tiny_data_dir, tmp_path, **extra))


def test_lora_is_for_task_distillation_and_needs_the_peft_extra(tiny_teacher_dir, tiny_data_dir, tmp_path, monkeypatch):
    with pytest.raises(ProtegeError, match="--student-lora-r is for task distillation"):
        build_distill_config({"objective": "mlm", "teacher": str(tiny_teacher_dir), "random_text": 10,
                              "out": str(tmp_path / "s"), "student_lora_r": 4})
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "peft" else real(name, *a))
    with pytest.raises(ProtegeError, match=r"pip install 'protege\[peft\]'"):
        build_distill_config(_options(tiny_teacher_dir, tiny_data_dir, tmp_path, student_lora_r=4))


def test_an_unknown_target_names_the_layers_it_could_adapt(tiny_teacher):
    with pytest.raises(ProtegeError, match=r"--student-lora-target qkv names no layer of the student.*query.*value"):
        add_lora(tiny_teacher, r=4, target="qkv")

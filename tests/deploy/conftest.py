"""Fixtures for the deploy tests: pruned students saved as folders, and one export shared by several tests."""

import copy

import pytest


def _save(model, tokenizer, folder):
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def student_dirs(_tiny_teacher_session, tiny_tokenizer, tmp_path_factory):
    """Folders of three students of the tiny teacher: head-pruned, FFN-pruned and layer-dropped."""
    from protege.models import keep_layers
    from protege.pruning import prune_ffn_, prune_heads_

    teacher = _tiny_teacher_session[0]
    root = tmp_path_factory.mktemp("students")
    heads = prune_heads_(copy.deepcopy(teacher), {0: [1], 2: [0], 3: [1]})  # uneven heads: needs load_pruned
    ffn = prune_ffn_(copy.deepcopy(teacher), {i: list(range(40)) for i in range(4)})
    layers = keep_layers(copy.deepcopy(teacher), [0, 3])
    return {name: _save(m.eval(), tiny_tokenizer, root / name)
            for name, m in (("heads", heads), ("ffn", ffn), ("layers", layers))}


@pytest.fixture(scope="session")
def exported(tiny_teacher_dir, tiny_data_dir, tmp_path_factory):
    """``protege.export`` of the tiny teacher with every variant (static int8 calibrated on train.tsv), timed briefly."""
    import torch

    import protege

    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("export") / "deploy"
    metrics = protege.export(str(tiny_teacher_dir), eval=str(tiny_data_dir / "dev.tsv"), compare=str(tiny_teacher_dir),
                             calibration=str(tiny_data_dir / "train.tsv"), calibration_examples=64, speed_seconds=0.05,
                             memory=False, max_length=32, out=str(out))
    return out, metrics

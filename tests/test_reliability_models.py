"""Issue 12, items 5 and 8: missing or degenerate tokenizers, broken weight files and impossible --max-length
are one-line errors, from every model loader and through the CLI, with nothing left on disk."""

import json
import os
import shutil

import pytest
import torch

from protege.cli.main import main
from protege.errors import ProtegeError
from protege.models import (
    check_max_length,
    load_backbone_as_classifier,
    load_classifier,
    load_config,
    load_tokenizer,
)
from protege.models.checks import position_limit
from protege.models.families import load_model
from protege.models.sentence import load_sentence_encoder
from protege.pruning import load_pruned

FAST = ["--no-progress", "--speed-seconds", "0.1", "--max-length", "32", "--batch-size", "16", "--max-steps", "2"]


def one_line(err) -> str:
    msg = str(err.value)
    assert "\n" not in msg
    return msg


def _nothing_written(out):
    assert not out.exists()
    assert not (out.parent / f".{out.name}.partial").exists()


def _copy_teacher(src, dst):
    shutil.copytree(src, dst)
    return dst


def _wordpiece(directory, words):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + words)}
    tk = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tk.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                  sep_token="[SEP]", mask_token="[MASK]")
    tok.save_pretrained(directory)


# --- item 5: tokenizers -------------------------------------------------------------------------

def test_a_model_folder_without_tokenizer_files_is_refused_not_read_as_unk(tiny_teacher, tmp_path):
    tiny_teacher.save_pretrained(tmp_path / "bare")  # weights and config, no tokenizer
    with pytest.raises(ProtegeError) as info:
        load_tokenizer(str(tmp_path / "bare"))
    msg = one_line(info)
    assert "no tokenizer files" in msg and str(tmp_path / "bare") in msg and "save_pretrained" in msg


def test_distill_from_a_teacher_without_tokenizer_exits_2_and_writes_nothing(tiny_teacher, tiny_data_dir, tmp_path, capsys):
    tiny_teacher.save_pretrained(tmp_path / "bare")
    out = tmp_path / "student"
    code = main(["distill", "--teacher", str(tmp_path / "bare"), "--train", str(tiny_data_dir / "train.tsv"),
                 "--out", str(out), *FAST])
    err = capsys.readouterr().err
    assert code == 2 and "no tokenizer files" in err and "Traceback" not in err
    _nothing_written(out)


@pytest.mark.parametrize("words, why", [
    ([], "only 5 tokens"),
    (["zq1", "zq2", "zq3", "zq4", "zq5", "zq6", "zq7", "zq8"], "unknown token"),
])
def test_a_degenerate_tokenizer_is_refused(tmp_path, words, why):
    _wordpiece(tmp_path, words)
    with pytest.raises(ProtegeError) as info:
        load_tokenizer(str(tmp_path))
    assert why in one_line(info)


def test_a_real_tokenizer_still_loads(tiny_tokenizer_dir, tiny_tokenizer):
    assert load_tokenizer(str(tiny_tokenizer_dir)).get_vocab() == tiny_tokenizer.get_vocab()


# --- item 8: truncated or corrupted weights -----------------------------------------------------

def _break(path, how):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if how == "half" else os.urandom(len(data)))


def _sentence_folder(tiny_teacher, tiny_tokenizer, folder):
    tiny_teacher.bert.save_pretrained(folder)
    tiny_tokenizer.save_pretrained(folder)
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]
    (folder / "modules.json").write_text(json.dumps(modules))
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_mean_tokens": True}))
    return folder


LOADERS = {
    "classifier": lambda d: load_classifier(str(d)),
    "backbone": lambda d: load_backbone_as_classifier(str(d), problem_type="single_label_classification",
                                                      id2label={0: "a", 1: "b"}),
    "pruned": lambda d: load_pruned(str(d)),
    "families": lambda d: load_model(str(d), "encoder"),
    "config": lambda d: load_config(str(d)),
}


@pytest.mark.parametrize("how", ["half", "random"])
@pytest.mark.parametrize("loader", sorted(LOADERS))
def test_every_loader_names_a_broken_safetensors_file(tiny_teacher_dir, tmp_path, loader, how):
    folder = _copy_teacher(tiny_teacher_dir, tmp_path / "model")
    _break(folder / "model.safetensors", how)
    with pytest.raises(ProtegeError) as info:
        LOADERS[loader](folder)
    msg = one_line(info)
    assert str(folder / "model.safetensors") in msg and "re-save" in msg and "download it again" in msg


@pytest.mark.parametrize("part", ["transformer", "dense"])
def test_the_sentence_transformers_loader_names_a_broken_file(tiny_teacher, tiny_tokenizer, tmp_path, part):
    from safetensors.torch import save_file

    folder = _sentence_folder(tiny_teacher, tiny_tokenizer, tmp_path / "st")
    broken = folder / "model.safetensors"
    if part == "dense":
        dense = folder / "2_Dense"
        dense.mkdir()
        (dense / "config.json").write_text(json.dumps({"in_features": 32, "out_features": 8}))
        save_file({"linear.weight": torch.zeros(8, 32), "linear.bias": torch.zeros(8)}, str(dense / "model.safetensors"))
        modules = json.loads((folder / "modules.json").read_text())
        modules.append({"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"})
        (folder / "modules.json").write_text(json.dumps(modules))
        assert load_sentence_encoder(folder).embedding_dim == 8  # whole, it loads
        broken = dense / "model.safetensors"
    _break(broken, "half")
    with pytest.raises(ProtegeError) as info:
        load_sentence_encoder(folder)
    assert str(broken) in one_line(info) and "re-save" in str(info.value)


def test_evaluate_on_a_truncated_model_exits_2_with_one_line(tiny_teacher_dir, tiny_data_dir, tmp_path, capsys):
    folder = _copy_teacher(tiny_teacher_dir, tmp_path / "model")
    _break(folder / "model.safetensors", "half")
    code = main(["evaluate", str(folder), "--eval", str(tiny_data_dir / "dev.tsv"), "--no-speed"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "model.safetensors" in err and "truncated" in err and len(err.strip().splitlines()) == 1


def test_a_whole_weights_file_passes(tiny_teacher_dir):
    assert load_classifier(str(tiny_teacher_dir)).config.num_labels == 2


# --- item 8: --max-length above the position table ----------------------------------------------

def test_check_max_length_uses_the_position_table_less_robertas_offset():
    from transformers import BertConfig, RobertaConfig

    bert, roberta = BertConfig(max_position_embeddings=64), RobertaConfig(max_position_embeddings=514)
    assert position_limit(bert) == 64 and position_limit(roberta) == 512
    check_max_length(bert, 64)
    check_max_length(roberta, 512)
    with pytest.raises(ProtegeError) as info:
        check_max_length(bert, 65)
    assert one_line(info).startswith("--max-length 65 exceeds") and "--max-length 64 or less" in str(info.value)
    with pytest.raises(ProtegeError, match=r"--max-seq 513 .*514 positions, 2 of them reserved.*--max-seq 512"):
        check_max_length(roberta, 513, flag="--max-seq")


def test_check_max_length_skips_models_without_a_position_table():
    from types import SimpleNamespace

    check_max_length(SimpleNamespace(model_type="t5"), 100_000)
    check_max_length(SimpleNamespace(max_position_embeddings=64), None)


def test_an_unchosen_default_max_length_is_fitted_but_a_chosen_one_is_refused(tiny_teacher_dir, tiny_data_dir, capsys):
    from protege.cli.main import main

    base = ["evaluate", str(tiny_teacher_dir), "--eval", str(tiny_data_dir / "dev.tsv"), "--no-speed"]
    assert main(base) == 0  # the default 128 becomes the tiny model's 64 positions
    assert main(base + ["--max-length", "128"]) == 2
    assert "--max-length 128 exceeds the model's 64 positions" in capsys.readouterr().err

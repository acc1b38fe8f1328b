"""Bad input to export and compress: one line, exit 2, nothing on disk."""

import sys

import pytest

from protege.cli.main import main


def _nothing_written(out):
    return not out.exists() and not (out.parent / f".{out.name}.partial").exists()


@pytest.fixture
def paths(tiny_teacher_dir, tiny_data_dir, tmp_path):
    not_a_model = tmp_path / "notes"
    not_a_model.mkdir()
    (not_a_model / "readme.txt").write_text("not a model\n")
    numbers = tmp_path / "numbers.tsv"
    numbers.write_text("id\tscore\n1\t0.5\n2\t0.25\n")
    return {"teacher": str(tiny_teacher_dir), "dev": str(tiny_data_dir / "dev.tsv"), "train": str(tiny_data_dir / "train.tsv"),
            "notes": str(not_a_model), "numbers": str(numbers)}


EXPORT_CASES = {
    "not a model folder": (["{notes}"], "config.json"),
    "calibration without a text column": (["{teacher}", "--calibration", "{numbers}"], "--calibration"),
    "min agreement above 1": (["{teacher}", "--min-agreement", "1.01"], "--min-agreement"),
    "min agreement 0": (["{teacher}", "--min-agreement", "0"], "--min-agreement"),
    "static int8 without calibration": (["{teacher}", "--variants", "onnx-int8-static"], "--calibration"),
    "mixed int8 without calibration": (["{teacher}", "--variants", "onnx-fp32,onnx-int8-mixed"], "--calibration"),
    "unknown variant": (["{teacher}", "--variants", "tensorrt-fp8"], "--variants"),
    "resume": (["{teacher}", "--resume"], "--resume"),
    "old opset": (["{teacher}", "--opset", "11"], "--opset"),
    "max length above the position table": (["{teacher}", "--max-length", "128"], "--max-length"),
}


@pytest.mark.parametrize("case", EXPORT_CASES, ids=list(EXPORT_CASES))
def test_export_bad_input_exits_2_and_writes_nothing(case, paths, tmp_path, capsys):
    args, words = EXPORT_CASES[case]
    out = tmp_path / "out"
    argv = ["export", "--max-length", "32"] + [a.format(**paths) for a in args] + ["--eval", paths["dev"], "--out", str(out),
                                                                                  "--no-speed", "--no-memory"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("protege: error:") and words in err and len(err.splitlines()) == 1, err
    assert _nothing_written(out)


def test_export_needs_eval(paths, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["export", paths["teacher"], "--out", str(out)]) == 2
    assert "--eval is required" in capsys.readouterr().err
    assert _nothing_written(out)


def test_export_refuses_an_existing_out_and_leaves_it_alone(paths, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main(["export", paths["teacher"], "--eval", paths["dev"], "--out", str(out), "--no-speed", "--no-memory"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_an_exported_onnx_folder_is_not_exported_again(exported, paths, tmp_path, capsys):
    folder, _ = exported
    out = tmp_path / "again"
    assert main(["export", str(folder / "onnx-fp32"), "--eval", paths["dev"], "--out", str(out), "--no-speed"]) == 2
    assert "already an exported ONNX model" in capsys.readouterr().err
    assert _nothing_written(out)


def test_a_failing_exporter_names_the_step_and_leaves_nothing(paths, tmp_path, monkeypatch, capsys):
    import torch

    def broken(*args, **kwargs):
        raise RuntimeError("Unsupported operator aten::mystery")

    monkeypatch.setattr(torch.onnx, "export", broken)
    out = tmp_path / "out"
    assert main(["export", paths["teacher"], "--eval", paths["dev"], "--out", str(out), "--no-speed", "--no-memory",
                 "--variants", "onnx-fp32", "--max-length", "32"]) == 2
    err = capsys.readouterr().err
    assert "torch.onnx.export failed" in err and "aten::mystery" in err and "supports BERT" in err
    assert _nothing_written(out)


def test_a_missing_extra_is_named(paths, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime now raises ImportError
    out = tmp_path / "out"
    assert main(["export", paths["teacher"], "--eval", paths["dev"], "--out", str(out)]) == 2
    assert "pip install 'protege[export]'" in capsys.readouterr().err
    assert _nothing_written(out)


COMPRESS_CASES = {
    "speedup 0": (["--target-speedup", "0"], "--target-speedup"),
    "negative speedup": (["--target-speedup", "-2"], "--target-speedup"),
    "negative latency": (["--target-latency-ms", "-1"], "--target-latency-ms"),
    "two budgets": (["--target-speedup", "2", "--min-retention", "0.9"], "exactly one budget"),
    "no budget": ([], "exactly one budget"),
    "no speed": (["--target-speedup", "2", "--no-speed"], "--no-speed"),
    "max length above the position table": (["--target-speedup", "2", "--max-length", "128"], "--max-length"),
    "not a model folder": (["--target-speedup", "2", "--teacher", "{notes}"], "config.json"),
    "calibration without a text column": (["--target-speedup", "2", "--calibration", "{numbers}", "--variants",
                                           "onnx-int8-static"], "--calibration"),
}


@pytest.mark.parametrize("case", COMPRESS_CASES, ids=list(COMPRESS_CASES))
def test_compress_bad_input_exits_2_and_writes_nothing(case, paths, tmp_path, capsys, monkeypatch):
    import protege.recipes.compress as compress

    # a bad calibration file must fail before any training: make training impossible to notice otherwise
    monkeypatch.setattr(compress, "_run_candidates", lambda *a, **k: pytest.fail("trained before validating"))
    args, words = COMPRESS_CASES[case]
    out = tmp_path / "out"
    argv = ["compress", "--teacher", paths["teacher"], "--train", paths["train"], "--eval", paths["dev"], "--out", str(out),
            "--max-length", "32"]
    assert main(argv + [a.format(**paths) for a in args]) == 2
    err = capsys.readouterr().err.strip()
    assert words in err and len(err.splitlines()) == 1, err
    assert _nothing_written(out)


def test_compress_rejects_a_bad_candidate_list(paths, tmp_path, capsys):
    bad = tmp_path / "c.yaml"
    bad.write_text("- layers: 9\n")  # the tiny teacher has 4
    out = tmp_path / "out"
    assert main(["compress", "--teacher", paths["teacher"], "--train", paths["train"], "--eval", paths["dev"], "--out", str(out),
                 "--candidates", str(bad), "--target-speedup", "2", "--max-length", "32"]) == 2
    assert "layers must be an integer from 1" in capsys.readouterr().err
    assert _nothing_written(out)


@pytest.mark.parametrize("verb", ["export", "compress"])
def test_help_lists_the_flags(verb, capsys):
    assert main([verb, "--help"]) == 0
    text = capsys.readouterr().out
    assert "--min-agreement" in text and ("--calibration" in text)

"""Every verb's metrics.json follows the one documented schema, with a version and no secret in the command."""

import json

import jsonschema
import pytest

from protege.cli.main import main
from protege.engine.finish import SCHEMA_PATH, SCHEMA_VERSION, recorded_command

FAST = ["--no-progress", "--no-speed", "--max-length", "32", "--batch-size", "8", "--max-steps", "2"]


def _valid(path):
    metrics = json.loads(path.read_text())
    jsonschema.validate(metrics, json.loads(SCHEMA_PATH.read_text()))
    assert metrics["schema_version"] == SCHEMA_VERSION and metrics["protege_version"]
    return metrics


def test_the_schema_is_a_valid_json_schema():
    jsonschema.Draft202012Validator.check_schema(json.loads(SCHEMA_PATH.read_text()))


def test_finetune_distill_prune_and_evaluate_write_the_schema(tiny_teacher_dir, tiny_data_dir, tmp_path):
    train, dev = str(tiny_data_dir / "train.tsv"), str(tiny_data_dir / "dev.tsv")
    assert main(["finetune", "--model", str(tiny_teacher_dir), "--train", train, "--eval", dev, "--out", str(tmp_path / "f"),
                 *FAST]) == 0
    assert _valid(tmp_path / "f" / "metrics.json")["method"] == "finetune"
    assert main(["distill", "--teacher", str(tiny_teacher_dir), "--train", train, "--eval", dev, "--student-layers", "0,2",
                 "--out", str(tmp_path / "d"), *FAST]) == 0
    assert _valid(tmp_path / "d" / "metrics.json")["method"] == "distill"
    assert main(["prune", str(tiny_teacher_dir), "--method", "magnitude", "--sparsity", "0.3", "--eval", dev,
                 "--out", str(tmp_path / "p"), "--no-progress", "--no-speed", "--max-length", "32"]) == 0
    assert _valid(tmp_path / "p" / "metrics.json")["method"] == "prune"
    assert main(["evaluate", str(tmp_path / "d"), "--eval", dev, "--compare", str(tiny_teacher_dir), "--no-speed",
                 "--out", str(tmp_path / "e.json")]) == 0
    assert _valid(tmp_path / "e.json")["method"] == "evaluate"


def test_general_distillation_writes_the_schema(general_dir, tmp_path):
    assert main(["distill", "--objective", "mlm", "--teacher", str(general_dir / "bert-mlm"), "--train-text",
                 str(general_dir / "corpus.txt"), "--student-layers", "every-other", "--out", str(tmp_path / "m"), *FAST]) == 0
    assert _valid(tmp_path / "m" / "metrics.json")["method"] == "distill-mlm"


@pytest.mark.parametrize("argv, shown", [
    (["extract", "--api-key", "s3cret", "--budget", "5"], "--api-key ***"),
    (["extract", "--api-key=s3cret"], "--api-key=***"),
    (["serve", "m", "--watermark-key", "s3cret"], "--watermark-key ***"),
    (["distill", "--hf-token", "s3cret"], "--hf-token ***"),
])
def test_secrets_are_masked_in_the_recorded_command(argv, shown):
    command = recorded_command(argv)
    assert "s3cret" not in command and shown in command

"""A head-pruned folder (not expressible in a stock config) still evaluates and compares cleanly."""

import json

from protege.cli.main import main


def test_evaluate_a_head_pruned_model_against_its_dense_teacher(tiny_teacher_dir, tiny_data_dir, tmp_path, capsys):
    out = tmp_path / "slim"
    assert main(["prune", str(tiny_teacher_dir), "--method", "structured", "--keep-heads", "1", "--importance", "magnitude",
                 "--out", str(out), "--no-speed", "--no-progress"]) == 0
    assert json.loads((out / "config.json").read_text()).get("protege_pruned_heads")
    capsys.readouterr()
    report = tmp_path / "r.json"
    assert main(["evaluate", str(out), "--eval", str(tiny_data_dir / "dev.tsv"), "--compare", str(tiny_teacher_dir),
                 "--no-speed", "--out", str(report)]) == 0
    metrics = json.loads(report.read_text())
    assert metrics["size"]["parameters"] < metrics["teacher"]["size"]["parameters"]
    assert 0 <= metrics["eval"]["agreement"]["agreement"] <= 1

"""``protege evaluate --fidelity`` end to end on tiny models, and its section in ``protege report``."""

import contextlib
import io
import json

import pytest

from protege.cli.main import main
from helpers import make_flipped_student

PNG = b"\x89PNG\r\n\x1a\n"
RARE = ["zebra", "quokka", "xylophone", "kumquat"]  # spelled out in letter pieces never seen in train.tsv


@pytest.fixture(scope="module")
def fidelity_run(tmp_path_factory, tiny_teacher_dir, tiny_data_dir):
    """One full run: --train, --ood, internals; returns (folder, metrics, stdout, exit code)."""
    import torch

    root = tmp_path_factory.mktemp("fidelity")
    dev = (tiny_data_dir / "dev.tsv").read_text().splitlines()
    rare_rows = [f"the movie was {w} good\t1" for w in RARE] + [f"a {w} and dull plot\t0" for w in RARE]
    (root / "eval.tsv").write_text("\n".join(dev[:33] + rare_rows) + "\n")  # 32 common + 8 rare examples
    ood = "".join(f"stock market {w} fine\t1\npolice city bad {w}\t0\n" for w in RARE)
    (root / "ood.tsv").write_text("sentence\tlabel\n" + ood)
    student = make_flipped_student(root / "student", tiny_teacher_dir, root / "eval.tsv")
    out = root / "run" / "metrics.json"
    stdout = io.StringIO()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(stdout):
        mp.setenv("PROTEGE_CACHE", str(root / "cache"))
        code = main(["evaluate", str(student), "--eval", str(root / "eval.tsv"), "--compare", str(tiny_teacher_dir),
                     "--no-speed", "--train", str(tiny_data_dir / "train.tsv"), "--ood", str(root / "ood.tsv"),
                     "--out", str(out), "--fidelity-sample", "12", "--fidelity-examples", "5",
                     "--gate", "agreement>=0.2,ood.agreement>=0,rare_share<=0.5,cka_min>=0.5"])
    torch.set_num_threads(threads)
    return root, json.loads(out.read_text()), stdout.getvalue(), code


def test_the_section_holds_flips_distance_calibration_slices_and_passes_the_schema(fidelity_run):
    import jsonschema

    from protege.engine.finish import SCHEMA_PATH

    _, metrics, _, code = fidelity_run
    assert code == 0
    jsonschema.validate(metrics, json.loads(SCHEMA_PATH.read_text()))
    fid = metrics["fidelity"]
    assert fid["n"] == 40 and fid["source"].endswith("eval.tsv")
    fl = fid["flips"]
    assert fl["lost"] + fl["gained"] <= fl["changed"] and 0 < fl["changed"] < 40
    assert fid["agreement"] == pytest.approx(metrics["eval"]["agreement"]["agreement"])
    assert fid["distance"]["kl_mean"] == pytest.approx(metrics["eval"]["agreement"]["kl"], rel=1e-4)
    assert set(fid["calibration"]) == {"bins", "teacher", "student"}
    assert set(fid["slices"]) == {"all", "length", "label", "confidence", "rarity"}
    # rarity: exactly the eight examples with words never seen in train.tsv
    assert [(b["name"], b["n"]) for b in fid["slices"]["rarity"]] == [("rare", 8), ("rest", 32)]
    assert fid["figures"]["rare_share"] == pytest.approx(0.2)
    assert fid["rarity"]["train_examples"] == 160 and fid["rarity"]["cached"] is False
    assert {b["name"] for b in fid["slices"]["label"]} == {"negative", "positive"}
    assert len(fid["most_changed"]) == 5 and fid["gates"]["passed"] is True


def test_ood_set_and_internals_of_a_kept_layer_student(fidelity_run):
    _, metrics, _, _ = fidelity_run
    fid = metrics["fidelity"]
    assert fid["ood"]["n"] == 8 and fid["ood"]["source"].endswith("ood.tsv") and "flips" in fid["ood"]
    assert fid["figures"]["ood.rare_share"] == 1.0  # every OOD example holds an unseen word
    inside = fid["internals"]
    assert inside["layer_map"] == [0, 2] and inside["layer_map_source"] == "matched by weights"
    assert inside["examples"] == 12 and len(inside["cka"]) == 2 and len(inside["cka"][0]) == 4
    assert inside["cka_mapped"][0] == pytest.approx(1.0)  # student layer 0 is teacher layer 0 on the same input
    assert len(inside["attention_js"]) == 2 and len(inside["attention_js"][0]) == 2  # 2 layers x 2 heads
    assert inside["attention_js"][0] == pytest.approx([0.0, 0.0], abs=1e-3)


def test_jsonl_lists_changed_examples_with_text_and_the_plots_are_written(fidelity_run):
    root, metrics, stdout, _ = fidelity_run
    folder = root / "run" / "fidelity"
    names = {p.name for p in folder.iterdir()}
    assert names == {"fidelity.jsonl", "reliability.png", "slices.png", "internals.png"}
    assert all((folder / n).read_bytes().startswith(PNG) for n in names if n.endswith(".png"))
    records = [json.loads(line) for line in (folder / "fidelity.jsonl").read_text().splitlines()]
    evals = [r for r in records if r["set"] == "eval"]
    assert sum(r["teacher"] != r["student"] for r in evals) == metrics["fidelity"]["flips"]["changed"]
    changes = [r["change"] for r in evals]
    assert changes == sorted(changes, reverse=True) and all(r["text"] for r in evals)
    assert {r["set"] for r in records} <= {"eval", "ood"}
    assert "fidelity on" in stdout and "flips:" in stdout and "McNemar" in stdout and "gate cka_min>=0.5 passed" in stdout


def test_rerun_reads_the_cached_token_counts(fidelity_run, tiny_teacher_dir, tiny_data_dir, tmp_path, monkeypatch):
    root, *_ = fidelity_run
    monkeypatch.setenv("PROTEGE_CACHE", str(root / "cache"))
    out = tmp_path / "m.json"
    assert main(["evaluate", str(root / "student"), "--eval", str(root / "eval.tsv"), "--compare", str(tiny_teacher_dir),
                 "--no-speed", "--train", str(tiny_data_dir / "train.tsv"), "--fidelity-sample", "0", "--out", str(out)]) == 0
    fid = json.loads(out.read_text())["fidelity"]
    assert fid["rarity"]["cached"] is True and "internals" not in fid


def test_report_shows_a_fidelity_section_with_its_plots(fidelity_run, tmp_path):
    root, metrics, *_ = fidelity_run
    out = tmp_path / "report"
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["report", str(root / "run"), "--out", str(out)]) == 0
    page = (out / "index.html").read_text()
    assert '<h2 id="fidelity">Fidelity</h2>' in page and "McNemar p (worse)" in page and "OOD agreement" in page
    assert "the 5 most changed examples" in page and metrics["fidelity"]["most_changed"][0]["text"] in page
    pngs = {p.name for p in out.glob("fidelity-*.png")}
    assert pngs == {"fidelity-run-reliability.png", "fidelity-run-slices.png", "fidelity-run-internals.png"}
    assert all(f'id="{n}"' in page for n in pngs)
    assert "fidelity-run-slices.png" in (out / "report.md").read_text()


def test_regression_teacher_is_measured_by_error(tmp_path, tiny_tokenizer, capsys):
    import torch
    from transformers import BertForSequenceClassification

    import protege
    from helpers import tiny_bert_config

    torch.manual_seed(0)
    teacher = BertForSequenceClassification(tiny_bert_config(len(tiny_tokenizer), num_labels=1)).eval()
    teacher.save_pretrained(tmp_path / "t")
    tiny_tokenizer.save_pretrained(tmp_path / "t")
    student = protege.keep_layers(teacher, [1, 3])
    with torch.no_grad():
        student.classifier.bias += 0.3
    student.save_pretrained(tmp_path / "s")
    tiny_tokenizer.save_pretrained(tmp_path / "s")
    rows = "".join(f"the movie was good {'very ' * i}\t{i / 4}\n" for i in range(12))
    (tmp_path / "sts.tsv").write_text("sentence\tscore\n" + rows)
    args = ["evaluate", str(tmp_path / "s"), "--eval", str(tmp_path / "sts.tsv"), "--compare", str(tmp_path / "t"),
            "--no-speed", "--fidelity-sample", "4", "--out", str(tmp_path / "m.json")]
    assert main(args + ["--gate", "ece_delta<=0.1"]) == 2
    assert "not reported for a regression teacher" in capsys.readouterr().err
    assert not (tmp_path / "m.json").exists()
    assert main(args + ["--gate", "mae_delta<=10,errors_worse<=1"]) == 0
    fid = json.loads((tmp_path / "m.json").read_text())["fidelity"]
    assert fid["problem_type"] == "regression" and "flips" not in fid
    assert fid["distance"]["diff_mean"] == pytest.approx(0.3, abs=0.05)
    assert fid["internals"]["layer_map"] == [1, 3]
    assert "errors: MAE" in capsys.readouterr().out


def test_a_student_without_parameters_like_an_exported_one_is_measured_but_internals_skipped(fidelity_run, tiny_teacher_dir,
                                                                                              tiny_data_dir):
    """An exported student runs behind a parameter-free module (ONNX Runtime): same numbers, no internals."""
    import numpy as np
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from protege.data import LabelSpace, load_examples, map_labels
    from protege.data.batching import encode
    from protege.evaluation.fidelity_run import measure_fidelity
    from protege.evaluation.predict import predict
    from protege.recipes.evaluate import EvaluateConfig

    class Runtime(torch.nn.Module):  # holds the model outside the module tree: no parameters, like OrtClassifier
        def __init__(self, model):
            super().__init__()
            object.__setattr__(self, "inner", model)
            self.config = model.config

        def forward(self, **inputs):
            return self.inner(**inputs)

    root, metrics, *_ = fidelity_run
    tok = AutoTokenizer.from_pretrained(tiny_teacher_dir)
    student = Runtime(AutoModelForSequenceClassification.from_pretrained(root / "student").eval())
    teacher = AutoModelForSequenceClassification.from_pretrained(tiny_teacher_dir).eval()
    assert list(student.parameters()) == []
    cfg = EvaluateConfig(model=str(root / "student"), compare=str(tiny_teacher_dir), eval=str(root / "eval.tsv"),
                         ood=str(root / "ood.tsv"), fidelity_sample=4)
    examples = map_labels(load_examples(cfg.eval), LabelSpace("single_label_classification", dict(teacher.config.id2label)))
    feats = encode(examples, tok, max_length=cfg.max_length)
    logits = {role: predict(m, feats, pad_token_id=0, device="cpu") for role, m in (("student", student), ("teacher", teacher))}
    fid, _ = measure_fidelity(cfg, ("s", student, tok, None), ("t", teacher, tok, None), examples, logits,
                           problem_type="single_label_classification")
    assert "exported runtime" in fid["internals"]["skipped"] and "cka_min" not in fid["figures"]
    assert fid["ood"]["n"] == 8
    assert np.isclose(fid["figures"]["agreement"], metrics["fidelity"]["figures"]["agreement"])

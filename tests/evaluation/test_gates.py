"""``--gate``: parsing, checking, and the exit codes of ``protege evaluate`` (0 pass, 1 a budget failed, 2 bad input)."""

import json

import pytest

from protege.cli.main import main
from protege.errors import ProtegeError
from protege.evaluation.gates import Gate, check_gate_names, check_gates, format_gates, parse_gates
from helpers import make_flipped_student


def test_parse_budgets_with_spaces_and_percentages():
    assert parse_gates("agreement>=0.95, flips_lost <= 2% ,ece_delta<0.02,ood.kl_mean>0") == [
        Gate("agreement", ">=", 0.95), Gate("flips_lost", "<=", 0.02), Gate("ece_delta", "<", 0.02),
        Gate("ood.kl_mean", ">", 0.0)]
    assert str(Gate("agreement", ">=", 0.95)) == "agreement>=0.95"


@pytest.mark.parametrize("text, words", [
    ("", "is empty"),
    ("agreement 0.95", "has no comparison"),
    ("agreement>=", "is not a number"),
    ("agreement>=high", "is not a number"),
    ("agreement=0.95", "a bound, not an equality"),
    ("agreement>=0.9,,kl_mean<=1", "empty budget"),
    ("agreement>=nan", "finite"),
    (">=0.9", "has no comparison"),
])
def test_malformed_expressions_are_one_line_errors(text, words):
    with pytest.raises(ProtegeError, match=words) as err:
        parse_gates(text)
    assert "\n" not in str(err.value)


def test_unknown_figures_and_figures_needing_data_not_given_are_refused():
    with pytest.raises(ProtegeError, match=r"unknown figure 'agrement' \(did you mean agreement\?\)"):
        check_gate_names(parse_gates("agrement>=0.9"))
    with pytest.raises(ProtegeError, match=r"did you mean ood.flips_lost\?"):
        check_gate_names(parse_gates("ood.flip_lost<=0.1"))
    with pytest.raises(ProtegeError, match="pass --ood FILE"):
        check_gate_names(parse_gates("ood.agreement>=0.9"), ood=False)
    with pytest.raises(ProtegeError, match="pass --train FILE"):
        check_gate_names(parse_gates("rare_accuracy_gap>=-0.05"), train=False)
    with pytest.raises(ProtegeError, match="not reported for a regression teacher"):
        check_gate_names(parse_gates("ece_delta<=0.02"), problem_type="regression")
    with pytest.raises(ProtegeError, match="not reported for a classification teacher"):
        check_gate_names(parse_gates("mae_delta<=0.02"), problem_type="single_label_classification")
    with pytest.raises(ProtegeError, match="measured on --eval only"):
        check_gate_names(parse_gates("ood.cka_min>=0.5"))
    check_gate_names(parse_gates("rare_share<=1,cka_min>=0.5"), problem_type="regression")  # any problem type


def test_budgets_pass_fail_by_how_much_and_skip_unmeasured_figures_unless_strict():
    figures = {"agreement": 0.93, "flips_lost": 0.01, "ece_delta": 0.05}
    report = check_gates(parse_gates("agreement>=0.95,flips_lost<=0.02,ece_delta<=0.02,rare_agreement>=0.9"), figures)
    assert [r["passed"] for r in report["results"]] == [False, True, False, None] and report["passed"] is False
    assert report["results"][0]["by"] == pytest.approx(0.02) and report["results"][2]["by"] == pytest.approx(0.03)
    lines = format_gates(report)
    assert lines[0] == "gate agreement>=0.95 failed: agreement = 0.93, 0.02 under the budget"
    assert lines[2] == "gate ece_delta<=0.02 failed: ece_delta = 0.05, 0.03 over the budget"
    assert lines[3] == "gate rare_agreement>=0.9 skipped: rare_agreement was not measured on this run"
    assert check_gates(parse_gates("rare_agreement>=0.9"), figures)["passed"] is True
    assert check_gates(parse_gates("rare_agreement>=0.9"), figures, strict=True)["passed"] is False
    assert check_gates(parse_gates("agreement>0.93"), figures)["passed"] is False  # strict inequality


# --- exit codes through the CLI ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def flipped_student(tmp_path_factory, tiny_teacher_dir, tiny_data_dir):
    """Teacher layers 0 and 2 with a new random head centred on the dev set, so about half the answers flip."""
    return make_flipped_student(tmp_path_factory.mktemp("flipped"), tiny_teacher_dir, tiny_data_dir / "dev.tsv")


def evaluate(student, teacher, data, out, *flags):
    return main(["evaluate", str(student), "--eval", str(data / "dev.tsv"), "--compare", str(teacher), "--no-speed",
                 "--fidelity-sample", "0", "--out", str(out), *flags])


def test_passing_gates_exit_0_and_failing_ones_exit_1_naming_the_budget(flipped_student, tiny_teacher_dir, tiny_data_dir,
                                                                        tmp_path, capsys):
    out = tmp_path / "m.json"
    assert evaluate(flipped_student, tiny_teacher_dir, tiny_data_dir, out, "--gate", "agreement>=0.1,flips_lost<=1") == 0
    captured = capsys.readouterr()
    assert "gate agreement>=0.1 passed" in captured.out and captured.err == ""
    agreement = json.loads(out.read_text())["fidelity"]["figures"]["agreement"]
    assert 0.1 < agreement < 1  # the new head flipped some answers, not all

    assert evaluate(flipped_student, tiny_teacher_dir, tiny_data_dir, out, "--gate", "agreement>=1,flips_lost<=1") == 1
    captured = capsys.readouterr()
    assert captured.err.strip() == f"gate agreement>=1 failed: agreement = {agreement:.4g}, {1 - agreement:.4g} under the budget"
    gates = json.loads(out.read_text())["fidelity"]["gates"]  # the metrics are still written: the run itself was fine
    assert gates["passed"] is False and [r["passed"] for r in gates["results"]] == [False, True]


@pytest.mark.parametrize("gate, words", [("agreement=>0.9", "not an equality"), ("agrement>=0.9", "did you mean agreement"),
                                         ("ood.agreement>=0.9", "pass --ood FILE"), ("rare_agreement>=0.9", "pass --train FILE")])
def test_bad_gates_exit_2_with_one_line_and_write_nothing(gate, words, flipped_student, tiny_teacher_dir, tiny_data_dir,
                                                          tmp_path, capsys):
    out = tmp_path / "m.json"
    assert evaluate(flipped_student, tiny_teacher_dir, tiny_data_dir, out, "--gate", gate) == 2
    err = capsys.readouterr().err.strip()
    assert words in err and len(err.splitlines()) == 1 and err.startswith("protege: error: ")
    assert list(tmp_path.iterdir()) == []


def test_unmeasured_figure_is_skipped_or_fails_with_strict(flipped_student, tiny_teacher_dir, tiny_data_dir, tmp_path, capsys):
    out = tmp_path / "m.json"
    flags = ("--gate", "cka_min>=0.5")  # internals are off (--fidelity-sample 0): not measured
    assert evaluate(flipped_student, tiny_teacher_dir, tiny_data_dir, out, *flags) == 0
    assert "gate cka_min>=0.5 skipped" in capsys.readouterr().out
    assert evaluate(flipped_student, tiny_teacher_dir, tiny_data_dir, out, *flags, "--strict") == 1
    assert "gate cka_min>=0.5 failed: cka_min was not measured" in capsys.readouterr().err


def test_fidelity_without_a_teacher_is_bad_input(flipped_student, tiny_data_dir, tmp_path, capsys):
    code = main(["evaluate", str(flipped_student), "--eval", str(tiny_data_dir / "dev.tsv"), "--fidelity", "--no-speed"])
    assert code == 2 and "pass --compare TEACHER" in capsys.readouterr().err

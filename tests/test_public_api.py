"""The public API as README shows it: top-level functions (plain functions, never shadowed by packages), cheap import."""

import subprocess
import sys


def test_verbs_stay_plain_functions_after_every_package_is_imported():
    import importlib
    import inspect
    import pkgutil

    import protege

    for module in pkgutil.walk_packages(protege.__path__, "protege."):
        if not module.name.endswith("__main__"):
            importlib.import_module(module.name)
    for verb in ("finetune", "distill", "cache_teacher", "evaluate", "prune", "report", "extract", "serve"):
        assert inspect.isfunction(getattr(protege, verb)), verb
    assert protege.recipes.distill.DistillConfig is protege.DistillConfig
    for name in protege.__all__:  # every advertised name resolves
        assert getattr(protege, name) is not None, name


def test_distill_through_the_package_attribute(tiny_teacher_dir, tiny_data_dir, tmp_path):
    import protege

    metrics = protege.distill(teacher=str(tiny_teacher_dir), train=str(tiny_data_dir / "train.tsv"), student_layers="0,1",
                              max_steps=2, batch_size=8, max_length=32, speed=False, progress=False, out=str(tmp_path / "s"))
    assert metrics["student"]["layer_map"] == [0, 1]
    report = protege.evaluate(str(tmp_path / "s"), eval=str(tiny_data_dir / "dev.tsv"), compare=str(tiny_teacher_dir), speed=False)
    assert 0 <= report["eval"]["agreement"]["agreement"] <= 1


def test_import_and_help_stay_light():
    code = "import sys, protege; from protege.cli.main import main; main(['--help']); print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("[]")

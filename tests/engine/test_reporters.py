"""Trainer conventions: --report-to (TensorBoard, wandb, mlflow), callbacks through the verbs, plain log lines off a
terminal, and --push-to-hub failing in one line without losing the run."""

import importlib.util
import io
import json
import sys

import pytest

from protege.engine.config import TrainSettings
from protege.engine.events import Callback, as_callbacks
from protege.engine.reporters import REPORTERS, check_reporters, open_reporters, report_targets, run_name
from protege.engine.trainer import train
from protege.errors import ProtegeError

from helpers import encoded_sentences


def _features(tokenizer, n=32):
    return encoded_sentences(tokenizer, n)


def _settings(**kw):
    base = dict(train="mem", out="unused", batch_size=8, max_steps=4, lr=1e-3, progress=False, seed=7, log_every=1,
                eval_every=2, keep_best=False)
    return TrainSettings(**{**base, **kw})


def _loss(model, batch):
    out = model(**batch)
    return {"loss": out.loss, "ce": out.loss}


def _event_scalars(folder) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


# --- the table of reporters: every entry writes with its library, or names its extra -------------------------------

def _read_tensorboard(log_dir, env):
    return _event_scalars(log_dir / "tensorboard")["train/loss"]


def _read_wandb(log_dir, env):
    runs = sorted((log_dir / "wandb").glob("offline-run-*"))
    assert runs and any(f.stat().st_size > 0 for f in runs[0].glob("*.wandb"))
    return runs


def _read_mlflow(log_dir, env):
    from mlflow import MlflowClient

    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    experiment = client.get_experiment_by_name("protege")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED" and run.data.params["lr"] == "0.001"
    return [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, "train/loss")]


# how each reporter's output is read back, and the environment it runs in here (offline, inside tmp_path)
READERS = {
    "tensorboard": (_read_tensorboard, lambda tmp: {}),
    # no WANDB_MODE and no login: the reporter itself must choose offline (never a login prompt)
    "wandb": (_read_wandb, lambda tmp: {"WANDB_MODE": None, "WANDB_API_KEY": None, "NETRC": str(tmp / "no-netrc"),
                                        "WANDB_SILENT": "true", "WANDB_CONFIG_DIR": str(tmp / "cfg"),
                                        "WANDB_CACHE_DIR": str(tmp / "cache")}),
    "mlflow": (_read_mlflow, lambda tmp: {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp / 'mlflow.db'}"}),
}


def test_every_reporter_has_a_reader():
    assert set(READERS) == set(REPORTERS)


@pytest.mark.parametrize("name", sorted(REPORTERS))
def test_reporter_without_its_library_names_its_extra(name, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, name, None)  # import fails as if not installed
    hint = f"pip install 'protege[{name}]'"
    with pytest.raises(ProtegeError, match=r"--report-to .*" + r"\[" + name + r"\]") as err:
        REPORTERS[name](tmp_path)
    assert hint in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(ProtegeError, match=name):  # refused with the flags, before anything runs
        _settings(report_to=f"{name}")
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("name", sorted(REPORTERS))
def test_reporter_contract(name, tmp_path, monkeypatch):
    """Installed: it writes the train and eval scalars with its library. Missing: the extra's one-line error."""
    read, env = READERS[name]
    if importlib.util.find_spec(name) is None:
        with pytest.raises(ProtegeError, match=rf"protege\[{name}\]"):
            open_reporters(name, tmp_path)
        return
    env = env(tmp_path)
    for key, value in env.items():
        monkeypatch.setenv(key, value) if value is not None else monkeypatch.delenv(key, raising=False)
    (reporter,) = open_reporters(name, tmp_path, config=_settings(), start_step=0)
    for step, loss in ((1, 0.75), (2, 0.5)):
        reporter.on_log({"step": step, "epoch": step / 4, "lr": 1e-3, "loss": loss, "ce": loss, "examples_per_s": 80.0})
    reporter.on_eval(2, {"accuracy": 0.5, "agreement": {"agreement": 0.9}, "n": "not a number"})
    reporter.close()
    written = read(tmp_path, env)
    if name != "wandb":  # wandb's offline log is its own binary format: that it was written is what we check
        assert written == [(1, 0.75), (2, 0.5)]


def test_wandb_login_is_found_without_asking_wandb(tmp_path, monkeypatch):
    from protege.engine.reporters import _wandb_logged_in

    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_BASE_URL", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    assert not _wandb_logged_in()
    (tmp_path / "netrc").write_text("machine api.wandb.ai\n  login user\n  password " + "x" * 40 + "\n")
    assert _wandb_logged_in()
    monkeypatch.setenv("WANDB_BASE_URL", "https://wandb.example.org")
    assert not _wandb_logged_in()
    monkeypatch.setenv("WANDB_API_KEY", "k" * 40)
    assert _wandb_logged_in()


def test_report_to_takes_none_or_a_list_of_names():
    assert report_targets("none") == ()
    assert report_targets(" tensorboard , tensorboard") == ("tensorboard",)
    assert check_reporters("tensorboard") == ("tensorboard",)
    for bad in ("", "tensorbord", "none,wandb", 3):
        with pytest.raises(ProtegeError, match="--report-to must be none or a comma-separated list of tensorboard"):
            report_targets(bad)


def test_run_names_come_from_the_output_folder(tmp_path):
    assert run_name(tmp_path / ".student.partial") == "student"
    assert run_name(tmp_path / ".student.partial" / "rounds" / "round-1") == "student/rounds/round-1"
    assert run_name(tmp_path / "plain") == "plain"


# --- the loop: TensorBoard holds every scalar; a log file gets one line per log step ---------------------------------

def test_training_writes_every_loss_term_lr_throughput_and_eval_metric_to_tensorboard(tiny_teacher, tiny_tokenizer, tmp_path):
    evals = iter([0.25, 0.5])
    train(tiny_teacher, _features(tiny_tokenizer), settings=_settings(report_to="tensorboard"), loss_fn=_loss,
          work_dir=tmp_path, pad_token_id=0, eval_fn=lambda m: {"accuracy": next(evals)}, primary="accuracy")
    scalars = _event_scalars(tmp_path / "tensorboard")
    assert {"train/loss", "train/ce", "train/lr", "train/epoch", "train/examples_per_s", "eval/accuracy"} <= set(scalars)
    records = [json.loads(line) for line in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    logged = [(r["step"], r["loss"]) for r in records if "loss" in r]
    assert [s for s, _ in scalars["train/loss"]] == [1, 2, 3, 4]
    assert [v for _, v in scalars["train/loss"]] == pytest.approx([v for _, v in logged], rel=1e-5)
    assert scalars["eval/accuracy"] == [(2, 0.25), (4, 0.5)]


def test_off_a_terminal_each_log_step_is_one_plain_line(tiny_teacher, tiny_tokenizer, tmp_path, capsys):
    train(tiny_teacher, _features(tiny_tokenizer), settings=_settings(progress=True, log_every=2), loss_fn=_loss,
          work_dir=tmp_path, pad_token_id=0, eval_fn=lambda m: {"accuracy": 0.5}, primary="accuracy")
    err = capsys.readouterr().err
    assert "\r" not in err and "it/s" not in err  # no progress bar
    lines = [line for line in err.splitlines() if line.startswith("[protege] step ")]
    assert len(lines) == 4, err  # steps 2 and 4: a log line and an eval line each
    assert lines[0].startswith("[protege] step 2/4 epoch ") and " loss " in lines[0] and " ce " in lines[0]
    assert " lr " in lines[0] and lines[0].endswith(" ex/s")
    assert lines[1] == "[protege] step 2/4 eval accuracy 0.5000"


def test_on_a_terminal_the_bar_replaces_the_lines(tiny_teacher, tiny_tokenizer, tmp_path, monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    screen = Terminal()
    monkeypatch.setattr(sys, "stderr", screen)
    train(tiny_teacher, _features(tiny_tokenizer), settings=_settings(progress=True, max_steps=2), loss_fn=_loss,
          work_dir=tmp_path, pad_token_id=0)
    assert "train:" in screen.getvalue() and "[protege] step " not in screen.getvalue()


# --- callbacks through a verb; --push-to-hub ------------------------------------------------------------------------

class Recorder:
    def __init__(self):
        self.events = []

    def on_log(self, record):
        self.events.append(("log", record["step"]))

    def on_eval(self, step, metrics):
        self.events.append(("eval", step))

    def on_save(self, path, metrics):
        self.events.append(("save", path, metrics["method"], (path / "metrics.json").is_file()))


def _distill(tiny_teacher_dir, tiny_data_dir, out, **kw):
    import protege

    return protege.distill(teacher=str(tiny_teacher_dir), train=str(tiny_data_dir / "train.tsv"),
                           eval=str(tiny_data_dir / "dev.tsv"), student_layers="0,1", max_steps=2, batch_size=8,
                           max_length=32, speed=False, progress=False, log_every=1, eval_every=2, out=str(out), **kw)


def test_distill_calls_python_callbacks_and_reports_to_tensorboard(tiny_teacher_dir, tiny_data_dir, tmp_path):
    recorder = Recorder()
    out = tmp_path / "student"
    _distill(tiny_teacher_dir, tiny_data_dir, out, callbacks=[recorder], report_to="tensorboard")
    assert recorder.events == [("log", 1), ("log", 2), ("eval", 2), ("save", out, "distill", True)]
    scalars = _event_scalars(out / "tensorboard")  # moved into place with the model
    assert [s for s, _ in scalars["train/loss"]] == [1, 2] and "eval/accuracy" in scalars
    assert json.loads((out / "metrics.json").read_text())["config"]["report_to"] == "tensorboard"


def test_callbacks_must_be_a_list_of_callback_objects(tiny_teacher_dir, tiny_data_dir, tmp_path):
    assert as_callbacks(None) == () and len(as_callbacks([Callback(on_log=print), Recorder()])) == 2
    with pytest.raises(TypeError, match=r"wrap one in a list"):
        _distill(tiny_teacher_dir, tiny_data_dir, tmp_path / "s", callbacks=Recorder())
    with pytest.raises(TypeError, match=r"callbacks\[0\] \(builtin_function_or_method\) has none of the events"):
        _distill(tiny_teacher_dir, tiny_data_dir, tmp_path / "s", callbacks=[print])
    assert not any(tmp_path.iterdir())


def test_push_to_hub_offline_is_refused_before_the_run(tiny_teacher_dir, tiny_data_dir, tmp_path, monkeypatch, capsys):
    from protege.cli.main import main

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ProtegeError, match="--push-to-hub cannot upload while HF_HUB_OFFLINE is set"):
        _distill(tiny_teacher_dir, tiny_data_dir, tmp_path / "s", push_to_hub=True)
    assert main(["distill", "--teacher", str(tiny_teacher_dir), "--train", str(tiny_data_dir / "train.tsv"),
                 "--out", str(tmp_path / "s"), "--push-to-hub"]) == 2
    err = capsys.readouterr().err.strip()
    assert "HF_HUB_OFFLINE" in err and len(err.splitlines()) == 1
    assert not any(tmp_path.iterdir())
    monkeypatch.delenv("HF_HUB_OFFLINE")
    for bad, message in (({"hub_model_id": "me/student"}, "pass --push-to-hub too"),
                         ({"push_to_hub": True, "hub_model_id": "me/a/b"}, "must be NAME or OWNER/NAME")):
        with pytest.raises(ProtegeError, match=message):
            _settings(**bad)


def test_a_failed_push_keeps_the_finished_run_and_says_so_in_one_line(tiny_teacher_dir, tiny_data_dir, tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # the hub fails at once, as offline
    recorder = Recorder()
    out = tmp_path / "student"
    with pytest.raises(ProtegeError) as err:
        _distill(tiny_teacher_dir, tiny_data_dir, out, push_to_hub=True, hub_model_id="me/student", callbacks=[recorder])
    message = str(err.value)
    assert "\n" not in message and f"{out} is saved" in message and f"hf upload me/student {out}" in message
    assert (out / "model.safetensors").is_file() and (out / "metrics.json").is_file()
    assert recorder.events[-1][0] == "save"
    assert json.loads((out / "metrics.json").read_text())["config"]["hub_model_id"] == "me/student"

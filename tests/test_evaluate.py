"""`python -m autograder evaluate`: handed-in models measured in the grader, files opened only in the sandbox.

A real course (release, collect), real checkpoints (exp2: the solution's own training of ResNet20 on generated
CIFAR-10 written in the real on-disk format; exp1: a network fitted to the solution's my_function), real
hostile files, the real sandbox, the real gradebook and `export`.
"""
from __future__ import annotations

import csv
import io
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from autograder import evaluate
from autograder.collect import collect
from autograder.course import Course
from autograder.pretrain import pretrain_checkpoint, solution_namespace
from autograder.release import release
from autograder.reports import export_grades
from conftest import REPO, hand_in
from dlcourse.data import load_cifar10, make_loaders, write_fake_cifar10

EXP2, EXP1 = "09_exp2_cifar10", "08_exp1_fitting"


class _Boom:
    def __reduce__(self):
        return (os.system, (f"touch {MARK}",))


MARK = Path("/tmp/course-evaluate-pwned")


@pytest.fixture(scope="module")
def course_with_models(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("evaluate")
    course = Course.open(root=tmp / "course", repo=REPO, db_url=f"sqlite:///{tmp / 'gradebook.db'}")
    release(course, [EXP1, EXP2])
    data_root = tmp / "data"
    write_fake_cifar10(data_root, num_train=600, num_test=300, seed=3)

    ns = solution_namespace(EXP2)
    torch.manual_seed(0)
    model = ns["ResNet20"]()
    train_loader, test_loader = make_loaders(load_cifar10(data_root, download=False), batch_size=64, device="cpu")
    checkpoint, history = pretrain_checkpoint(ns, model, train_loader, test_loader, epochs=2)

    inbox = tmp / "inbox"
    nb2 = course.source_notebooks(EXP2)[0]
    def saved(obj) -> bytes:
        buf = io.BytesIO()
        torch.save(obj, buf)
        return buf.getvalue()

    hand_in(inbox, "good", EXP2, nb2, {"checkpoints/final.pth": saved(checkpoint)})
    hand_in(inbox, "boaster", EXP2, nb2, {"checkpoints/final.pth": saved({**checkpoint, "acc": 0.99})})
    hand_in(inbox, "plain-state-dict", EXP2, nb2, {"final.pth": saved(checkpoint["net"])})
    hand_in(inbox, "whole-model", EXP2, nb2, {"checkpoints/final.pth": saved({"net": torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3))})})
    hand_in(inbox, "attacker", EXP2, nb2, {"checkpoints/final.pth": pickle.dumps({"net": _Boom()})})
    hand_in(inbox, "other-net", EXP2, nb2, {"checkpoints/final.pth": saved({"net": torch.nn.Linear(4, 2).state_dict()})})
    hand_in(inbox, "garbage", EXP2, nb2, {"checkpoints/final.pth": os.urandom(5000)})
    hand_in(inbox, "no-file", EXP2, nb2, {})

    ns1 = solution_namespace(EXP1)
    torch.manual_seed(0)
    net = ns1["make_mlp"](hidden_sizes=(32, 32))
    x = torch.linspace(-4, 4, 400).unsqueeze(1)
    y = ns1["my_function"](x)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(1500):
        opt.zero_grad()
        torch.mean((net(x) - y) ** 2).backward()
        opt.step()
    nb1 = course.source_notebooks(EXP1)[0]
    hand_in(inbox, "good", EXP1, nb1, {"model.pth": saved(net.state_dict())})
    hand_in(inbox, "untrained", EXP1, nb1, {"model.pth": saved(ns1["make_mlp"](hidden_sizes=(32, 32)).state_dict())})
    hand_in(inbox, "wrong-sizes", EXP1, nb1, {"model.pth": saved(ns1["make_mlp"](hidden_sizes=(16,)).state_dict())})
    peek = json.loads(nb1.read_text())
    for cell in peek["cells"]:
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == "my_function":
            cell["source"] = ("MY_X_RANGE = (-4.0, 4.0)\nMY_HIDDEN_SIZES = (32, 32)\n"
                              "import torch\n_net = torch.load('model.pth')\n"
                              "def my_function(x):\n    return x\n")
    peeker = tmp / "peek" / nb1.name
    peeker.parent.mkdir()
    peeker.write_text(json.dumps(peek))
    hand_in(inbox, "peeker", EXP1, peeker, {"model.pth": saved(net.state_dict())})

    collect(course, inbox)
    course.register_students(["good", "boaster", "plain-state-dict", "whole-model", "attacker", "other-net",
                              "garbage", "no-file", "untrained", "wrong-sizes", "peeker"])
    MARK.unlink(missing_ok=True)
    exp2 = {r.student: r for r in evaluate.run(course, EXP2, data=data_root, unverified_data=True, log=lambda *_: None)}
    exp1 = {r.student: r for r in evaluate.run(course, EXP1, log=lambda *_: None)}
    return course, data_root, history, exp2, exp1


def test_exp2_accuracy_is_measured_on_the_test_set_as_training_measured_it(course_with_models):
    """The checkpoint's own test accuracy (the solution's evaluate on the same images) is what evaluate measures."""
    _, _, history, exp2, _ = course_with_models
    good = exp2["good"]
    assert good.status == "measured", good.reason
    assert good.value == pytest.approx(history["test_acc"][-1], abs=1e-6), (good.value, history["test_acc"])
    assert good.value > 0.2 and good.extra["test_images"] == 300 and good.epoch == 2 and not good.reason
    assert "UNVERIFIED" in good.data and len(good.sha256) == 64
    assert exp2["plain-state-dict"].status == "measured" and exp2["plain-state-dict"].value == good.value


def test_exp2_a_checkpoint_that_claims_more_is_measured_and_flagged(course_with_models):
    """A checkpoint whose 'acc' says 0.99 gets the measured accuracy, and the row says what it claimed."""
    boaster = course_with_models[3]["boaster"]
    assert boaster.value == course_with_models[3]["good"].value and boaster.claimed == 0.99
    assert "says acc=0.9900" in boaster.reason


@pytest.mark.parametrize("student,why", [("whole-model", "weights_only"), ("attacker", "weights_only"),
                                         ("other-net", "parameter names do not match"), ("garbage", "could not read"),
                                         ("no-file", "no checkpoints/final.pth")])
def test_exp2_files_that_are_not_a_resnet20_state_dict_get_a_reason(course_with_models, student, why):
    """A pickled model, a pickle that runs code, another network, random bytes, no file: a reason, no value."""
    row = course_with_models[3][student]
    assert row.value is None and row.status in ("unloadable", "missing") and why in row.reason, row
    assert not MARK.exists(), "the hostile pickle ran code"


def test_exp1_model_pth_fits_the_students_function_on_held_out_points(course_with_models):
    """R^2 of model.pth against my_function on midpoints of MY_X_RANGE: high when fitted, low when not."""
    exp1 = course_with_models[4]
    assert exp1["good"].status == "measured" and exp1["good"].value > 0.9, exp1["good"]
    assert exp1["good"].extra["x_range"] == [-4.0, 4.0] and exp1["good"].extra["grid_points"] == 1000
    assert exp1["untrained"].status == "measured" and exp1["untrained"].value < 0.5
    assert exp1["wrong-sizes"].value is None and "parameter names do not match" in exp1["wrong-sizes"].reason


def test_exp1_my_function_runs_without_the_weights_it_is_compared_with(course_with_models):
    """A my_function cell that reads model.pth finds no such file: it cannot copy the network it is judged against."""
    peeker = course_with_models[4]["peeker"]
    assert peeker.value is None and "my_function cell failed" in peeker.reason and "model.pth" in peeker.reason, peeker


def test_results_reach_the_report_the_gradebook_and_the_export(course_with_models, tmp_path):
    """reports/evaluate_<a>.csv has every student; export's grades.csv has test_accuracy and heldout_r2 columns."""
    course, _, _, exp2, exp1 = course_with_models
    rows = list(csv.DictReader((course.reports_dir / f"evaluate_{EXP2}.csv").open()))
    assert {r["student"] for r in rows} == set(exp2)
    exported = {(r["assignment"], r["student_id"]): r
                for r in csv.DictReader(export_grades(course, tmp_path / "grades.csv").open())}
    assert float(exported[(EXP2, "good")]["test_accuracy"]) == pytest.approx(exp2["good"].value, abs=1e-4)
    assert exported[(EXP2, "garbage")]["test_accuracy"] == ""
    assert float(exported[(EXP1, "good")]["heldout_r2"]) == pytest.approx(exp1["good"].value, abs=1e-4)
    assert exported[(EXP1, "good")]["test_accuracy"] == ""


def test_without_the_real_cifar10_it_says_where_to_put_it(course_with_models, tmp_path):
    """Generated files (md5 sums differ) or an empty folder: exit 1, naming the folder; nothing measured."""
    course, data_root, *_ = course_with_models
    for root in (data_root, tmp_path / "empty"):
        proc = subprocess.run([sys.executable, "-m", "autograder", "--course", str(course.root), "--db-url",
                               course.db_url, "evaluate", EXP2, "--data", str(root)],
                              cwd=REPO, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert "evaluate:" in proc.stderr and "cifar-10-batches-py" in proc.stderr, proc.stderr

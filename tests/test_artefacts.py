"""The experiments' own results: saved by the notebooks, kept as handed in, shown to the manual grader.

exp1 writes its sweeps to ``exp1_results.json``; exp2 keeps its per-epoch history in its checkpoints and
``exp2_history.json``, so a run resumed from the 5-epoch checkpoint covers epochs 0-9. Grading leaves
those files byte for byte as handed in, and the autograded notebook shows them, rendered by the grader
(``autograder/artefacts.py``), before the written answers; a hostile file gives a one-line note.
"""
from __future__ import annotations

import json
from pathlib import Path

import matplotlib
import nbformat
import pytest

from autograder import artefacts
from autograder.artefacts import ARTEFACTS, LABEL, ArtefactError, read_json, results_cell
from conftest import REPO, hand_in, read

matplotlib.use("Agg")

EXP1, EXP2 = "08_exp1_fitting", "09_exp2_cifar10"


def _source(assignment: str) -> Path:
    return REPO / "solutions" / assignment / f"{assignment}.ipynb"


def _exp1_results(mse: float = 0.4321, steps_run: int = 77777) -> dict:
    runs = [{"sweep": "steps", "num_epochs": n, "lr": 0.01, "steps_run": steps_run if n == 50000 else n,
             "heldout_mse": mse if n == 50000 else 1.0 / n, "final_loss": 0.5, "curve_steps": [1, 10, 100],
             "curve_loss": [50.0, 5.0, 0.5]} for n in (100, 1000, 10000, 50000)]
    runs += [{"sweep": "lr", "num_epochs": 1000, "lr": lr, "steps_run": 1000, "heldout_mse": None if lr == 1 else lr,
              "final_loss": None if lr == 1 else 0.1, "curve_steps": [1, 2], "curve_loss": [1e5, None]}
             for lr in (1, 0.1, 0.01, 0.001)]
    return {"format": "dlcourse exp1 results", "version": 1, "max_sweep_steps": None, "runs": runs}


HOSTILE_TEXT = "<script>alert('x')</script><img src=x onerror=alert(1)>"


def _exp2_history(resumed_from: str = "resnet20_epoch5.pth") -> dict:
    return {"format": "dlcourse exp2 history", "version": 1, "start_epoch": 5, "resumed_from": resumed_from,
            "device": "cuda", "data": "real CIFAR-10", "seconds": 123.4,
            "history": {"epoch": list(range(10)), "lr": [0.1] * 5 + [0.01] * 5,
                        "train_loss": [2.0 - 0.1 * e for e in range(10)],
                        "train_acc": [0.3 + 0.04 * e for e in range(10)],
                        "test_acc": [0.35 + 0.0404 * e for e in range(10)]}}


def _html(cell) -> str:
    return "".join(o.get("data", {}).get("text/html", "") for o in cell.outputs)


# -- reading and rendering, in-process ------------------------------------------------------------------
HOSTILE_FILES = {
    "huge": (b"[" + b"1," * 200_000 + b"1]", "more than"),
    "not json": (b"{'runs': [1, 2]", "not valid JSON"),
    "nan": (b'{"format": "dlcourse exp1 results", "runs": [NaN]}', "not a JSON number"),
    "infinite": (b'{"x": 1e999}', "too large"),
    "deep": (b"[" * 5000 + b"]" * 5000, "nested"),
    "long int": (b'{"x": ' + b"9" * 5000 + b"}", "not valid JSON"),
    "bool": (b'{"x": true}', "true or false"),
    "duplicate keys": (b'{"format": 1, "format": 2}', "repeats a key"),
    "not utf-8": (b'{"x": "\xff\xfe"}', "not UTF-8"),
    "long string": (json.dumps({"x": "a" * 10_000}).encode(), "characters long"),
    "top-level list": (b"[1, 2, 3]", "not an object"),
    "other format": (json.dumps({"format": HOSTILE_TEXT, "runs": []}).encode(), "'format' is not"),
    "wrong types": (json.dumps({**_exp1_results(), "runs": [{**_exp1_results()["runs"][0], "heldout_mse": "0.1"}]}
                               ).encode(), "should be a number"),
    "html in a string": (json.dumps({**_exp1_results(), "runs": [{**_exp1_results()["runs"][0],
                                                                  "sweep": HOSTILE_TEXT}]}).encode(), "'steps' or 'lr'"),
    "lengths differ": (json.dumps({**_exp1_results(), "runs": [{**_exp1_results()["runs"][0], "curve_loss": [1]}]}
                                  ).encode(), "differ in length"),
}


@pytest.mark.parametrize("name", HOSTILE_FILES)
def test_hostile_results_give_a_one_line_note(name, tmp_path):
    """A file that is too big, not strict JSON, of other types or shapes gives "could not read ...: why", no HTML."""
    data, why = HOSTILE_FILES[name]
    (tmp_path / "exp1_results.json").write_bytes(data)
    cell = results_cell(tmp_path, ARTEFACTS[EXP1])
    text = _html(cell)
    assert "could not read exp1_results.json: " in text and why in text, text[:600]
    assert "<script" not in text and "<img" not in text
    assert len(cell.outputs) == 1 and len(text) < 2000
    assert LABEL in text


def test_missing_and_linked_results(tmp_path):
    """No file, or a symbolic link (never followed), is a note too; the kept files are listed with their sizes."""
    text = _html(results_cell(tmp_path, ARTEFACTS[EXP1]))
    assert "could not read exp1_results.json: it was not handed in" in text
    assert "model.pth: not handed in" in text
    secret = tmp_path / "secret.json"
    secret.write_text(json.dumps(_exp1_results(mse=0.987654)))
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "exp1_results.json").symlink_to(secret)
    text = _html(results_cell(tmp_path / "sub", ARTEFACTS[EXP1]))
    assert "symbolic link" in text and "0.9877" not in text


def test_exp1_results_render_a_table_and_a_plot(tmp_path):
    """Valid results become a table with the handed-in numbers (null: not finite) and a PNG."""
    (tmp_path / "exp1_results.json").write_text(json.dumps(_exp1_results()))
    (tmp_path / "model.pth").write_bytes(b"12345")
    cell = results_cell(tmp_path, ARTEFACTS[EXP1])
    text = _html(cell)
    assert "0.4321" in text and "77,777" in text and "not finite" in text and "LEARNING_RATE = 0.001" in text
    assert "model.pth: 5 bytes" in text
    assert cell.outputs[1]["data"]["image/png"].startswith("iVBOR")          # a PNG, base64


def test_exp2_strings_are_shown_as_text(tmp_path):
    """The strings of exp2_history.json (where it resumed from, the data, the device) are escaped text."""
    (tmp_path / "exp2_history.json").write_text(json.dumps(_exp2_history(resumed_from=HOSTILE_TEXT)))
    text = _html(results_cell(tmp_path, ARTEFACTS[EXP2]))
    assert "&lt;script&gt;" in text and "<script" not in text and "<img" not in text
    assert "0.7136" in text and "epochs 5–9" in text       # test_acc of epoch 9, and what this run trained


# -- the notebooks save their results ---------------------------------------------------------------
def _cell(nb, start: str):
    (cell,) = [c for c in nb.cells if c.cell_type == "code" and c.source.startswith(start)]
    return cell.source


def _exec(source: str, ns: dict) -> None:
    source = "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())
    exec(compile(source, "<cell>", "exec"), ns)


def test_exp1_sweeps_save_their_results_but_not_while_grading(tmp_path, monkeypatch):
    """The sweep cells write exp1_results.json (the grader reads it back); while grading they write nothing."""
    from autograder.pretrain import solution_namespace

    import matplotlib.pyplot as plt

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    monkeypatch.setattr(plt, "show", lambda *a, **k: plt.close("all"))
    nb = read(_source(EXP1))
    ns = solution_namespace(EXP1, repo=REPO)
    ns["NUM_TRAIN_EPOCHS"] = 30
    ns["fast_or"] = lambda full, fast: 20           # every sweep run cut to 20 steps
    ns["progress"] = lambda it, **k: it
    for start in ("seed_everything(0)\nX_train", "import json\n\nMAX_SWEEP_STEPS", "lr_runs = {}"):
        _exec(_cell(nb, start), ns)
    saved = json.loads((tmp_path / "exp1_results.json").read_text())
    assert saved["max_sweep_steps"] == 20
    assert [(r["sweep"], r["num_epochs"], r["lr"]) for r in saved["runs"]] == \
        [("steps", n, 0.01) for n in (100, 1000, 10000, 50000)] + [("lr", 1000, lr) for lr in (1, 0.1, 0.01, 0.001)]
    assert all(r["steps_run"] == 20 and len(r["curve_steps"]) == len(r["curve_loss"]) > 5 for r in saved["runs"])
    assert all(r["heldout_mse"] is None or r["heldout_mse"] >= 0 for r in saved["runs"])
    assert "not finite" in _html(results_cell(tmp_path, ARTEFACTS[EXP1])) or \
        all(r["heldout_mse"] is not None for r in saved["runs"])
    assert "could not read" not in _html(results_cell(tmp_path, ARTEFACTS[EXP1]))   # the grader reads what it writes
    # while grading: the handed-in file stays as it was
    (tmp_path / "exp1_results.json").write_bytes(b"HANDED IN")
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    for start in ("import json\n\nMAX_SWEEP_STEPS", "lr_runs = {}"):
        _exec(_cell(nb, start), ns)
    assert (tmp_path / "exp1_results.json").read_bytes() == b"HANDED IN"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp1_results.json"]


def test_exp2_resumed_run_covers_epochs_0_to_9(tmp_path, monkeypatch):
    """Resumed from the 5-epoch checkpoint (made as `make pretrain` makes it), the run's curve, its final.pth and
    its exp2_history.json hold epochs 0-9; the run's own history (checked by the 70% cell) says 5-9."""
    import torch
    from torch import nn

    import matplotlib.pyplot as plt
    from autograder.pretrain import pretrain_checkpoint, solution_namespace
    from dlcourse.data import load_cifar10, make_loaders, write_fake_cifar10

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    monkeypatch.setattr(plt, "show", lambda *a, **k: None)
    ns = solution_namespace(EXP2, repo=REPO)

    def small_net():                               # ResNet20's interface, a fraction of its cost
        torch.manual_seed(0)
        return nn.Sequential(nn.Conv2d(3, 4, 3, stride=4), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                             nn.Linear(4 * 8 * 8, 10))

    data = load_cifar10(write_fake_cifar10(tmp_path / "fake", num_train=64, num_test=32, seed=0), download=False)
    cpu = torch.device("cpu")
    ns.update(ResNet20=small_net, data=data, use_real=False, device=cpu, progress=lambda it, **k: it)
    train_loader, test_loader = make_loaders(data, batch_size=32, device=cpu)
    checkpoint, _ = pretrain_checkpoint(ns, small_net(), train_loader, test_loader, epochs=5)
    torch.save(checkpoint, tmp_path / "resnet20_epoch5.pth")
    assert checkpoint["history"]["epoch"] == [0, 1, 2, 3, 4]

    nb = read(_source(EXP2))
    run = _cell(nb, "NUM_EPOCHS = 10")
    assert run.count("RESUME_FROM = None ") == 1
    _exec(run.replace("RESUME_FROM = None ", "RESUME_FROM = 'resnet20_epoch5.pth' "), ns)
    _exec(_cell(nb, "fig, ax = plt.subplots(figsize=(7, 4))"), ns)
    assert ns["history"]["epoch"] == [5, 6, 7, 8, 9]
    assert ns["full_history"]["epoch"] == list(range(10))
    assert ns["full_history"]["test_acc"][:5] == checkpoint["history"]["test_acc"]
    assert list(plt.gca().get_lines()[0].get_xdata()) == list(range(10))       # the curve from epoch 0
    plt.close("all")
    folder = Path(ns["CHECKPOINT_DIR"])
    assert folder != Path("checkpoints") and not (tmp_path / "checkpoints").exists()   # generated data: a temp folder
    final = torch.load(folder / "final.pth", map_location="cpu")
    assert final["history"]["epoch"] == list(range(10))
    assert torch.load(folder / "epoch_7.pth")["history"]["epoch"] == list(range(7))
    saved = json.loads(Path(ns["HISTORY_FILE"]).read_text())
    assert saved["history"]["epoch"] == list(range(10)) and saved["start_epoch"] == 5
    assert saved["resumed_from"] == "resnet20_epoch5.pth"
    text = _html(results_cell(Path(ns["HISTORY_FILE"]).parent, ARTEFACTS[EXP2]))
    assert "could not read" not in text and "epochs 5–9" in text
    ns["generated_checkpoints"].cleanup()


# -- through the real autograder --------------------------------------------------------------------
@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """08 and 09 graded by the real Autograder, with handed-in results the grader would never compute."""
    from autograder.collect import collect
    from autograder.course import Course
    from autograder.grade import Autograder
    from autograder.release import release

    tmp = tmp_path_factory.mktemp("artefacts")
    course = Course.open(root=tmp, repo=REPO, db_url=f"sqlite:///{tmp / 'gradebook.db'}")
    release(course, [EXP1, EXP2])
    inbox = tmp / "inbox"
    blank1 = course.release_dir / EXP1 / f"{EXP1}.ipynb"
    blank2 = course.release_dir / EXP2 / f"{EXP2}.ipynb"
    files = {
        ("own", EXP1): (_source(EXP1), {"exp1_results.json": json.dumps(_exp1_results(), indent=1).encode(),
                                        "model.pth": b"the student's own model.pth \x00\x01\x02"}),
        ("huge", EXP1): (blank1, {"exp1_results.json": b'{"format": "dlcourse exp1 results", "runs": ['
                                  + b'"<script>alert(1)</script>",' * 40_000 + b"1]}"}),
        ("hostile", EXP1): (blank1, {"exp1_results.json": json.dumps(
            {**_exp1_results(), "runs": [{**_exp1_results()["runs"][0], "sweep": HOSTILE_TEXT,
                                          "heldout_mse": [HOSTILE_TEXT]}]}).encode()}),
        ("own", EXP2): (blank2, {"exp2_history.json": json.dumps(_exp2_history(resumed_from=HOSTILE_TEXT)).encode(),
                                 "checkpoints/final.pth": b"the student's own final.pth"}),
    }
    for (student, assignment), (notebook, extra) in files.items():
        hand_in(inbox, student, assignment, notebook, extra)
    collect(course, inbox)
    results = Autograder(course, workers=2, cell_timeout=300, show_progress=False, budgets=False).run([EXP1, EXP2])
    return course, {(r.student, r.assignment): r for r in results}, files


def _shown(course, student, assignment):
    nb = read(course.autograded(student, assignment) / f"{assignment}.ipynb")
    (at,) = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and c.source.startswith(f"# {LABEL}")]
    answer = next(i for i, c in enumerate(nb.cells) if c.metadata.get("nbgrader", {}).get("grade_id")
                  == ARTEFACTS[assignment].before)
    return nb, at, answer


def test_handed_in_files_are_kept_byte_for_byte(graded):
    """Whatever the student process wrote while grading, autograded/ holds the files as handed in."""
    course, results, files = graded
    assert all(r.status == "graded" for r in results.values()), {k: (r.status, r.reason) for k, r in results.items()}
    for (student, assignment), (_, extra) in files.items():
        for name, data in extra.items():
            assert (course.autograded(student, assignment) / name).read_bytes() == data, (student, assignment, name)


def test_own_results_are_shown_before_the_written_answers(graded):
    """The autograded notebook has the handed-in numbers in a labelled cell right before Question 1."""
    course, _, _ = graded
    nb, at, answer = _shown(course, "own", EXP1)
    assert at == answer - 2                    # then the question, then the answer
    assert nb.cells[at + 1].cell_type == "markdown"
    assert nb.cells[at + 2].metadata["nbgrader"]["grade_id"] == "written_epochs"
    text = _html(nb.cells[at])
    assert LABEL in text and "0.4321" in text and "77,777" in text
    assert any("image/png" in o.get("data", {}) for o in nb.cells[at].outputs)
    nb2, at2, answer2 = _shown(course, "own", EXP2)
    assert at2 < answer2
    text2 = _html(nb2.cells[at2])
    assert "0.7136" in text2 and "&lt;script&gt;" in text2


def test_own_submission_still_gets_full_marks(graded):
    """Showing the results changes no score: the solution with its own artefacts gets every autograded point."""
    from nbgrader.api import Gradebook

    course, _, _ = graded
    with Gradebook(course.sqlite_url()) as gb:
        sub = gb.find_submission(EXP1, "own")
        auto = [(g.auto_score, g.max_score) for nb in sub.notebooks for g in nb.grades if g.cell.cell_type == "code"]
    assert auto and all(score == top for score, top in auto), auto


def test_hostile_results_are_a_note_without_html(graded):
    """A huge file and one of wrong types with HTML in its strings each give a note; no raw HTML reaches the page."""
    course, _, _ = graded
    for student, why in (("huge", "more than the"), ("hostile", "should be 'steps' or 'lr'")):
        nb, at, answer = _shown(course, student, EXP1)
        assert at < answer
        text = _html(nb.cells[at])
        assert "could not read exp1_results.json" in text and why in text, text[:500]
        for cell in nb.cells:
            for out in cell.get("outputs", []):
                html_out = out.get("data", {}).get("text/html", "")
                assert "<script" not in html_out and "onerror" not in html_out


def test_the_pipeline_keeps_and_shows_the_artefacts():
    """nbgrader_config.py never lets a file of solutions/ replace a handed-in artefact, and shows the results last
    before SanitizeForDisplay (which cleans the cell again)."""
    from traitlets.config import Config

    config = Config()
    exec(compile((REPO / "nbgrader_config.py").read_text(), "nbgrader_config.py", "exec"),
         {"get_config": lambda: config, "__file__": str(REPO / "nbgrader_config.py")})
    names = [p.__name__ for p in config.Autograde.autograde_preprocessors]
    assert names[-2:] == ["ShowHandedInResults", "SanitizeForDisplay"], names
    assert config.Autograde.exclude_overwriting == artefacts.exclude_overwriting()
    assert config.Autograde.exclude_overwriting[EXP1] == ["exp1_results.json", "model.pth"]
    assert "checkpoints/final.pth" in config.Autograde.exclude_overwriting[EXP2]

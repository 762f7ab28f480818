"""``make pretrain``: the 5-epoch ResNet20 checkpoint that lets students without a GPU skip the LR 0.1 phase.

Runs the solution of experiment 2 (``solutions/09_exp2_cifar10``) for epochs 0-4 at LR 0.1 on the
real CIFAR-10 and writes ``build/pretrain/resnet20_epoch5.pth`` (CPU tensors, so it loads on any
machine): ``{'net', 'epoch': 5, 'optimizer', 'acc', 'history'}``, the format the notebook's ``resume``
reads; ``history`` (epochs 0-4, per epoch as ``train`` records it) lets a resumed run's curve, its
``final.pth`` and its ``exp2_history.json`` cover all 10 epochs. Beside it goes its SHA-256,
``resnet20_epoch5.pth.sha256`` (``sha256sum`` format, so ``sha256sum -c`` checks it);
``python -m autograder publish`` copies both into the student edition and records the sum and the
download URL in the edition's package, where ``dlcourse.data.pretrained_checkpoint()`` checks them.
It needs a CUDA GPU and the real, md5-checked CIFAR-10 in the course data folder
(``python -m dlcourse.data`` downloads it); without them it says what is missing and exits with 1.

``solution_namespace()`` is also what ``autograder.bench`` uses to time the solution's training.
"""
from __future__ import annotations

import argparse
import ast
import shutil
import sys
import tempfile
import time
from pathlib import Path

import nbformat

from autograder.course import find_repo

ASSIGNMENT = "09_exp2_cifar10"
DEFAULT_OUT = Path("build") / "pretrain" / "resnet20_epoch5.pth"
_KEEP = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef, ast.Assign, ast.AnnAssign)


def solution_namespace(assignment: str = ASSIGNMENT, repo: Path | None = None) -> dict:
    """The definitions of a solution notebook, executed: its locked and answer code cells, keeping
    only imports, functions, classes and assignments (no training, plotting or tests)."""
    repo = repo or find_repo()
    path = repo / "solutions" / assignment / f"{assignment}.ipynb"
    nb = nbformat.read(str(path), as_version=4)
    namespace: dict = {"__name__": f"solution_{assignment}"}
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type != "code" or meta.get("grade") or not (meta.get("locked") or meta.get("solution")):
            continue
        source = "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in cell.source.splitlines())
        tree = ast.parse(source)
        tree.body = [node for node in tree.body if isinstance(node, _KEEP)]
        exec(compile(tree, f"{path.name}:{meta.get('grade_id')}", "exec"), namespace)
    return namespace


def pretrain_checkpoint(ns: dict, model, train_loader, test_loader, epochs: int = 5) -> tuple[dict, dict]:
    """Train ``model`` for epochs 0..epochs-1 with the solution's ``train`` (namespace ``ns``); return the
    checkpoint after the last of them, with the history of those epochs under ``"history"``, and the history."""
    import torch

    with tempfile.TemporaryDirectory() as tmp:
        history = ns["train"](model, train_loader, test_loader, num_epochs=epochs, checkpoint_dir=tmp)
        ns["add_history_to_checkpoints"](tmp, history)          # the notebook's own helper
        checkpoint = torch.load(Path(tmp) / f"epoch_{epochs}.pth", map_location="cpu")
    assert checkpoint["epoch"] == epochs, f"the checkpoint says epoch {checkpoint['epoch']}"
    assert checkpoint["history"]["epoch"] == list(range(epochs)), checkpoint["history"]["epoch"]
    return checkpoint, history


def checksum_path(checkpoint: Path) -> Path:
    """``<checkpoint>.sha256``, the file ``write_checksum`` writes."""
    return checkpoint.with_name(checkpoint.name + ".sha256")


def write_checksum(checkpoint: Path) -> str:
    """Write ``<checkpoint>.sha256`` (``<hex>  <name>``, as ``sha256sum`` does) and return the hex sum."""
    from dlcourse.data import sha256_of

    sha = sha256_of(checkpoint)
    checksum_path(checkpoint).write_text(f"{sha}  {checkpoint.name}\n")
    return sha


def read_checksum(checkpoint: Path) -> str | None:
    """The sum recorded in ``<checkpoint>.sha256``, or None when there is none."""
    try:
        text = checksum_path(checkpoint).read_text().split()
    except OSError:
        return None
    return text[0].lower() if text else None


def _missing() -> list[str]:
    """Why a pretraining run cannot happen here (empty when it can)."""
    import torch

    from dlcourse.data import cifar10_folder, is_real_cifar10, missing_cifar10_message

    reasons = []
    if not torch.cuda.is_available():
        reasons.append("no CUDA GPU: 5 epochs of CIFAR-10 on a CPU take hours; run this on a machine with an "
                       "NVIDIA GPU")
    if not is_real_cifar10():
        reasons.append(f"the real CIFAR-10 (md5-checked) is not in {cifar10_folder()}: run "
                       f"`python -m dlcourse.data` to download it, or place it by hand:\n"
                       + missing_cifar10_message(reason="not downloaded by make pretrain"))
    return reasons


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder.pretrain", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help=f"checkpoint to write (default {DEFAULT_OUT})")
    parser.add_argument("--epochs", type=int, default=5, help="epochs to train from epoch 0 (default 5)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    reasons = _missing()
    if reasons:
        print("make pretrain: cannot make the checkpoint here:\n- " + "\n- ".join(reasons), file=sys.stderr)
        return 1

    import torch

    from dlcourse import seed_everything, training_device
    from dlcourse.data import load_cifar10, make_loaders

    repo = find_repo()
    out = args.out or repo / DEFAULT_OUT
    ns = solution_namespace(repo=repo)
    device = training_device()
    torch.backends.cudnn.benchmark = True
    seed_everything(args.seed)
    data = load_cifar10(download=False)
    train_loader, test_loader = make_loaders(data, batch_size=128, device=device, seed=args.seed)
    model = ns["to_training_device"](ns["ResNet20"](), device)
    start = time.time()
    checkpoint, history = pretrain_checkpoint(ns, model, train_loader, test_loader, args.epochs)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint, out)
    sha = write_checksum(out)
    print(f"{args.epochs} epochs in {time.time() - start:.0f} s on {torch.cuda.get_device_name(0)}: "
          f"test accuracy {history['test_acc'][-1]:.3f} (per epoch: "
          f"{', '.join(f'{a:.3f}' for a in history['test_acc'])})")
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB) and {checksum_path(out).name} (sha256 {sha}). "
          f"`make publish EDITION=DIR` puts it into the student edition; there students set USE_PRETRAINED = True "
          f"in section 9 of {ASSIGNMENT} and training continues at epoch {args.epochs}.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

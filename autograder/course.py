"""Where a course's files live, and how nbgrader is invoked on them.

The *repo* holds the sources (``solutions/``) and the release (``assignments/``). The *course
root* holds the working state: ``submitted/``, ``autograded/``, ``feedback/``, the gradebook and
reports. For the instructor both are the repo; the demo and the tests use scratch roots so they
never touch a real gradebook.
"""
from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

# nbgrader creates a fresh gradebook by running the `alembic` command: make sure the one installed
# beside this interpreter is found even when the virtual environment was not activated.
_BIN = str(Path(sys.executable).parent)
if _BIN not in os.environ.get("PATH", "").split(os.pathsep):
    os.environ["PATH"] = _BIN + os.pathsep + os.environ.get("PATH", "")


def find_repo(start: Path | None = None) -> Path:
    """The nearest folder at or above ``start`` that holds ``nbgrader_config.py`` and ``solutions/``."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "nbgrader_config.py").is_file() and (folder / "solutions").is_dir():
            return folder
    raise SystemExit(f"no course found at or above {here}: expected nbgrader_config.py beside solutions/")


@dataclass
class Course:
    repo: Path
    root: Path
    db_url: str = ""
    release_dir: Path = field(default=None)  # type: ignore[assignment]

    @classmethod
    def open(cls, root: str | Path | None = None, repo: str | Path | None = None,
             db_url: str | None = None) -> "Course":
        repo_path = Path(repo).resolve() if repo else find_repo()
        root_path = Path(root).resolve() if root else repo_path
        root_path.mkdir(parents=True, exist_ok=True)
        url = db_url or os.environ.get("COURSE_DB_URL") or f"sqlite:///{root_path / 'gradebook.db'}"
        release = repo_path / "assignments" if root_path == repo_path else root_path / "release"
        return cls(repo=repo_path, root=root_path, db_url=url, release_dir=release)

    # -- paths -------------------------------------------------------------------------
    @property
    def source_dir(self) -> Path:
        return self.repo / "solutions"

    def submitted(self, student: str = "", assignment: str = "") -> Path:
        return self.root / "submitted" / student / assignment

    def autograded(self, student: str = "", assignment: str = "") -> Path:
        return self.root / "autograded" / student / assignment

    def feedback_dir(self, student: str = "", assignment: str = "") -> Path:
        return self.root / "feedback" / student / assignment

    @property
    def reports_dir(self) -> Path:
        return self.root / "reports"

    def assignments(self) -> list[str]:
        """Assignment ids, in course order (the folder names in ``solutions/``)."""
        return sorted(p.name for p in self.source_dir.iterdir()
                      if p.is_dir() and any(p.glob("*.ipynb")))

    def source_notebooks(self, assignment: str) -> list[Path]:
        return sorted((self.source_dir / assignment).glob("*.ipynb"))

    def students(self, assignment: str | None = None) -> list[str]:
        base = self.submitted()
        if not base.is_dir():
            return []
        return sorted(p.name for p in base.iterdir()
                      if p.is_dir() and (assignment is None or (p / assignment).is_dir()))

    # -- nbgrader ----------------------------------------------------------------------
    def sqlite_url(self) -> str:
        """The gradebook URL with a generous lock timeout, so parallel graders wait instead of failing."""
        if self.db_url.startswith("sqlite:///") and "timeout=" not in self.db_url:
            return self.db_url + ("&" if "?" in self.db_url else "?") + "timeout=120"
        return self.db_url

    def nbgrader_args(self, submitted_dir: Path | None = None) -> list[str]:
        return [
            f"--CourseDirectory.root={self.root}",
            f"--CourseDirectory.source_directory={self.source_dir}",
            f"--CourseDirectory.release_directory={self.release_dir}",
            f"--CourseDirectory.submitted_directory={submitted_dir or self.root / 'submitted'}",
            f"--CourseDirectory.autograded_directory={self.root / 'autograded'}",
            f"--CourseDirectory.feedback_directory={self.root / 'feedback'}",
            f"--CourseDirectory.db_url={self.sqlite_url()}",
        ]

    def nbgrader(self, command: str, *args: str, env: dict | None = None, timeout: float | None = None,
                 submitted_dir: Path | None = None) -> subprocess.CompletedProcess:
        """Run ``nbgrader COMMAND ARGS`` on this course; output is captured, never raised."""
        cmd = [sys.executable, "-m", "nbgrader", command, *args, *self.nbgrader_args(submitted_dir)]
        full_env = {**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})}
        return subprocess.run(cmd, cwd=self.repo, env=full_env, capture_output=True, text=True,
                               timeout=timeout, start_new_session=True)


def read_notebook(path: Path) -> nbformat.NotebookNode:
    """Read and validate a notebook; raises ``ValueError`` with a one-line reason when it is broken."""
    try:
        nb = nbformat.read(str(path), as_version=4)
    except Exception as err:  # invalid JSON, wrong encoding, not a notebook at all
        raise ValueError(f"{path.name} is not a readable notebook ({type(err).__name__}: "
                         f"{str(err).splitlines()[0] if str(err) else 'no detail'})") from None
    try:
        nbformat.validate(nb)
    except nbformat.ValidationError as err:
        raise ValueError(f"{path.name} does not follow the notebook format ({err.message})") from None
    return nb


def grade_id(cell) -> str | None:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def is_test_cell(cell) -> bool:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return bool(meta.get("grade")) and not meta.get("solution") and cell.get("cell_type") == "code"


def is_answer_code_cell(cell) -> bool:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return bool(meta.get("solution")) and not meta.get("grade") and cell.get("cell_type") == "code"

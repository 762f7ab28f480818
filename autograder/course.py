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

    # -- the gradebook ------------------------------------------------------------------
    @property
    def is_sqlite(self) -> bool:
        """True for the embedded default; False for a server shared by several graders (PostgreSQL)."""
        return self.db_url.startswith("sqlite:")

    def gradebook_url(self) -> str:
        """The URL nbgrader is given.

        SQLite gets a generous lock timeout, so parallel graders wait instead of failing. A
        PostgreSQL URL that names no driver gets psycopg (version 3, a dependency of this package),
        which is not the default of every SQLAlchemy release that nbgrader accepts.
        """
        if self.db_url.startswith("sqlite:///") and "timeout=" not in self.db_url:
            return self.db_url + ("&" if "?" in self.db_url else "?") + "timeout=120"
        for scheme in ("postgresql://", "postgres://"):
            if self.db_url.startswith(scheme):
                return "postgresql+psycopg://" + self.db_url[len(scheme):]
        return self.db_url

    sqlite_url = gradebook_url  # the name older callers use

    def _url_and_password(self) -> tuple[str, str | None]:
        """The gradebook URL without its password, and the password, for a libpq-based driver.

        libpq reads ``PGPASSWORD``, so the password travels to nbgrader in its environment (which
        only its own user can read) instead of on its command line (which every user sees in ``ps``).
        """
        url = self.gradebook_url()
        if self.is_sqlite or not url.startswith(("postgresql+psycopg://", "postgresql+psycopg2://")):
            return url, None
        from sqlalchemy.engine import URL, make_url

        parsed = make_url(url)
        if parsed.password is None:
            return url, None
        bare = URL.create(parsed.drivername, username=parsed.username, host=parsed.host, port=parsed.port,
                          database=parsed.database, query=parsed.query)
        return bare.render_as_string(hide_password=False), str(parsed.password)

    def display_url(self) -> str:
        """The gradebook URL with any password masked, for messages."""
        if self.is_sqlite:
            return self.db_url
        from sqlalchemy.engine import make_url

        try:
            return make_url(self.db_url).render_as_string(hide_password=True)
        except Exception:  # not a URL SQLAlchemy can parse: say only its scheme
            return self.db_url.split(":", 1)[0] + "://..."

    def check_gradebook(self, timeout: int = 10) -> None:
        """Fail at once, in one line, when a gradebook server cannot be reached (SQLite needs no check)."""
        if self.is_sqlite:
            return
        from sqlalchemy import create_engine, text

        url = self.gradebook_url()
        try:
            engine = create_engine(url, connect_args={"connect_timeout": timeout}
                                   if url.startswith("postgresql") else {})
            try:
                with engine.connect() as conn:
                    conn.execute(text("SELECT 1"))
            finally:
                engine.dispose()
        except ModuleNotFoundError as err:
            raise SystemExit(f"gradebook {self.display_url()}: its database driver is not installed ({err}); "
                             "PostgreSQL needs psycopg, a dependency of this package: reinstall it") from None
        except Exception as err:
            detail = " ".join(str(getattr(err, "orig", None) or err).split())[:300]
            raise SystemExit(f"cannot reach the gradebook {self.display_url()}: {detail}") from None

    def register_students(self, students: list[str]) -> None:
        """Create these students in the gradebook before parallel grading starts.

        nbgrader creates a student on its first graded submission by looking it up and then
        inserting it: two graders doing that at once for the same new student collide, and the
        loser's submission fails. Done here, once, they find it already there.
        """
        import warnings

        from nbgrader.api import Gradebook, InvalidEntry

        if not students:
            return
        for attempt in range(3):
            try:
                with warnings.catch_warnings(), Gradebook(self.gradebook_url()) as gb:
                    warnings.simplefilter("ignore")
                    known = {s.id for s in gb.students}
                    for student in students:
                        if student not in known:
                            gb.update_or_create_student(student)
                return
            except InvalidEntry:  # another process created one of them meanwhile: look again
                if attempt == 2:
                    raise

    def write_nbgrader_config(self) -> Path:
        """``<root>/nbgrader_config.py`` for a course root kept apart from the repository, so that
        nbgrader's own apps started there (the formgrader in ``jupyter lab``) see this course."""
        path = self.root / "nbgrader_config.py"
        if self.root == self.repo:
            return path
        url = self._url_and_password()[0]
        path.write_text(
            '"""Written by `python -m autograder`: this course root, with the repository\'s configuration."""\n'
            "c = get_config()  # noqa: F821\n"
            f"load_subconfig({str(self.repo / 'nbgrader_config.py')!r})  # noqa: F821\n"
            f"c.CourseDirectory.root = {str(self.root)!r}\n"
            f"c.CourseDirectory.source_directory = {str(self.source_dir)!r}\n"
            f"c.CourseDirectory.release_directory = {str(self.release_dir)!r}\n"
            f"c.CourseDirectory.submitted_directory = {str(self.root / 'submitted')!r}\n"
            f"c.CourseDirectory.autograded_directory = {str(self.root / 'autograded')!r}\n"
            f"c.CourseDirectory.feedback_directory = {str(self.root / 'feedback')!r}\n"
            f"c.CourseDirectory.db_url = {url!r}\n")
        return path

    # -- nbgrader ----------------------------------------------------------------------
    def nbgrader_args(self, submitted_dir: Path | None = None) -> list[str]:
        return [
            f"--CourseDirectory.root={self.root}",
            f"--CourseDirectory.source_directory={self.source_dir}",
            f"--CourseDirectory.release_directory={self.release_dir}",
            f"--CourseDirectory.submitted_directory={submitted_dir or self.root / 'submitted'}",
            f"--CourseDirectory.autograded_directory={self.root / 'autograded'}",
            f"--CourseDirectory.feedback_directory={self.root / 'feedback'}",
            f"--CourseDirectory.db_url={self._url_and_password()[0]}",
        ]

    def nbgrader(self, command: str, *args: str, env: dict | None = None, timeout: float | None = None,
                 submitted_dir: Path | None = None) -> subprocess.CompletedProcess:
        """Run ``nbgrader COMMAND ARGS`` on this course; output is captured, never raised."""
        cmd = [sys.executable, "-m", "nbgrader", command, *args, *self.nbgrader_args(submitted_dir)]
        full_env = {**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})}
        password = self._url_and_password()[1]
        if password is not None:
            full_env["PGPASSWORD"] = password
        return subprocess.run(cmd, cwd=self.repo, env=full_env, capture_output=True, text=True, errors="replace",
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

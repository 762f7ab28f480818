"""Colab badges, the setup cell and the self-check cell, written into every notebook by ``release``.

The repository URL is set once, in ``pyproject.toml`` (``[tool.dlcourse]``). ``release`` rewrites
the generated cells of ``lectures/`` and ``solutions/`` in place (nbgrader then copies them into
``assignments/``) and the README's link table; ``release --check`` reports any drift. Generated cells
carry ``metadata.dlcourse.role`` so they are found again however the text around them changes.
"""
from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

import nbformat

BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"
README_START = "<!-- colab-links:start (written by `make release`; edit pyproject.toml, not this table) -->"
README_END = "<!-- colab-links:end -->"


@dataclass(frozen=True)
class Repository:
    url: str      # https://github.com/<owner>/<name>
    branch: str

    @classmethod
    def from_pyproject(cls, repo: Path) -> "Repository":
        table = tomllib.loads((repo / "pyproject.toml").read_text())["tool"]["dlcourse"]
        url = table["repository"].rstrip("/").removesuffix(".git")
        if not re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", url):
            raise ValueError(f"[tool.dlcourse] repository must be https://github.com/<owner>/<name>, not {url!r}")
        return cls(url=url, branch=table.get("branch", "main"))

    def colab_url(self, path: str) -> str:
        """The Colab address that opens ``path`` (relative to the repository root) from GitHub."""
        return f"https://colab.research.google.com/github/{self.url.removeprefix('https://github.com/')}/blob/{self.branch}/{path}"

    def raw_url(self, path: str) -> str:
        """The address that serves the committed file ``path`` of the branch as it is (GitHub's raw files)."""
        return f"https://raw.githubusercontent.com/{self.url.removeprefix('https://github.com/')}/{self.branch}/{path}"

    def pip_spec(self) -> str:
        return f"dlcourse @ git+{self.url}@{self.branch}"


def badge(repository: Repository, path: str) -> str:
    return f"[![Open In Colab]({BADGE_IMAGE})]({repository.colab_url(path)})"


def setup_source(repository: Repository) -> str:
    spec = repository.pip_spec()
    return (
        "# Setup, written by `make release`. On Colab it installs the course package (Colab already has\n"
        "# torch); anywhere the package is installed it does nothing slow; a notebook downloaded on its\n"
        "# own installs the package first.\n"
        "import importlib.util, sys\n"
        'if "google.colab" in sys.modules:\n'
        f'    %pip install -q --no-deps "{spec}"\n'
        'elif importlib.util.find_spec("dlcourse") is None:\n'
        f'    %pip install -q "{spec}"\n'
        "from dlcourse import describe_runtime\n"
        "describe_runtime()   # where training will run; on Colab without a GPU, how to get one"
    )


SELF_CHECK_INTRO = (
    "## Check your work\n\n"
    "Save the notebook (Ctrl+S), then run the cell below. It runs a fresh copy of your notebook from\n"
    "top to bottom, as the grader does, and shows each visible test: passed or failed, and why.\n"
    "Hidden tests run only when your instructor grades, so they may still fail. From a terminal:\n"
    "`python -m dlcourse.selfcheck <notebook>.ipynb`."
)
SELF_CHECK_SOURCE = "from dlcourse.selfcheck import self_check\nself_check()"


def _role(cell) -> str | None:
    return cell.get("metadata", {}).get("dlcourse", {}).get("role")


def _cell(kind: str, source: str, role: str):
    make = nbformat.v4.new_markdown_cell if kind == "markdown" else nbformat.v4.new_code_cell
    cell = make(source)
    cell.metadata["dlcourse"] = {"role": role}
    cell.id = f"dlcourse-{role}"   # fixed, so a second release changes nothing
    return cell


def stamp(nb, repository: Repository, colab_path: str, *, self_check: bool) -> None:
    """Put the generated cells in ``nb``: badge first, setup as the first code cell, self-check last."""
    cells = [c for c in nb.cells if _role(c) is None]
    first_code = next((i for i, c in enumerate(cells) if c.cell_type == "code"), len(cells))
    cells.insert(first_code, _cell("code", setup_source(repository), "setup"))
    cells.insert(0, _cell("markdown", badge(repository, colab_path), "colab-badge"))
    if self_check:
        cells += [_cell("markdown", SELF_CHECK_INTRO, "self-check-intro"),
                  _cell("code", SELF_CHECK_SOURCE, "self-check")]
    nb.cells = cells


@dataclass(frozen=True)
class StampTarget:
    path: Path        # the notebook in this checkout that holds the generated cells
    colab_path: str   # what its badge opens: the student's copy
    self_check: bool


def targets(repo: Path) -> list[StampTarget]:
    out = [StampTarget(p, p.relative_to(repo).as_posix(), False) for p in sorted((repo / "lectures").glob("*.ipynb"))]
    for p in sorted((repo / "solutions").glob("*/*.ipynb")):
        out.append(StampTarget(p, f"assignments/{p.parent.name}/{p.name}", True))
    return out


def _cell_text(nb) -> str:
    return "\n".join(f"{c.cell_type}|{c.get('id')}|{c.metadata.get('dlcourse')}|{c.source}" for c in nb.cells)


def readme_table(repo: Path, repository: Repository) -> str:
    rows = ["| notebook | open |", "| --- | --- |"]
    for t in targets(repo):
        label = f"assignment `{t.path.parent.name}`" if t.self_check else f"lecture `{t.path.stem}`"
        rows.append(f"| {label} | {badge(repository, t.colab_path)} |")
    return "\n".join([README_START, *rows, README_END])


def _readme_with_table(text: str, table: str) -> str:
    pattern = re.compile(re.escape(README_START) + r".*?" + re.escape(README_END), re.S)
    if not pattern.search(text):
        raise ValueError(f"README.md has no {README_START!r} … {README_END!r} block for the Colab links")
    return pattern.sub(lambda _: table, text)


def stamp_repository(repo: Path, *, check: bool = False) -> list[str]:
    """Write (or with ``check``, only report) the generated cells and the README's Colab links."""
    repository = Repository.from_pyproject(repo)
    lines = []   # what was (or, with check, would be) rewritten
    for target in targets(repo):
        nb = nbformat.read(str(target.path), as_version=4)
        before = _cell_text(nb)
        stamp(nb, repository, target.colab_path, self_check=target.self_check)
        if _cell_text(nb) != before:
            rel = target.path.relative_to(repo)
            if check:
                lines.append(f"{rel}: its Colab badge, setup or self-check cell is not what `make release` writes")
            else:
                nbformat.write(nb, str(target.path))
                lines.append(f"{rel}: generated cells updated")
    readme = repo / "README.md"
    text = readme.read_text()
    new = _readme_with_table(text, readme_table(repo, repository))
    if new != text:
        if check:
            lines.append("README.md: the Colab links are not what `make release` writes")
        else:
            readme.write_text(new)
            lines.append("README.md: Colab links updated")
    return lines

"""nbgrader course configuration: solutions/ is the source of truth, assignments/ is generated.

Environment overrides (so one config serves a laptop, a hub and a grading cluster):
  COURSE_DB_URL        gradebook URL, e.g. postgresql://grader@db/course (default: SQLite file)
  COURSE_CELL_TIMEOUT  seconds one cell may run while grading (default 600, training cells need it)
"""
import os

c = get_config()  # noqa: F821 (injected by traitlets)

c.CourseDirectory.root = os.path.dirname(os.path.abspath(__file__))
c.CourseDirectory.course_id = "dl-course"
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "assignments"
c.CourseDirectory.submitted_directory = "submitted"
c.CourseDirectory.autograded_directory = "autograded"
c.CourseDirectory.feedback_directory = "feedback"
# Mutants (wrong answers used by the test harness) live beside each assignment, never released.
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", "mutants.py", "equivalent_mutants.txt"]
if os.environ.get("COURSE_DB_URL"):
    c.CourseDirectory.db_url = os.environ["COURSE_DB_URL"]

# Grading: the most any one cell may run (the budgets measured on each solution are usually lower).
c.Execute.timeout = int(os.environ.get("COURSE_CELL_TIMEOUT", "600"))
# A deleted or edited test cell is restored from the gradebook; a deleted answer cell comes back blank.
c.OverwriteCells.add_missing_cells = True
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
# A flood of output is cut before it reaches the feedback.
c.LimitOutput.max_lines = 300
c.LimitOutput.max_traceback = 60
# Grading starts from clean copies: never trust what a student's file says about itself.
c.ClearOutput.enabled = True
c.Autograde.create_student = True

# The grading pipeline (one definition: `python -m autograder autograde`, plain `nbgrader autograde` and the
# formgrader's button all run these steps). Student code runs in a sandboxed process; the tests run outside it
# (autograder/verdict.py) and only their verdicts reach the test cells. Without the course package, grading
# refuses to start rather than grade without those protections.
try:
    from nbconvert.preprocessors import ClearMetadataPreprocessor, CSSHTMLHeaderPreprocessor
    from nbgrader.preprocessors import (AssignLatePenalties, CheckCellMetadata, ClearOutput, DeduplicateIds, GetGrades,
                                        IgnorePattern, LimitOutput, OverwriteCells, OverwriteKernelspec, SaveAutoGrades)

    from autograder.artefacts import ShowHandedInResults, exclude_overwriting
    from autograder.duedates import SchedulePenalty
    from autograder.feedback import RedactHiddenTests
    from autograder.preprocessors import NormalizeSubmission, SanitizeForDisplay, TrustedExecute

    c.Autograde.sanitize_preprocessors = [ClearOutput, NormalizeSubmission, DeduplicateIds, OverwriteKernelspec,
                                          OverwriteCells, CheckCellMetadata]
    c.Autograde.autograde_preprocessors = [TrustedExecute, IgnorePattern, ClearMetadataPreprocessor, LimitOutput,
                                           SaveAutoGrades, AssignLatePenalties, CheckCellMetadata, ShowHandedInResults,
                                           SanitizeForDisplay]
    # The student's own results (exp1's sweeps, exp2's history) stay as handed in, never the source folder's
    # copies, and are shown before the written answers that discuss them (autograder/artefacts.py).
    c.Autograde.exclude_overwriting = exclude_overwriting()
    c.TrustedExecute.timeout = c.Execute.timeout
    # Late penalties: the policy and due dates of the course root's schedule.toml (autograder/duedates.py).
    c.AssignLatePenalties.plugin_class = SchedulePenalty
    # Feedback shows test names, points and the grader's messages, never hidden-test code or student output.
    c.GenerateFeedback.preprocessors = [GetGrades, RedactHiddenTests, CSSHTMLHeaderPreprocessor]
except ImportError as _missing:
    from nbgrader.preprocessors import NbGraderPreprocessor as _Base

    _why = str(_missing)

    class RefuseToGrade(_Base):
        """The course package is missing: grading would lose its protections, so it stops."""

        def preprocess(self, nb, resources):
            raise RuntimeError(f"cannot grade: the course package is not importable ({_why}); install it "
                               "(make venv) and grade with `python -m autograder autograde` (make autograde)")

    c.Autograde.autograde_preprocessors = [RefuseToGrade]
    c.GenerateFeedback.preprocessors = [RefuseToGrade]

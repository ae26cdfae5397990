# The two commands of the README: `make demo` and `make test`. Both install what they need first.
.PHONY: demo test lint setup

setup:
	./ops/setup.sh test

demo:
	./ops/setup.sh dev-broker
	.venv/bin/cxkpi dev

lint: setup
	.venv/bin/ruff check stream tests

test: setup lint
	.venv/bin/python -m pytest -q -p no:cacheprovider

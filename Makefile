# The commands of the README: `make demo`, `make test` and `make unit`. Each installs what it
# needs first.
.PHONY: demo test unit lint setup monitoring bench mutation

setup:
	./ops/setup.sh test

demo:
	./ops/setup.sh dev-broker
	.venv/bin/cxkpi dev

lint: setup
	.venv/bin/ruff check stream tests bench

# The whole suite, in 6 parallel pytest-xdist workers: the integration tests mostly wait on
# servers and workers, so more of them than cores; tests/schedule.py starts the longest first and
# runs the CPU-bound and the timed ones apart (docs/testing.md): 8 min 42 s and 10 min 48 s on
# 2 cores, 13 minutes beside other work (25 one test after another).
test: setup lint
	.venv/bin/python -m pytest -v -p no:cacheprovider -n 6

# The unit tests alone, on both cores: 43-44 s on a quiet machine (84 s of CPU), up to 77 s
# beside another session's benchmarks (docs/testing.md).
unit: setup lint
	.venv/bin/python -m pytest -q -p no:cacheprovider -n 2 tests/unit

# Regenerate the committed Prometheus rules (a rule file for Compose, the same groups as a
# PrometheusRule for Kubernetes) and Grafana dashboard from cxkpi.toml.
monitoring: setup
	.venv/bin/cxkpi rules --out ops/prometheus/rules/cxkpi.rules.yml
	.venv/bin/cxkpi rules --format prometheus-rule --out deploy/kubernetes/prometheusrule.yaml
	.venv/bin/cxkpi dashboard --out ops/grafana/dashboards/cxkpi-overview.json

# The performance benchmark (bench/run.py): floor, full worker, raw consumer, latency, memory.
bench: setup
	.venv/bin/python -m bench.run

# Mutation testing of stream/kpis and stream/state against their unit tests, in a throwaway copy
# (bench/mutation.sh; about half an hour on 2 cores). Not part of `make test` or CI.
mutation: setup
	./bench/mutation.sh

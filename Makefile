# The two commands of the README: `make demo` and `make test`. Both install what they need first.
.PHONY: demo test lint setup monitoring bench mutation

setup:
	./ops/setup.sh test

demo:
	./ops/setup.sh dev-broker
	.venv/bin/cxkpi dev

lint: setup
	.venv/bin/ruff check stream tests bench

# Each test's name shows as it starts (the whole suite, 1,057 tests, took 27 minutes on 2 shared cores).
test: setup lint
	.venv/bin/python -m pytest -v -p no:cacheprovider

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

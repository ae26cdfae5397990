#!/usr/bin/env bash
# Mutation testing of the KPI rules and the state (stream/kpis, stream/state) against the unit
# tests that exercise them: which deliberate bugs (>= turned into >, a constant changed, ...) no
# unit test notices. Slow (about half an hour on 2 cores) and not part of `make test` or CI.
#
# It runs in a throwaway copy of the working tree, so the tree itself is never mutated:
#   bench/mutation.sh [work-dir]        (default: a new folder under /tmp)
# Environment: JOBS (parallel mutants, default 2), TESTS and PYTEST_ARGS (test selection, below),
# PYTHON (the project's, default .venv/bin/python), MUTATION_VENV (where mutmut is installed).
# Afterwards: `cd <work-dir> && $MUTATION_VENV/bin/mutmut show <mutant>` shows one mutant.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-$(mktemp -d /tmp/cxkpi-mutation.XXXXXX)}
python=${PYTHON:-$root/.venv/bin/python}
tests=${TESTS:-tests/unit/kpis tests/unit/state}
# test_long_horizons.py takes 18 s a run, and every surviving mutant of the state runs it: left
# out by default to keep the run near half an hour (PYTEST_ARGS= puts it back, for about twice).
pytest_args=${PYTEST_ARGS---ignore=tests/unit/state/test_long_horizons.py}

# mutmut 3.8 (the first to run under pytest 9) wants click >= 8.4, which faust-streaming
# refuses: it gets a venv of its own, layered over the project's by a .pth file, never .venv.
venv=${MUTATION_VENV:-/tmp/cxkpi-mutation-venv}
if ! "$venv/bin/python" -c 'import mutmut' 2>/dev/null; then
  "$python" -m venv "$venv"
  site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  "$python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])' >"$site/cxkpi.pth"
  "$venv/bin/python" -m pip install -q "mutmut==3.8.1"
fi

mkdir -p "$work"
tar -C "$root" --exclude=./.venv --exclude=./.git --exclude=./mutants --exclude=__pycache__ \
  --exclude='*.egg-info' --exclude=.ruff_cache --exclude=.pytest_cache -cf - . | tar -C "$work" -xf -
{
  echo "[mutmut]"
  echo "source_paths = stream"
  printf 'only_mutate =\n    stream/kpis/*\n    stream/state/*\n'
  printf 'also_copy =\n    schemas\n    docs\n    cxkpi.toml\n'  # what the tests read
  echo "pytest_add_cli_args_test_selection ="
  for t in $tests; do echo "    $t"; done
  printf 'pytest_add_cli_args =\n    -p\n    no:cacheprovider\n'
  for a in $pytest_args; do echo "    $a"; done
} >"$work/setup.cfg"

cd "$work"
echo "mutating stream/kpis and stream/state in $work against: $tests $pytest_args"
"$venv/bin/python" -m mutmut run --max-children "${JOBS:-2}" >mutmut-run.log 2>&1 || {
  tail -20 mutmut-run.log
  exit 1
}
tail -c 400 mutmut-run.log | tr '\r' '\n' | tail -2
"$venv/bin/python" -m mutmut export-cicd-stats >/dev/null && cat mutants/mutmut-cicd-stats.json && echo
"$venv/bin/python" -m mutmut results | tee survivors.txt
echo "survivors listed in $work/survivors.txt"

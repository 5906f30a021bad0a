# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.netshrink-installed

.PHONY: demo test test-slow lint format bench clean browser

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# torch first, pinned: the CPU build on local disk (other versions pull CUDA wheels).
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev,ray]'
	touch $@

demo: $(STAMP)
	$(VENV)/bin/netshrink survey

# The report's browser test drives Debian's chromium (Playwright's own download is not
# reachable). Installed here when missing and apt-get can; otherwise that test skips and
# says why (CI sets NETSHRINK_REQUIRE_BROWSER=1, which makes it fail instead).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian's chromium for the browser test (apt-get)"; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1 || \
	    { apt-get update -q >/dev/null 2>&1 && \
	      DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1; } || \
	    echo "note: chromium could not be installed; the browser test will skip" >&2; \
	  else echo "note: no chromium and no root apt-get; the browser test will skip" >&2; fi; }

# pytest exits 5 when it collected no tests: an empty run is not green.
test: $(STAMP) browser
	$(PY) -m pytest -q; rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected" >&2; exit 1; fi; exit $$rc

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: $(STAMP)
	for b in benchmarks/bench_*.py; do OMP_WAIT_POLICY=ACTIVE $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) runs build *.egg-info

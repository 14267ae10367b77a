# Two commands for a newcomer on a fresh Debian 12 machine (as root):
#   make apply   set up, then apply the formula to this host with a demo pillar
#   make test    set up, then run the whole test suite (what .ci/run runs)
# While changing code, the fast lane (seconds to a few minutes, changes
# nothing on this host):
#   make lint    ruff, yamllint, salt-lint, ShellCheck (scripts/lint)
#   make test PYTEST_ARGS='test/unit test/render'
SHELL := /bin/bash
VENV  := .venv
PY    := $(VENV)/bin/python
BUILD := .build

# What `make apply` needs: a venv that can build salt's sdist deps (timelib).
APPLY_DEBS := python3-venv python3-dev gcc ca-certificates openssl
# What make lint needs besides the venv's `lint` extra.
LINT_DEBS  := shellcheck
# What the suites need on top: the real broker, clients, Prometheus,
# scanners and the test-host tooling.
TEST_DEBS  := mosquitto mosquitto-clients prometheus nmap debootstrap \
              systemd-container iproute2 curl python3-paho-mqtt \
              python3-prometheus-client util-linux sslscan cron \
              docker.io nftables iptables strace logrotate $(LINT_DEBS)

.PHONY: apply test lint setup-apply setup-lint setup-test clean-venv

apply: setup-apply
	$(PY) scripts/demo_apply.py

# Without PYTEST_ARGS: lint, then every suite in the phases scripts/test-all
# explains (unit and render first of all: the fast lane).
test: setup-test
ifeq ($(strip $(PYTEST_ARGS)),)
	VENV=$(VENV) PY=$(PY) scripts/lint
	PY=$(PY) scripts/test-all
else
	$(PY) -m pytest -p no:cacheprovider $(PYTEST_ARGS)
endif

lint: setup-lint
	VENV=$(VENV) PY=$(PY) scripts/lint

# Applying needs Salt and the formula's runtime libraries only; the test
# and lint tools come with setup-test and setup-lint.
setup-apply: $(BUILD)/debs-apply.stamp $(VENV)/.installed
setup-lint: setup-apply $(BUILD)/debs-lint.stamp $(VENV)/.installed-lint
setup-test: setup-lint $(BUILD)/debs-test.stamp $(VENV)/.installed-test

# apt-get must not start daemons it installs (prometheus, mosquitto) on
# this machine: the tests start their own. A policy-rc.d that we add is
# removed again.
$(BUILD)/debs-%.stamp: Makefile
	@mkdir -p $(BUILD)
	scripts/apt-install $(if $(filter apply,$*),$(APPLY_DEBS),$(if $(filter lint,$*),$(LINT_DEBS),$(TEST_DEBS)))
	@touch $@

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip wheel
	$(PY) -m pip install --quiet .
	@touch $@

# The project's `test` or `lint` extra, on top of the runtime venv.
$(VENV)/.installed-%: $(VENV)/.installed
	$(PY) -m pip install --quiet '.[$*]'
	@touch $@

clean-venv:
	rm -rf $(VENV) $(BUILD)/*.stamp

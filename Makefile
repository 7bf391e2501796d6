# The README's two commands are `make synth` and `make test`. Each installs what it needs.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1
# jsii also prints an end-of-life banner for Node 20 unless its major version is listed here.
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
# No AWS account is needed; keep the SDKs from probing instance metadata for credentials.
export AWS_EC2_METADATA_DISABLED := true
export CDK_DISABLE_VERSION_CHECK := 1

.PHONY: synth test system-deps python-deps node-deps bench clean

synth: python-deps node-deps ## synthesize the reference app into cdk.out/ and summarize it
	rm -rf cdk.out
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" npx --no-install cdk synth --quiet --no-notices --no-version-reporting
	$(PY) scripts/synth_report.py cdk.out

test: system-deps python-deps ## run the whole test suite
	$(PY) -m pytest -p no:cacheprovider -q

system-deps: ## Debian packages the tests need (the OCI registry)
	@command -v docker-registry >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends docker-registry; }

python-deps: $(STAMP)
$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

node-deps: node_modules/.bin/cdk
node_modules/.bin/cdk: package.json
	npm install --no-audit --no-fund --loglevel=error
	touch $@

bench: python-deps system-deps ## run the benchmarks (not part of the tests)
	$(PY) bench/run.py

clean:
	rm -rf cdk.out .cache node_modules $(VENV)

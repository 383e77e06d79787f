# binance-extractor: `make run` (offline demo) and `make test` (every test) on a fresh Debian machine as root.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# Debian packages the build, the tests and the demo need.
APT_PACKAGES := libmariadb-dev libcurl4-openssl-dev zlib1g-dev libssl-dev libpq-dev mariadb-server mariadb-client postgresql ca-certificates python3
# Python packages the OTLP validators need (the official protobuf schema).
PIP_PACKAGES := opentelemetry-proto protobuf
TEST_DB_DIR ?= .build-test/mariadb
TEST_DB_PORT ?= auto
TEST_PG_DIR ?= .build-test/postgres
TEST_PG_PORT ?= auto
DEMO_DB_DIR ?= .build-demo/mariadb
DEMO_DB_PORT ?= auto
DEMO_PG_DIR ?= .build-demo/postgres
# The store the demo writes: mariadb or postgresql (make run STORE=postgresql).
STORE ?= mariadb
# The whole test run's limit (coreutils timeout): a hang fails with diagnostics instead of holding CI.
TEST_TIMEOUT ?= 25m

.PHONY: help deps python-deps build release run demo-stop test bench clean image k8s-validate deploy k8s-status k8s-logs

# Container image and Kubernetes (see README, "Container image" and "Kubernetes").
IMAGE ?= binance-extractor
# The project's one version lives in Sources/BuildInfo/BuildInfo.swift.
VERSION ?= $(shell sed -n 's/.*static let version = "\(.*\)".*/\1/p' Sources/BuildInfo/BuildInfo.swift)
OVERLAY ?= local
NAMESPACE ?= $(if $(filter production,$(OVERLAY)),binance,binance-$(OVERLAY))

help:
	@echo "make run    offline demo: local MariaDB + binance-sim + the extractor (STORE=postgresql: on PostgreSQL)"
	@echo "make test   build and run every test (real MariaDB, bundled simulator)"
	@echo "make build  debug build; make release: release build"
	@echo "make bench  benchmark figures (release builds): a table and .build-bench/results.json"
	@echo "make image  build the container image (needs a Docker engine)"
	@echo "make k8s-validate   render and check every manifest and the Dockerfile (offline)"
	@echo "make deploy [OVERLAY=local|production], make k8s-status, make k8s-logs"

# Installs what is missing, and only that (apt-get update once, when something is).
deps:
	@command -v swift >/dev/null || { echo "swift not found: install Swift 6 (https://www.swift.org/install/linux/) and put it on PATH" >&2; exit 1; }
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

# The trace validators run on what the exporter really sent: they need the OTLP protobuf schema.
python-deps:
	@python3 -c 'import google.protobuf, opentelemetry.proto' 2>/dev/null || { \
	  python3 -m pip --version >/dev/null 2>&1 || { export DEBIAN_FRONTEND=noninteractive; apt-get install -y -qq python3-pip >/dev/null; }; \
	  python3 -m pip install -q $(PIP_PACKAGES) 2>/dev/null || python3 -m pip install -q --break-system-packages $(PIP_PACKAGES); }

build: deps
	swift build

release: deps
	swift build -c release

run: deps
	swift build --product binance-extractor
	swift build --product binance-sim
	swift build --product otlp-receiver
	DB_DIR=$(DEMO_DB_DIR) DB_PORT=$(DEMO_DB_PORT) PG_DIR=$(DEMO_PG_DIR) STORE=$(STORE) scripts/demo.sh

demo-stop:
	scripts/mariadb.sh stop $(DEMO_DB_DIR)
	scripts/postgres.sh stop $(DEMO_PG_DIR)

# Builds everything (the executables too: some tests run them), starts a throwaway MariaDB and PostgreSQL, runs
# the tests, and stops both servers whatever the outcome.
test: deps python-deps k8s-validate
	swift build --build-tests
	@uri=$$(scripts/mariadb.sh start $(TEST_DB_DIR) $(TEST_DB_PORT)) || exit 1; \
	trap 'scripts/mariadb.sh stop $(TEST_DB_DIR); scripts/postgres.sh stop $(TEST_PG_DIR)' EXIT; \
	pg=$$(scripts/postgres.sh start $(TEST_PG_DIR) $(TEST_PG_PORT)) || exit 1; \
	status=0; TEST_MYSQL_URI=$$uri TEST_POSTGRES_URI=$$pg timeout --kill-after=30s $(TEST_TIMEOUT) swift test --skip-build || status=$$?; \
	if [ $$status -ne 0 ]; then scripts/test-diagnostics.sh $(TEST_DB_DIR) $(TEST_PG_DIR) $$status; fi; exit $$status

BENCH_DB_DIR ?= .build-bench/mariadb
BENCH_PG_DIR ?= .build-bench/postgres

# Throughput, budget use, memory and start-up, with release builds, against binance-sim and a MariaDB of its own.
# Prints a table and writes .build-bench/results.json. BENCH_QUICK=1 for a shorter run.
bench: deps
	swift build -c release --product binance-extractor
	swift build -c release --product binance-sim
	swift build -c release --product binance-bench
	@uri=$$(scripts/mariadb.sh start $(BENCH_DB_DIR) auto) || exit 1; \
	trap 'scripts/mariadb.sh stop $(BENCH_DB_DIR); scripts/postgres.sh stop $(BENCH_PG_DIR)' EXIT; \
	pg=$$(scripts/postgres.sh start $(BENCH_PG_DIR) auto) || exit 1; \
	BENCH_MYSQL_URI=$$uri BENCH_POSTGRES_URI=$$pg BENCH_BIN_DIR=$$(swift build -c release --show-bin-path) .build/release/binance-bench

image:
	@command -v docker >/dev/null && docker info >/dev/null 2>&1 || { echo "no Docker engine here: run make image where one runs (the Dockerfile is checked by make k8s-validate)" >&2; exit 1; }
	docker build --build-arg VERSION=$(VERSION) -t $(IMAGE):$(VERSION) -t $(IMAGE):dev .

# Renders every kustomization, validates it against the Kubernetes schema (strict, offline), lints the YAML, and
# runs checkov over the manifests and the Dockerfile.
k8s-validate: deps
	scripts/k8s-check.sh

deploy:
	kubectl apply -k k8s/overlays/$(OVERLAY)

k8s-status:
	kubectl -n $(NAMESPACE) get cronjobs,jobs,pods -l app.kubernetes.io/part-of=binance-extractor

k8s-logs:
	kubectl -n $(NAMESPACE) logs -l app.kubernetes.io/name=binance-extractor --tail=200 --prefix --max-log-requests=20

clean:
	-scripts/mariadb.sh stop $(TEST_DB_DIR)
	-scripts/mariadb.sh stop $(DEMO_DB_DIR)
	-scripts/postgres.sh stop $(TEST_PG_DIR)
	-scripts/postgres.sh stop $(DEMO_PG_DIR)
	rm -rf .build .build-test .build-demo

# jobgraph — every target creates/uses the local virtualenv itself, so a fresh machine
# needs nothing but Python 3.13, the Lambda runtime's version (see README).
#
# PYTHON: a python3.13 on PATH, else pyenv's (~/.pyenv or $PYENV_ROOT); override with PYTHON=/path/to/python3.13.
LAMBDA_PYTHON_VERSION := 3.13
PYENV_ROOT ?= $(HOME)/.pyenv
comma := ,
# true when the interpreter given as $(1) is Python $(LAMBDA_PYTHON_VERSION)
IS_LAMBDA_PYTHON = $(1) -c 'import sys; sys.exit(sys.version_info[:2] != ($(subst .,$(comma),$(LAMBDA_PYTHON_VERSION))))'
ifndef PYTHON
PYTHON := $(shell for p in $$(which -a python$(LAMBDA_PYTHON_VERSION) 2>/dev/null) \
	$$(ls -d $(PYENV_ROOT)/versions/$(LAMBDA_PYTHON_VERSION).*/bin/python$(LAMBDA_PYTHON_VERSION) 2>/dev/null | sort -rV); do \
	$(call IS_LAMBDA_PYTHON,$$p) 2>/dev/null && { echo $$p; break; }; done)
endif
PYTHON_CHECK = $(if $(PYTHON),$(if $(shell $(call IS_LAMBDA_PYTHON,$(PYTHON)) 2>/dev/null && echo ok),,\
	$(error PYTHON=$(PYTHON) is not Python $(LAMBDA_PYTHON_VERSION))),\
	$(error No python$(LAMBDA_PYTHON_VERSION) found (PATH, $(PYENV_ROOT)/versions). Install Python $(LAMBDA_PYTHON_VERSION) — the Lambda runtime's version — e.g. `pyenv install $(LAMBDA_PYTHON_VERSION)` or your distribution's python$(LAMBDA_PYTHON_VERSION) + python$(LAMBDA_PYTHON_VERSION)-venv packages — or pass PYTHON=/path/to/python$(LAMBDA_PYTHON_VERSION)))
VENV ?= .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMP := $(VENV)/.installed-py$(LAMBDA_PYTHON_VERSION)

# ENV: the deployed environment the AWS targets use (samconfig.toml): dev | prod | local, the local cloud
# (`make cloud-up`). Given on the command line, it also sends `make run` to that environment's deployed stack.
ENV ?= dev
TEST_RUN_ID ?= default
RUN_ID ?= example
SCENARIOS ?= 1000
SEED ?= 42
OUT ?= results
SEQUENCES ?= sequences
# jobgraph run's implementation (runs/scenarios.py): 1 = SQS FIFO + Lambda, 2 = ECS Fargate, 3 = Step Functions
SCENARIO ?= 1

# SAM CLI lives in its own virtualenv: its pins (boto3, cfn-lint, ...) must not touch .venv.
SAM_CLI_VERSION := 1.170.0
SAM_VENV ?= .venv-sam
SAM_STAMP := $(SAM_VENV)/.installed-$(SAM_CLI_VERSION)-py$(LAMBDA_PYTHON_VERSION)
SAM := SAM_CLI_TELEMETRY=0 $(SAM_VENV)/bin/sam
# checkov lives in its own virtualenv too: it pins boto3==1.35.49, packaging<24, networkx<2.7, ...,
# which clash with .venv's pins. cfn-lint-serverless stays in .venv (pinned in constraints.txt): it
# is a cfn-lint rule plugin, so it must be importable by the cfn-lint that runs it (the one the tests
# use), and it depends on nothing but cfn-lint.
CHECKOV_VERSION := 3.3.30
CHECKOV_VENV ?= .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed-$(CHECKOV_VERSION)-py$(LAMBDA_PYTHON_VERSION)
# every template: the three scenarios and the pieces they share
SCAN_TEMPLATE ?= template.yaml templates/scenario-2.yaml templates/scenario-3.yaml $(wildcard templates/shared/*.yaml)
# Wheels the layer Makefiles download (x86_64 | arm64); also passed as the Architecture parameter.
LAYER_ARCH ?= x86_64
PROJECT_PREFIX ?= jobgraph
# Extra deploy parameter overrides, e.g. PARAMS="ProcessorMemorySize=1024 AlarmEmail=me@example.com"
PARAMS ?=
# `sam build` reruns only when the template or anything it packages changes (or LAYER_ARCH does).
# The stamp lives inside .aws-sam/build, so deleting the build also forces a rebuild.
BUILD_STAMP := .aws-sam/build/.jobgraph-built-$(LAYER_ARCH)
BUILD_INPUTS := template.yaml $(wildcard templates/shared/*.yaml) $(shell find layers functions src -type f -not -path '*/__pycache__/*' \
	-not -name '*.pyc' -not -path '*.egg-info/*' -not -path 'layers/*/build/*' 2>/dev/null)

.PHONY: venv run solve run-aws test lint typecheck pre-commit docs bench bench-local bench-build bench-compare mutation sam-cli build validate scan \
	check-env deploy destroy clean build-sfn validate-sfn deploy-sfn destroy-sfn bootstrap cloud-up cloud-down cloud-status \
	codebuild-local

# ------------------------------------------------------------------ the local cloud (ENV=local)
# `make cloud-up` starts one long-lived loopback endpoint (jobgraph cloud up) that `sam deploy` and every AWS target
# use with ENV=local: its AWS_ENDPOINT_URL and fake credentials (written to $(CLOUD_DIR)/cloud.mk) are exported
# to every recipe, so sam, boto3 and `jobgraph --stack` talk to it and nothing else. The templates' Stage is
# dev|prod: ENV=local deploys Stage=dev.
CLOUD_DIR ?= $(or $(JOBGRAPH_CLOUD_DIR),.jobgraph)
export JOBGRAPH_CLOUD_DIR := $(CLOUD_DIR)
ifeq ($(ENV),local)
-include $(CLOUD_DIR)/cloud.mk
STAGE := dev
else
STAGE := $(ENV)
endif
# `make run` goes to the deployed stack scenario-$(SCENARIO)-$(ENV) when ENV is given, else to the embedded cloud
RUN_ON_STACK := $(if $(filter file undefined,$(origin ENV)),,yes)

## make cloud-up: start the local cloud (loopback endpoint + runtime) in the background; prints its exports
cloud-up: $(STAMP)
	$(BIN)/jobgraph cloud up

## make cloud-status: what the local cloud serves and runs (stacks, functions, mappings, ECS tasks)
cloud-status: $(STAMP)
	$(BIN)/jobgraph cloud status

## make cloud-down: stop the local cloud and every process it started
cloud-down: $(STAMP)
	$(BIN)/jobgraph cloud down

## make codebuild-local [CODEBUILD_ARGS="--env PYTEST_ARGS=tests/unit"]: buildspec.yml run as CodeBuild runs it
## (phases, CODEBUILD_* variables, artifacts, reports) against ENV=local: ends in a deployed stack and a run
codebuild-local: $(STAMP)
	$(PY) scripts/codebuild_local.py $(CODEBUILD_ARGS)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON_CHECK)
	@# a virtualenv left from another Python version (e.g. 3.11 before the runtime move) is rebuilt
	@if [ -x $(PY) ] && ! $(call IS_LAMBDA_PYTHON,$(PY)); then echo "$(VENV): not Python $(LAMBDA_PYTHON_VERSION), recreating"; rm -rf $(VENV); fi
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev]"
	touch $(STAMP)

venv: $(STAMP)

RUN_OPTIONS = --sequences $(SEQUENCES) --run-id $(RUN_ID) --out $(OUT) --scenarios $(SCENARIOS) --seed $(SEED) --overwrite

## make run: the main job — the graph through SQS FIFO + Lambda on the embedded local cloud (see README)
# SCENARIO=1|2|3 picks the implementation (2: polling ECS workers, emulated locally). Extra options in RUN_ARGS, e.g.
# RUN_ARGS="--fail-rate 0.1 --duplicate-rate 0.1 --kill-rate 0.05 --poison 6".
# MESSAGES=N runs the synthetic load instead (seed 000's perf runner: `make run MESSAGES=1000`),
# with WORK_MS/DATA_KB per job.
WORK_MS ?= 100
DATA_KB ?= 10
# With ENV given (`make run MESSAGES=1000 ENV=dev`, seed 000's command), both go to the deployed stack.
LOAD_OPTIONS = --messages $(MESSAGES) --work-duration-ms $(WORK_MS) --data-size-kb $(DATA_KB) \
	--run-id load-$(MESSAGES) --out $(OUT) --overwrite
ifdef RUN_ON_STACK
run: check-env $(STAMP)
ifdef MESSAGES
	$(BIN)/jobgraph load $(LOAD_OPTIONS) --scenario $(SCENARIO) --stack scenario-$(SCENARIO)-$(ENV) \
		--test-run-id $(TEST_RUN_ID) $(RUN_ARGS)
else
	$(BIN)/jobgraph run --scenario $(SCENARIO) --stack scenario-$(SCENARIO)-$(ENV) --test-run-id $(TEST_RUN_ID) \
		$(RUN_OPTIONS) $(RUN_ARGS)
endif
else
run: $(STAMP)
ifdef MESSAGES
	$(BIN)/jobgraph load $(LOAD_OPTIONS) --scenario $(SCENARIO) $(RUN_ARGS)
else
	$(BIN)/jobgraph run --scenario $(SCENARIO) $(RUN_OPTIONS) $(RUN_ARGS)
endif
endif

## make solve: the same graph with the in-process reference solver
solve: $(STAMP)
	$(BIN)/jobgraph solve $(RUN_OPTIONS)

## make run-aws ENV=dev|local [SCENARIO=2|3]: the same run on the deployed stack scenario-$(SCENARIO)-$(ENV)
run-aws: check-env $(STAMP)
	$(BIN)/jobgraph run --scenario $(SCENARIO) --stack scenario-$(SCENARIO)-$(ENV) --test-run-id $(TEST_RUN_ID) $(RUN_OPTIONS) $(RUN_ARGS)

## make test: lint, type check, the docs site, then the whole test suite (including the checks on the `sam build`
## output and `make scan`) with its coverage figure, whole and per package, and the floors (docs/development.md)
# The floors are checked only on a whole-suite run: a PYTEST_ARGS subset covers less by design.
# The figure is measured on every test but tests/e2e (paused there: tests/conftest.py; JOBGRAPH_COVER_E2E=1 for all).
test: $(STAMP) $(BUILD_STAMP) $(CHECKOV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(MKDOCS_BUILD)
	$(BIN)/pytest --cov --cov-report= $(PYTEST_ARGS)
	$(PY) scripts/coverage_summary.py $(if $(PYTEST_ARGS),,--check)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

## make typecheck: mypy --strict over the packages listed in pyproject.toml [tool.mypy] files (core/, services/, adapters/)
typecheck: $(STAMP)
	$(BIN)/mypy

## make docs: the documentation site (mkdocs.yml over docs/*.md) built with --strict into $(DOCS_SITE)/ (a broken
## link or anchor, or a page missing from the nav, fails)
DOCS_SITE ?= site
MKDOCS_BUILD = NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir $(DOCS_SITE)
docs: $(STAMP)
	$(MKDOCS_BUILD)

## make pre-commit: install the git hook running .pre-commit-config.yaml (ruff, mypy, cfn-lint; offline) per commit
pre-commit: $(STAMP)
	$(BIN)/pre-commit install

bench: $(STAMP)
	$(PY) benchmarks/bench_delay_model.py

## make bench-local: local cloud time per job at 50/100/200/400 sequences and the ratio to solve (~6 min)
bench-local: $(STAMP)
	$(PY) benchmarks/bench_localcloud.py

## make bench-compare: the example graph on scenarios 1, 2 and 3 on the local cloud, each run recorded, then one
# report with a recommendation: $(OUT)/bench-report/report.html (~3 min). BENCH_ARGS="--memory 256,1024" adds
# Processor settings; BENCH_ARGS="--env dev" runs on the stacks scenario-<n>-dev instead (AWS credentials needed).
bench-compare: $(STAMP)
	$(BIN)/jobgraph bench --sequences $(SEQUENCES) --run-id bench --out $(OUT) --scenarios $(SCENARIOS) --seed $(SEED) --overwrite $(BENCH_ARGS)

## make mutation: mutation score of the modules listed under [tool.mutmut] in pyproject.toml, against unit +
# integration tests only (mutmut 3, in its own copy under mutants/; ~1-2 h on 2 cores; not part of `make test`).
# Survivors: `$(BIN)/mutmut results`, one diff: `$(BIN)/mutmut show NAME`. Figures: docs/benchmarks.md.
# On a shared machine: `make mutation MUTATION_WORKERS=1` (mutants tested at once; each is one pytest process).
MUTMUT_VERSION := 3.8.1
MUTATION_WORKERS ?= 2
mutation: $(STAMP)
	$(PY) -m pip install --quiet mutmut==$(MUTMUT_VERSION)
	rm -rf mutants
	$(BIN)/mutmut run --max-children $(MUTATION_WORKERS)
	$(PY) tests/mutation_score.py

## make bench-build: function + layer sizes and cold import times of the built handlers
bench-build: $(STAMP) $(BUILD_STAMP)
	$(PY) benchmarks/bench_build.py
	$(PY) benchmarks/bench_import.py

$(SAM_STAMP):
	$(PYTHON_CHECK)
	rm -rf $(SAM_VENV)
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet --upgrade pip
	$(SAM_VENV)/bin/pip install --quiet aws-sam-cli==$(SAM_CLI_VERSION)
	touch $@

sam-cli: $(SAM_STAMP)

## make build: sam build (layers via layers/*/Makefile, pip --platform; no Docker) -> .aws-sam/build
build: $(BUILD_STAMP)

$(BUILD_STAMP): $(SAM_STAMP) $(BUILD_INPUTS)
	rm -f .aws-sam/build/.jobgraph-built-*
	@# PYTHON: the layer Makefiles compile bytecode with it; on PATH first: SAM checks that the
	@# functions' runtime (python3.13) has an interpreter.
	PATH="$(dir $(PYTHON)):$$PATH" PYTHON=$(PYTHON) LAYER_ARCH=$(LAYER_ARCH) $(SAM) build --parameter-overrides Architecture=$(LAYER_ARCH)
	touch $@

## make validate: cfn-lint + sam validate --lint (no credentials, no network)
validate: $(STAMP) $(SAM_STAMP)
	$(BIN)/cfn-lint template.yaml $(S2_TEMPLATE)
	$(SAM) validate --lint
	$(SAM) validate --lint -t $(S2_TEMPLATE) --region $(S2_REGION)

$(CHECKOV_STAMP):
	$(PYTHON_CHECK)
	rm -rf $(CHECKOV_VENV)
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet --upgrade pip
	$(CHECKOV_VENV)/bin/pip install --quiet checkov==$(CHECKOV_VERSION)
	touch $@

## make scan: cfn-lint with the serverless rules, then checkov (no credentials; PyPI on first use)
# Fails on any cfn-lint error or warning and on any failed checkov check. Accepted findings are
# skipped per resource in template.yaml (Metadata: checkov / cfn-lint), each with its reason.
# --skip-download: checkov fetches nothing from Prisma Cloud (only guideline links are lost).
# Both scanners always run, so one pass shows every finding; the target fails if either one did.
CFN_LINT_SCAN = $(BIN)/cfn-lint --regions us-east-1 eu-west-1 --append-rules cfn_lint_serverless.rules -- $(SCAN_TEMPLATE)
CHECKOV_SCAN = $(CHECKOV_VENV)/bin/checkov --quiet --compact --skip-download --framework cloudformation \
	--file $(SCAN_TEMPLATE)
scan: $(STAMP) $(CHECKOV_STAMP)
	@status=0; \
	echo '$(CFN_LINT_SCAN)'; $(CFN_LINT_SCAN) || status=1; \
	echo '$(CHECKOV_SCAN)'; $(CHECKOV_SCAN) || status=1; \
	exit $$status

check-env: $(if $(filter local,$(ENV)),$(STAMP))
	@case "$(ENV)" in dev|prod|local) ;; *) echo "ENV must be dev, prod or local (samconfig.toml), not '$(ENV)'" >&2; exit 2;; esac
ifeq ($(ENV),local)
	@test -n "$$AWS_ENDPOINT_URL" && $(BIN)/jobgraph cloud status --quiet || { \
		echo "ENV=local: the local cloud in $(CLOUD_DIR) is not running; start it with: make cloud-up" >&2; exit 2; }
endif

# What every scenario's stack is deployed with (deploy, deploy-sfn, deploy-ecs): the parameters all three templates
# take, and the tags costs are allocated by (`make bootstrap`). buildspec.yml passes the same to `sam deploy`.
STACK_PARAMETERS = 'Stage=$(STAGE)' 'TestRunId=$(TEST_RUN_ID)' 'ProjectPrefix=$(PROJECT_PREFIX)' 'Architecture=$(LAYER_ARCH)'
STACK_TAGS = 'PerfTestRun=$(TEST_RUN_ID)' 'Purpose=PerformanceTesting' 'Environment=$(ENV)' 'Project=$(PROJECT_PREFIX)'

## make deploy ENV=dev TEST_RUN_ID=baseline-256mb [PARAMS="ProcessorMemorySize=1024"]  (needs AWS credentials)
# --parameter-overrides/--tags replace samconfig.toml's lists, so all of them are passed (docs/deploy.md).
deploy: check-env $(BUILD_STAMP)
	$(SAM) deploy --config-env $(ENV) \
		--parameter-overrides $(STACK_PARAMETERS) $(PARAMS) \
		--tags $(STACK_TAGS)

## make bootstrap: activate PerfTestRun (+ Purpose, Environment, Project) as cost allocation tags (AWS credentials
## of the paying account; idempotent). Costs count from activation on; `jobgraph cost RUN_DIR --billed` reads them.
bootstrap: $(STAMP)
	$(BIN)/jobgraph cost --activate-tags

# SAM 1.170's `sam delete` reads [<env>.deploy.parameters] only (not [<env>.delete.parameters]): prod asks first
NO_PROMPTS = $(if $(filter prod,$(ENV)),,--no-prompts)

## make destroy ENV=dev: empty the results bucket, then delete the stack (needs AWS credentials)
destroy: check-env $(STAMP) $(SAM_STAMP)
	$(PY) scripts/empty_results_bucket.py --config-env $(ENV)
	$(SAM) delete --config-env $(ENV) $(NO_PROMPTS)

# ------------------------------------------------------------------ scenario 3: Step Functions
SFN_TEMPLATE := templates/scenario-3.yaml
SFN_BUILD_DIR := .aws-sam/build-scenario-3
SFN_STACK = scenario-3-$(ENV)
SFN_BUILD_STAMP := $(SFN_BUILD_DIR)/.jobgraph-built-$(LAYER_ARCH)
SFN_BUILD_INPUTS := $(SFN_TEMPLATE) $(wildcard statemachine/*.json) $(filter-out template.yaml,$(BUILD_INPUTS))

## make build-sfn: sam build of templates/scenario-3.yaml -> .aws-sam/build-scenario-3 (no Docker)
build-sfn: $(SFN_BUILD_STAMP)

$(SFN_BUILD_STAMP): $(SAM_STAMP) $(SFN_BUILD_INPUTS)
	rm -f $(SFN_BUILD_DIR)/.jobgraph-built-*
	PATH="$(dir $(PYTHON)):$$PATH" PYTHON=$(PYTHON) LAYER_ARCH=$(LAYER_ARCH) $(SAM) build -t $(SFN_TEMPLATE) \
		--build-dir $(SFN_BUILD_DIR) --parameter-overrides Architecture=$(LAYER_ARCH)
	touch $@

## make validate-sfn: cfn-lint + sam validate --lint of the scenario 3 template
validate-sfn: $(STAMP) $(SAM_STAMP)
	$(BIN)/cfn-lint $(SFN_TEMPLATE)
	$(SAM) validate --lint -t $(SFN_TEMPLATE)

## make deploy-sfn ENV=dev TEST_RUN_ID=sfn-256mb [PARAMS="StepTaskMemorySize=512"]: stack scenario-3-$(ENV) (needs AWS credentials)
# --config-file: with -t, SAM looks for samconfig.toml beside the template (in the build folder) and finds none.
deploy-sfn: check-env $(SFN_BUILD_STAMP)
	$(SAM) deploy -t $(SFN_BUILD_DIR)/template.yaml --config-file $(CURDIR)/samconfig.toml --config-env $(ENV) \
		--stack-name $(SFN_STACK) --s3-prefix $(SFN_STACK) \
		--parameter-overrides $(STACK_PARAMETERS) $(PARAMS) \
		--tags $(STACK_TAGS)

## make destroy-sfn ENV=dev: empty scenario-3-$(ENV)'s results bucket, then delete the stack (needs AWS credentials)
destroy-sfn: check-env $(STAMP) $(SAM_STAMP)
	$(PY) scripts/empty_results_bucket.py --config-env $(ENV) --stack-name $(SFN_STACK)
	$(SAM) delete --config-env $(ENV) --stack-name $(SFN_STACK) $(NO_PROMPTS)

clean:
	rm -rf $(VENV) .aws-sam results .pytest_cache .mypy_cache .coverage $(DOCS_SITE)

# ---------------------------------------------------------------- scenario 2: SQS FIFO + ECS Fargate workers
# Stack scenario-2-<env> from templates/scenario-2.yaml (region of samconfig.toml's environment). Needs AWS
# credentials and Docker; `make run SCENARIO=2` runs the same stack locally without either.
S2_TEMPLATE := templates/scenario-2.yaml
S2_BUILD_DIR := .aws-sam/build-scenario-2
S2_STACK = scenario-2-$(ENV)
S2_REGION ?= eu-west-1
DESIRED_COUNT ?= 2
# A new tag per commit, so each deploy registers a task definition revision pointing at its own image.
IMAGE_TAG ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo latest)
WORKER_BASE_IMAGE ?= python:3.13-slim
WORKER_IMAGE ?= jobgraph-worker:$(IMAGE_TAG)
WORKER_CONTEXT := .aws-sam/worker-image
WORKER_WHEEL_ARCH := $(if $(filter arm64 aarch64,$(LAYER_ARCH)),aarch64,x86_64)
ECS_SERVICE = $(PY) scripts/ecs_service.py --stack $(S2_STACK) --region $(S2_REGION)

.PHONY: build-ecs worker-context worker-image deploy-ecs scale-up scale-down ecs-status run-ecs destroy-ecs

## make build-ecs: sam build of templates/scenario-2.yaml (Scheduler, StartRun, core layer) -> .aws-sam/build-scenario-2
build-ecs: $(SAM_STAMP)
	PATH="$(dir $(PYTHON)):$$PATH" PYTHON=$(PYTHON) LAYER_ARCH=$(LAYER_ARCH) $(SAM) build -t $(S2_TEMPLATE) \
		--build-dir $(S2_BUILD_DIR) --parameter-overrides Architecture=$(LAYER_ARCH)

## make worker-context: the worker image's build context (jobgraph + pinned manylinux wheels, no pip in Docker)
worker-context: $(STAMP)
	rm -rf $(WORKER_CONTEXT)
	mkdir -p $(WORKER_CONTEXT)/site-packages
	$(PY) -m pip install --quiet --disable-pip-version-check --no-compile --only-binary=:all: \
		--implementation cp --python-version $(LAMBDA_PYTHON_VERSION) \
		$(foreach tag,manylinux2014 manylinux_2_17 manylinux_2_28 manylinux_2_34,--platform $(tag)_$(WORKER_WHEEL_ARCH)) \
		--target $(WORKER_CONTEXT)/site-packages -r docker/worker-requirements.txt
	cp -r src/jobgraph $(WORKER_CONTEXT)/site-packages/jobgraph
	@# what the core layer leaves out too: the CLI, the local cloud, run drivers, template tooling
	rm -rf $(addprefix $(WORKER_CONTEXT)/site-packages/jobgraph/,localcloud cli runs sam)
	find $(WORKER_CONTEXT) -name __pycache__ -type d -prune -exec rm -rf {} +
	cp docker/worker.Dockerfile $(WORKER_CONTEXT)/Dockerfile

## make worker-image [WORKER_BASE_IMAGE=...]: docker build of the worker (docker/worker.Dockerfile)
worker-image: worker-context
	docker build --build-arg BASE_IMAGE=$(WORKER_BASE_IMAGE) -t $(WORKER_IMAGE) $(WORKER_CONTEXT)

## make deploy-ecs ENV=dev TEST_RUN_ID=x [PARAMS="WorkerCpu=512 WorkerMemory=1024"]: stack, then image to ECR
# The service starts at DesiredCount 0 (a deploy also sets it back to 0): `make scale-up` starts workers.
# ENV=local builds and pushes no image: the local cloud runs the task definition's command from source.
deploy-ecs: check-env build-ecs $(if $(filter local,$(ENV)),,worker-image)
	$(SAM) deploy --template-file $(S2_BUILD_DIR)/template.yaml --stack-name $(S2_STACK) --region $(S2_REGION) \
		--capabilities CAPABILITY_IAM CAPABILITY_AUTO_EXPAND --resolve-s3 --s3-prefix $(S2_STACK) --no-fail-on-empty-changeset \
		$(if $(filter prod,$(ENV)),--confirm-changeset,--no-confirm-changeset) \
		--parameter-overrides $(STACK_PARAMETERS) 'ImageTag=$(IMAGE_TAG)' $(PARAMS) \
		--tags $(STACK_TAGS)
ifneq ($(ENV),local)
	$(ECS_SERVICE) push-image $(WORKER_IMAGE) $(IMAGE_TAG)
endif

## make scale-up DESIRED_COUNT=2 ENV=dev: start that many worker tasks (and wait until they run)
scale-up: check-env $(STAMP)
	$(ECS_SERVICE) scale $(DESIRED_COUNT) --wait

## make scale-down ENV=dev: stop every worker task (SIGTERM: each finishes its batch)
scale-down: check-env $(STAMP)
	$(ECS_SERVICE) scale 0 --wait

## make ecs-status ENV=dev: desired/running tasks, task definition, recent service events
ecs-status: check-env $(STAMP)
	$(ECS_SERVICE) status

## make run-ecs ENV=dev TEST_RUN_ID=x [MESSAGES=N]: the graph (or N synthetic jobs) through the deployed scenario-2
## stack (workers must be running)
run-ecs: check-env $(STAMP)
	$(ECS_SERVICE) status --require-running
ifdef MESSAGES
	$(BIN)/jobgraph load $(LOAD_OPTIONS) --scenario 2 --stack $(S2_STACK) --region $(S2_REGION) \
		--test-run-id $(TEST_RUN_ID) $(RUN_ARGS)
else
	$(BIN)/jobgraph run --scenario 2 --stack $(S2_STACK) --region $(S2_REGION) --test-run-id $(TEST_RUN_ID) \
		$(RUN_OPTIONS) $(RUN_ARGS)
endif

## make destroy-ecs ENV=dev: scale to 0, empty the results bucket, delete the stack (ECR images go with it)
destroy-ecs: check-env $(STAMP) $(SAM_STAMP)
	$(ECS_SERVICE) scale 0 --wait
	$(PY) scripts/empty_results_bucket.py --stack-name $(S2_STACK) --region $(S2_REGION)
	$(SAM) delete --stack-name $(S2_STACK) --region $(S2_REGION) --no-prompts

# ---------------------------------------------------------------- sam local invoke (Docker, works offline)
# LAMBDA_IMAGE: auto = the official public.ecr.aws/lambda/python:3.13 image when it is on this machine or
# its registry resolves, else a stand-in built here from Debian (no registry needed) | official | local.
LAMBDA_IMAGE ?= auto
EVENT ?=
FUNCTION ?=
# e.g. INVOKE_ARGS="--scenario 3": start-run.json for scenario 3's PrepareRun, or --all of one app only
INVOKE_ARGS ?=
LOCAL_INVOKE = $(PY) scripts/local_invoke.py --image $(LAMBDA_IMAGE) $(INVOKE_ARGS)

.PHONY: docker-up lambda-image local-invoke local-invoke-all test-docker

## make docker-up: a Docker daemon that answers (installs Debian's docker.io and starts dockerd if needed; root)
docker-up: $(STAMP)
	$(PY) scripts/local_invoke.py docker-up

## make lambda-image: the stand-in python3.13 Lambda base image (debootstrap; built once, cached)
lambda-image: $(STAMP)
	$(PY) scripts/local_invoke.py image

## make local-invoke EVENT=events/processor-first.json [FUNCTION=ProcessorFunction]: one event, effects checked
local-invoke: $(STAMP) $(BUILD_STAMP) $(SFN_BUILD_STAMP)
	@test -n "$(EVENT)" || { echo "usage: make local-invoke EVENT=events/<function>-<case>.json [FUNCTION=<LogicalId>]" >&2; exit 2; }
	$(LOCAL_INVOKE) --event $(EVENT) $(if $(FUNCTION),--function $(FUNCTION))

## make local-invoke-all: every events/*.json (scenarios 1 and 3) through sam local invoke, effects checked, one table
local-invoke-all: $(STAMP) $(BUILD_STAMP) $(SFN_BUILD_STAMP)
	$(LOCAL_INVOKE) --all

## make test-docker: only the tests marked docker (what local-invoke-all does, as pytest)
test-docker: $(STAMP) $(BUILD_STAMP) $(SFN_BUILD_STAMP)
	JOBGRAPH_DOCKER_TESTS=1 $(BIN)/pytest -m docker $(PYTEST_ARGS)

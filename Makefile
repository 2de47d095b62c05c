# fljob: targets a Kubernetes engineer expects. Tools are pinned as Go tool
# dependencies (controller-gen in go.mod, golangci-lint in hack/tools/go.mod).
export GOTOOLCHAIN := local
SHELL := /usr/bin/env bash -o pipefail
GO ?= go
BIN := $(CURDIR)/bin
KUBEBUILDER_ASSETS ?= $(BIN)/k8s
export KUBEBUILDER_ASSETS

IMG ?= fljob-operator:dev

.PHONY: docker-build all build generate manifests fmt vet lint test test-unit testbin images verify demo clean

all: build

build: ## Build the fljob binary into bin/.
	$(GO) build -o $(BIN)/fljob ./cmd/fljob

generate: ## Generate deepcopy code for the API types.
	$(GO) tool controller-gen object paths=./api/...

manifests: ## Generate the CRD and RBAC manifests from markers.
	$(GO) tool controller-gen crd paths=./api/... output:crd:dir=config/crd/bases
	$(GO) tool controller-gen rbac:roleName=fljob-manager paths="./controllers/...;./backends/k8s/...;./cmd/..." output:rbac:dir=config/rbac

fmt:
	$(GO) fmt ./...

vet:
	$(GO) vet ./...

lint: ## Run golangci-lint with the pinned version and .golangci.yml.
	$(GO) -C hack/tools build -o $(BIN)/golangci-lint github.com/golangci/golangci-lint/v2/cmd/golangci-lint
	$(BIN)/golangci-lint run ./...

testbin: ## Build etcd, kube-apiserver, kubectl and kwok into bin/k8s (cached).
	hack/install-testbin.sh

images: ## Build the probe and demo images into the local Docker Engine (cached).
	hack/build-images.sh

test-unit: ## Unit tests only: no API server, no Docker.
	$(GO) test -short ./...

test: testbin images ## The whole suite: unit, envtest, real Docker Engine, conformance.
	$(GO) test -count=1 -timeout 40m ./...

verify: generate manifests fmt ## Regenerate, then fail on any difference.
	@git diff --exit-code -- api config || { echo "generated files are stale: run make generate manifests"; exit 1; }
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }

demo: build images ## Run the demo FL job on the Docker backend (no Kubernetes needed).
	hack/demo.sh

docker-build: ## Build the operator image from a static binary, without a registry.
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/image/fljob ./cmd/fljob
	docker build -t $(IMG) -f Dockerfile $(BIN)/image

clean:
	rm -rf $(BIN)

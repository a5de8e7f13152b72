# guichet: make demo, make test. Everything else the tests need (Dendrite,
# matrix-js-sdk) is built or installed here, into git-ignored folders.

GO          ?= go
TAGS        := goolm
DENDRITE    := v0.13.8
DENDRITE_BIN := $(CURDIR)/.cache/dendrite/$(DENDRITE)
JSAGENT     := e2e/jsagent
GOFLAGS_ALL := -tags $(TAGS)
export CGO_ENABLED := 1

.PHONY: all build run demo test test-e2e unit vet bench dendrite jsdeps clean

all: build

build:
	$(GO) build $(GOFLAGS_ALL) -ldflags "-X main.version=$$(git describe --always --dirty 2>/dev/null)" -o bin/guichet ./cmd/guichet

# Runs guichet with ./config.yaml (copy config.example.yaml and fill it in).
run: build
	./bin/guichet -config config.yaml

demo: build dendrite
	$(GO) build $(GOFLAGS_ALL) -o bin/demo ./cmd/demo
	./bin/demo -guichet bin/guichet

# Everything on SQLite, then the packages that own SQL and the end-to-end
# skeleton, restart and crash tests again on a PostgreSQL server the tests
# start themselves (GUICHET_TEST_DATABASE=postgres make test-e2e runs the
# whole end-to-end suite on it).
PG_PACKAGES := ./store ./approvals ./ratelimit ./conversation
PG_E2E      := TestAnnounceIsAcknowledged|TestApproveAcceptAndAsk|TestRestartLosesAndRepeatsNothing|TestSendRepeatedAfterCrashIsDeliveredOnce|TestPlaceholderSentBeforeACrashIsFound|TestPartnerProfile|TestAnswerWithSources|TestMigrateDBKeepsDeviceSessionsAndState

test: vet dendrite jsdeps
	GUICHET_E2E=1 GUICHET_DENDRITE_BIN=$(DENDRITE_BIN) $(GO) test $(GOFLAGS_ALL) -race -count=1 ./...
	GUICHET_TEST_DATABASE=postgres $(GO) test $(GOFLAGS_ALL) -race -count=1 $(PG_PACKAGES)
	GUICHET_TEST_DATABASE=postgres GUICHET_E2E=1 GUICHET_DENDRITE_BIN=$(DENDRITE_BIN) $(GO) test $(GOFLAGS_ALL) -race -count=1 -run '^($(PG_E2E))$$' ./e2e

# The whole end-to-end suite, on the database GUICHET_TEST_DATABASE names.
test-e2e: dendrite jsdeps
	GUICHET_E2E=1 GUICHET_DENDRITE_BIN=$(DENDRITE_BIN) $(GO) test $(GOFLAGS_ALL) -race -count=1 ./e2e

# Unit tests only: every package except those that start a homeserver or
# Node.js (listed in NEEDS_HS; each skips itself without them anyway).
NEEDS_HS := guichet/e2e guichet/internal/dendrite guichet/internal/jsagent

unit:
	$(GO) test $(GOFLAGS_ALL) -race -count=1 -short \
		$$($(GO) list $(GOFLAGS_ALL) ./... | grep -vxF $(foreach p,$(NEEDS_HS),-e $(p)))

vet:
	$(GO) vet $(GOFLAGS_ALL) ./...

bench: dendrite jsdeps
	GUICHET_E2E=1 GUICHET_DENDRITE_BIN=$(DENDRITE_BIN) $(GO) test $(GOFLAGS_ALL) -run '^$$' -bench . -benchtime 1x -count=1 -timeout 30m ./...

# Dendrite v0.13.8 from source, built once (about 2.5 min cold).
dendrite: $(DENDRITE_BIN)/dendrite

$(DENDRITE_BIN)/dendrite:
	mkdir -p $(DENDRITE_BIN)
	GOBIN=$(DENDRITE_BIN) $(GO) install \
		github.com/matrix-org/dendrite/cmd/dendrite@$(DENDRITE) \
		github.com/matrix-org/dendrite/cmd/generate-config@$(DENDRITE) \
		github.com/matrix-org/dendrite/cmd/generate-keys@$(DENDRITE) \
		github.com/matrix-org/dendrite/cmd/create-account@$(DENDRITE)

# matrix-js-sdk 37.5.0 with Rust crypto, from the committed lockfile.
jsdeps: $(JSAGENT)/node_modules/.package-lock.json

$(JSAGENT)/node_modules/.package-lock.json: $(JSAGENT)/package-lock.json
	cd $(JSAGENT) && npm ci --no-audit --no-fund

clean:
	rm -rf bin

# A statically linked guichet (cgo SQLite included), for an image FROM scratch
# or any Linux host: bin/guichet-static. packaging/packaging_test.go builds it
# with this target and runs it in an empty root.
STATIC_OUT  ?= bin/guichet-static
STATIC_TAGS := $(TAGS),netgo,osusergo,sqlite_omit_load_extension
VERSION     ?= $(shell git describe --always --dirty 2>/dev/null)

.PHONY: static image

static:
	$(GO) build -tags $(STATIC_TAGS) -trimpath \
		-ldflags '-s -w -X main.version=$(VERSION) -linkmode external -extldflags "-static"' \
		-o $(STATIC_OUT) ./cmd/guichet

# The container image, from packaging/Containerfile, with podman or docker.
ENGINE ?= $(shell command -v podman 2>/dev/null || command -v docker 2>/dev/null)
IMAGE  ?= guichet:$(or $(VERSION),latest)

image:
	@if [ -z "$(ENGINE)" ]; then echo "make image: neither podman nor docker is installed" >&2; exit 1; fi
	$(ENGINE) build -f packaging/Containerfile --build-arg VERSION=$(VERSION) \
		$(if $(findstring podman,$(ENGINE)),--ignorefile packaging/Containerfile.dockerignore) \
		-t $(IMAGE) . || { echo "make image: $(ENGINE) could not build the image (see its error above)" >&2; exit 1; }

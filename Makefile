# cloud-provider-baremetal — one screen of targets. Run as root on Debian.
#
#   make demo    the MetalLB walkthrough end to end: apiserver, CCM, lab nodes, FRR router
#                (DEMO_FLAGS=-hold keeps it up until Ctrl-C)
#   make build   our binaries into bin/
#   make image   OCI images of both binaries, linux/amd64 + arm64, no Docker needed
#                (_output/images; publish with crane push, see deploy/README.md)
#   make tools   kube-apiserver, etcd, kubectl, kube-controller-manager, helm for tests (cached)
#   make demo-tools  only what the demo needs: etcd, kube-apiserver, kubectl
#   make test    vet + every test with -race (unit, integration against a real apiserver)
#   make unit    the tests that need no apiserver or lab (-short), with -race: a quick check
#   make lint    gofmt, go vet, staticcheck
#   make bench   benchmarks; figures printed and written to bench/results/
#   make soak    the long chaos run: 5,000 Services, 250 faults (bench/results/chaos-soak.txt)
#   make fuzz    a short run of every fuzz target
#   make clean   remove bin/ (the cached tools in _output/ stay)

GO          ?= go
BIN         := bin
TOOLS_DIR   := _output/tools/v1.37.2
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
FUZZTIME    ?= 20s
CMDS        := $(notdir $(wildcard cmd/*))
# The tools the demo runs (test/demo): no kube-controller-manager, no helm.
DEMO_TOOLS  := etcd kube-apiserver kubectl
PROGRESS    := ./test/tools/progress.sh

.PHONY: all build tools demo-tools test unit lint bench soak fuzz clean demo

all: build

build:
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w' -o $(BIN)/ $(addprefix ./cmd/,$(CMDS))

# build/image is its own module (go-containerregistry stays out of ours).
# It builds the commit HEAD names, not uncommitted changes, so the same
# commit gives the same digests; IMAGE_FLAGS=-worktree builds the tree.
.PHONY: image
image:
	$(GO) -C build/image run . -repo $(CURDIR) -out $(CURDIR)/_output/images $(IMAGE_FLAGS)

tools:
	./test/tools/build.sh

demo-tools:
	./test/tools/build.sh $(DEMO_TOOLS)

# The demo installs FRR and curl with apt-get itself when they are missing
# (step 1), and tears everything down on success, failure and Ctrl-C.
# It builds bin/ as `make build` does, with progress lines on a cold cache,
# and the demo with the same flags, so the two share every compiled package.
demo: demo-tools
	@mkdir -p $(BIN) _output/bin
	@PROGRESS_PREFIX=[demo] $(PROGRESS) "building bin/ and the demo" 0 sh -c '\
	  CGO_ENABLED=0 $(GO) build -v -trimpath -o $(BIN)/ $(addprefix ./cmd/,$(CMDS)) && \
	  CGO_ENABLED=0 $(GO) build -v -trimpath -o _output/bin/baremetal-demo ./test/demo/cmd/demo'
	./_output/bin/baremetal-demo $(DEMO_FLAGS)

test: build tools
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 45m ./...

unit:
	$(GO) test -race -count=1 -short ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

bench: build tools
	@mkdir -p bench/results
	./bench/run.sh

# The chaos suite's long profile (test/chaos). CHAOS_SEED=<n> replays a run.
soak: build tools
	@mkdir -p bench/results
	CHAOS_PROFILE=soak CHAOS_RESULTS=$(CURDIR)/bench/results/chaos-soak.txt \
	  $(GO) test -count=1 -timeout 5h -run '^TestChaos$$' -v ./test/chaos/

fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "fuzz $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; done

clean:
	rm -rf $(BIN)

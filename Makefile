# hull: the README's two commands are `make demo` and `make check`.
SHELL := /bin/bash
export HULL_CACHE ?= /var/cache/hull
export PATH := $(PATH):/usr/local/go/bin:/usr/sbin:/sbin
# Static binaries: hull runs inside the nested lab's L1, which has no C library, and a
# static hull starts faster (no dynamic loader). Nothing in hull needs cgo.
export CGO_ENABLED := 0
GO ?= go
BIN := bin

.PHONY: all setup build demo check test kernel initramfs testguest lab-smoke lab-vm bench bench-vmm fuzz vet clean

all: build

setup:
	scripts/setup

build:
	$(GO) build -trimpath -o $(BIN)/hull ./cmd/hull
	$(GO) build -trimpath -o $(BIN)/hull-vmm ./cmd/hull-vmm
	$(GO) build -trimpath -o $(BIN)/hull-chart ./cmd/hull-chart

kernel:
	scripts/kernel

initramfs:
	scripts/initramfs

testguest:
	scripts/testguest

demo: setup build
	scripts/demo

check: setup build vet
	CI=$${CI:-true} $(GO) test -count=1 -timeout 60m ./...

vet:
	$(GO) vet ./...

lab-vm: setup build
	CI=$${CI:-true} $(GO) test -count=1 -v -timeout 30m -run 'TestLabVM' ./container/microvm/

lab-smoke: setup build
	CI=$${CI:-true} $(GO) test -count=1 -v -run 'TestLabSmoke' ./lab/

bench: setup build
	scripts/docker-up
	$(BIN)/hull bench --runs 5 --out docs/bench

bench-vmm: setup build
	$(GO) test -run '^$$' -bench VMM -benchtime 30x ./bench/

fuzz:
	scripts/fuzz

clean:
	rm -rf $(BIN)

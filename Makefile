# Thin wrapper over CMake + Ninja. See README.md.
BUILD      ?= build
BUILD_ASAN ?= build-asan
CMAKE_ARGS ?=
PREFIX     ?= /usr/local

.PHONY: all strata asan test unit demo demo-stop demo-clean bench fuzz clean deps format install uninstall

all strata: $(BUILD)/build.ninja
	@ninja -C $(BUILD)

$(BUILD)/build.ninja:
	@cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_ARGS) >/dev/null

$(BUILD_ASAN)/build.ninja:
	@cmake -S . -B $(BUILD_ASAN) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DSTRATA_SANITIZE=ON $(CMAKE_ARGS) >/dev/null

deps:
	@scripts/deps

# make test: deps, both builds, unit tests under ASan+UBSan, integration tests on the optimised build.
test: deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory $(BUILD_ASAN)/build.ninja
	@ninja -C $(BUILD_ASAN)
	@STRATA_BUILD=$(BUILD) STRATA_BUILD_ASAN=$(BUILD_ASAN) tests/run

# make asan: the same suite with every binary (integration tests too) from the sanitizer build.
asan: deps $(BUILD_ASAN)/build.ninja
	@ninja -C $(BUILD_ASAN)
	@STRATA_BUILD=$(BUILD_ASAN) STRATA_BUILD_ASAN=$(BUILD_ASAN) tests/run

# make unit: unit tests only (fast inner loop); T=pattern filters test names.
unit: $(BUILD_ASAN)/build.ninja
	@ninja -C $(BUILD_ASAN)
	@STRATA_BUILD=$(BUILD) STRATA_BUILD_ASAN=$(BUILD_ASAN) tests/run --unit-only

# make demo: the HA demo stack on 127.0.0.1 under ./demo-data (ports: DEMO_*_PORT, see scripts/demo).
demo: deps all
	@STRATA_BIN=$(CURDIR)/$(BUILD)/strata scripts/demo start

# make demo-stop: stop exactly what the demo started (PID files); data stays. demo-clean: also delete it.
demo-stop:
	@scripts/demo stop

demo-clean:
	@scripts/demo clean

bench: deps all
	@bench/run

fuzz:
	@cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=Debug -DSTRATA_FUZZ=ON -DCMAKE_C_COMPILER=clang >/dev/null
	@ninja -C build-fuzz
	@scripts/fuzz build-fuzz

# make install [PREFIX=/usr/local] [DESTDIR=]: binary, man pages, bash completion, systemd units, examples.
install: all
	@DESTDIR=$(DESTDIR) cmake --install $(BUILD) --prefix $(PREFIX)

# make uninstall [DESTDIR=]: removes what the last `make install` listed in $(BUILD)/install_manifest.txt.
uninstall:
	@[ -f $(BUILD)/install_manifest.txt ] && sed 's|^|$(DESTDIR)|' $(BUILD)/install_manifest.txt | xargs rm -fv

format:
	@clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(BUILD_ASAN) build-fuzz

# A thin layer over CMake (as Neovim does): `make run`, `make test`,
# `make deps`, `make fuzz`. Build trees: build/ (normal), build-asan/
# (ASan + UBSan), build-tsan/ (ThreadSanitizer, the tests that cross
# threads), build-fuzz/ (clang + libFuzzer).

BUILD      ?= build
ASAN_BUILD ?= build-asan
TSAN_BUILD ?= build-tsan
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 60
JOBS       ?= $(shell nproc)
LISTEN     ?= 0.0.0.0:8080
CMAKE_ARGS ?=
ifdef CI
CMAKE_ARGS += -DSPOKE_WERROR=ON
endif

DEPS = cmake gcc make pkg-config libuv1-dev node-llhttp libcmocka-dev python3 \
       clang libclang-rt-dev postgresql libpq-dev libcurl4-openssl-dev \
       nginx systemd logrotate procps

.PHONY: all deps build build-asan build-tsan build-fuzz run test test-normal \
        test-asan test-tsan fuzz clean

all: build

deps:
	@missing=""; for p in $(DEPS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" != 0 ]; then \
	  echo "missing Debian packages:$$missing"; \
	  echo "run as root: apt-get update && apt-get install -y$$missing"; exit 1; \
	fi; \
	echo "installing:$$missing"; \
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq$$missing

$(BUILD)/CMakeCache.txt: | deps
	cmake -S . -B $(BUILD) $(CMAKE_ARGS)

$(ASAN_BUILD)/CMakeCache.txt: | deps
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DSPOKE_SANITIZE=ON $(CMAKE_ARGS)

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

build-asan: deps $(ASAN_BUILD)/CMakeCache.txt
	cmake --build $(ASAN_BUILD) -j $(JOBS)

$(TSAN_BUILD)/CMakeCache.txt: | deps
	cmake -S . -B $(TSAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DSPOKE_TSAN=ON $(CMAKE_ARGS)

build-tsan: deps $(TSAN_BUILD)/CMakeCache.txt
	cmake --build $(TSAN_BUILD) -j $(JOBS)

$(FUZZ_BUILD)/CMakeCache.txt: | deps
	CC=clang cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DSPOKE_FUZZ=ON -DSPOKE_TESTS=OFF $(CMAKE_ARGS)

build-fuzz: deps $(FUZZ_BUILD)/CMakeCache.txt
	cmake --build $(FUZZ_BUILD) -j $(JOBS)

run: build
	@echo "spoke: serving build/plugins on http://$(LISTEN) (try curl localhost:$(lastword $(subst :, ,$(LISTEN)))/hello, or /demo and /static/ in a browser; Ctrl-C stops)"
	$(BUILD)/spoke --listen $(LISTEN) --plugins $(BUILD)/plugins --config examples/spoke.conf

test-normal: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

test-asan: build-asan
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --output-on-failure -j $(JOBS)

# The tests whose code crosses threads: dispatch to the pool, completions
# from foreign threads, reload while requests run, drain. Not the admin
# and static tests: libuv closes sockets with a raw close syscall that
# TSan does not see, so a file opened on another thread that reuses the
# fd number is reported as a race (a false positive).
TSAN_TESTS = unit_|integration_(concurrency|misbehave|reload|shutdown|ownwork|backpressure|loophooks|sendfile)

test-tsan: build-tsan
	cd $(TSAN_BUILD) && TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:suppressions=$(CURDIR)/tests/tsan.supp \
	  ctest --output-on-failure -j $(JOBS) -R '$(TSAN_TESTS)'

# make fuzz [FUZZ_SECONDS=N]: runs the connection fuzzer from its seed
# corpus; crashes land in build-fuzz/crashes/.
fuzz: build-fuzz
	$(FUZZ_BUILD)/tests/fuzz/run_fuzz.sh $(FUZZ_SECONDS)

test: test-normal test-asan test-tsan

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD) $(FUZZ_BUILD)

# make bench: the benchmark suite (tests/bench/bench.py), spoke against
# nginx, Flask (gunicorn) and Quart (hypercorn) on loopback, about 10
# minutes, then waiting on PostgreSQL (db_bench.py: async, sync, Quart +
# asyncpg, about 2 minutes); the tables land in build/bench/ (results.md,
# chart.png, db.md). Its
# packages are installed by the deps recipe above, given BENCH_DEPS.
BENCH_DEPS = wrk nginx libnginx-mod-http-echo lighttpd python3-flask gunicorn \
             python3-quart python3-hypercorn python3-asyncpg gnuplot-nox

.PHONY: bench
bench: build
	@$(MAKE) --no-print-directory deps DEPS="$(BENCH_DEPS)"
	python3 tests/bench/bench.py --build $(BUILD)
	python3 tests/bench/db_bench.py --build $(BUILD)

# slimnet: one non-recursive Makefile.
#   make                 library (libslimnet.so/.a) and tools
#   make test            Check suites (CPU; GPU suites skip without a device)
#   make bench           benchmarks (CPU)
#   make install PREFIX=/usr/local DESTDIR=
#   make deps            install missing Debian packages (apt-get as root, else prints the command)
# Knobs: CUDA=auto|0|1  NCCL=auto|0|1  DEBUG=0|1  SANITIZE=0|1  OPENMP=1|0  NVCC_ARCH=sm_90  WERROR=0|1

CUDA      ?= auto
# NCCL (the process group's GPU all-reduce) in a CUDA build: auto = when nccl.h is found.
NCCL      ?= auto
DEBUG     ?= 0
SANITIZE  ?= 0
OPENMP    ?= 1
WERROR    ?= 0
PREFIX    ?= /usr/local
DESTDIR   ?=
NVCC_ARCH ?= sm_90
CUDA_HOME ?= /usr/local/cuda
# A sanitizer build lives apart, so that its objects never mix with the plain build's.
BUILD     ?= $(if $(filter 1,$(SANITIZE)),build/san,build)

VERSION   := 0.1.0
SOMAJOR   := 0

ifeq ($(CUDA),auto)
  NVCC_FOUND := $(shell command -v nvcc 2>/dev/null || ls $(CUDA_HOME)/bin/nvcc 2>/dev/null)
  CUDNN_FOUND := $(wildcard $(CUDA_HOME)/include/cudnn.h /usr/include/cudnn.h \
                  /usr/include/x86_64-linux-gnu/cudnn.h)
  ifneq ($(and $(NVCC_FOUND),$(CUDNN_FOUND)),)
    override CUDA := 1
  else
    override CUDA := 0
  endif
endif
ifeq ($(filter $(CUDA),0 1),)
  $(error CUDA must be auto, 0 or 1, not '$(CUDA)')
endif
ifeq ($(filter $(DEBUG),0 1),)
  $(error DEBUG must be 0 or 1)
endif

CC      ?= cc
CXX     ?= c++
NVCC    ?= $(if $(shell command -v nvcc 2>/dev/null),nvcc,$(CUDA_HOME)/bin/nvcc)
CFLAGS  := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wpedantic -fPIC -fvisibility=hidden -MMD -MP
LDLIBS  := -lopenblas -lprotobuf-c -lsnappy -lturbojpeg -ljpeg -lpng -lcjson -lz -lgloo \
           -lstdc++ -lm -lpthread
ifeq ($(DEBUG),1)
  CFLAGS += -O0 -g -DSN_DEBUG
else
  CFLAGS += -O3 -march=x86-64-v2 -g
endif
ifeq ($(WERROR),1)
  CFLAGS += -Werror
endif
# Under SANITIZE=1 undefined behaviour stops the program, as a memory error does.
ifeq ($(SANITIZE),1)
  CFLAGS  += -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
  LDFLAGS += -fsanitize=address,undefined
endif
ifeq ($(OPENMP),1)
  CFLAGS  += -fopenmp
  LDFLAGS += -fopenmp
else
  CFLAGS  += -Wno-unknown-pragmas
endif
OPENBLAS_CFLAGS := $(shell pkg-config --cflags openblas 2>/dev/null)
CFLAGS += $(OPENBLAS_CFLAGS)
# lib/dist/gloo.cc, the C++ shim over Gloo: the C flags but the language's (deferred, so that
# what is added to CFLAGS below reaches it too).
CXXFLAGS = $(filter-out -std=c11 -Wpedantic -fopenmp,$(CFLAGS)) -std=c++17

# First pass: make sure the Debian packages are there, then run make again, so that every
# $(shell pkg-config ...) below sees them on a fresh machine.
ifeq ($(SN_DEPS_CHECKED),)
GOALS := $(filter-out deps check-deps clean uninstall,$(or $(MAKECMDGOALS),all))
.PHONY: $(GOALS) sn-recurse
$(GOALS): sn-recurse
	@:
sn-recurse:
	@$(MAKE) --no-print-directory check-deps
	@$(MAKE) --no-print-directory SN_DEPS_CHECKED=1 $(GOALS)
else
# lib/io/*.proto are compiled by protoc-c into $(BUILD)/gen (our own minimal .proto files
# with TensorFlow's field numbers).
PROTO_SRC  := $(wildcard lib/io/*.proto)
PROTO_C    := $(PROTO_SRC:%.proto=$(BUILD)/gen/%.pb-c.c)
PROTO_H    := $(PROTO_C:.c=.h)
CFLAGS     += -I$(BUILD)/gen
# lib/dist/nccl.c (the NCCL engine) needs the CUDA toolkit: CUDA builds only.
LIB_SRC    := $(wildcard lib/*.c) $(wildcard lib/io/*.c) \
              $(filter-out lib/dist/nccl.c,$(wildcard lib/dist/*.c)) \
              $(wildcard kernels/cpu/*.c) $(wildcard nets/*.c)
CXX_SRC    := $(wildcard lib/dist/*.cc)
CUDA_SRC   :=
ifeq ($(CUDA),1)
  CFLAGS   += -DSN_WITH_CUDA -I$(CUDA_HOME)/include
  CUDA_SRC := $(wildcard kernels/cuda/*.cu)
  ifeq ($(NCCL),auto)
    override NCCL := $(if $(wildcard $(CUDA_HOME)/include/nccl.h /usr/include/nccl.h \
                       $(addsuffix /nccl.h,$(subst :, ,$(CPATH)))),1,0)
  endif
  ifeq ($(NCCL),1)
    CFLAGS   += -DSN_WITH_NCCL
    LIB_SRC  += lib/dist/nccl.c
    LDLIBS   += -lnccl
  endif
  NVFLAGS  := -std=c++17 -O3 -Xcompiler -fPIC,-fvisibility=hidden -I$(CUDA_HOME)/include \
              -DSN_WITH_CUDA -arch=$(NVCC_ARCH) -MMD -MP --expt-relaxed-constexpr
  LDLIBS   += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcudnn -lcublas -lcudart -lstdc++
endif

LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o) $(PROTO_C:%.c=%.o) $(CXX_SRC:%.cc=$(BUILD)/%.cc.o) \
            $(CUDA_SRC:%.cu=$(BUILD)/%.cu.o)
SO_NAME  := libslimnet.so.$(SOMAJOR)
SO_FILE  := $(BUILD)/lib/libslimnet.so.$(VERSION)
A_FILE   := $(BUILD)/lib/libslimnet.a
CMD_SRC  := $(wildcard cmd/*.c)
TOOLS    := $(CMD_SRC:cmd/%.c=$(BUILD)/bin/%)
# cmd/common: flag parsing and the pieces the tools share, linked into every tool.
CMD_COMMON := $(patsubst %.c,$(BUILD)/%.o,$(wildcard cmd/common/*.c))
# cmd/serve: slimnet-serve's own pieces (TF Serving's REST API), linked into it and into the
# tests; libmicrohttpd only into slimnet-serve.
SERVE_OBJ  := $(patsubst %.c,$(BUILD)/%.o,$(wildcard cmd/serve/*.c))
MHD_LIBS    = $(shell pkg-config --libs libmicrohttpd 2>/dev/null || echo -lmicrohttpd)
# The fuzz targets (tests/fuzz/) are built into the test binary too: the fuzz_corpus suite
# replays their corpus.  seeds.c is make fuzz's seed writer.
FUZZ_SRC := $(filter-out tests/fuzz/seeds.c,$(wildcard tests/fuzz/*.c))
TEST_SRC := $(wildcard tests/*.c) $(FUZZ_SRC)
TEST_OBJ := $(TEST_SRC:%.c=$(BUILD)/%.o)
TEST_BIN := $(BUILD)/tests/run_tests
BENCH_SRC := $(wildcard benchmarks/*.c)
BENCH_BIN := $(BENCH_SRC:benchmarks/%.c=$(BUILD)/bin/%)

.PHONY: all lib tools test bench demo parity fuzz fuzz-build install uninstall clean deps \
        check-deps
all: lib tools

lib: $(SO_FILE) $(A_FILE)
tools: $(TOOLS)

$(BUILD)/gen/%.pb-c.c $(BUILD)/gen/%.pb-c.h: %.proto
	@mkdir -p $(dir $@)
	protoc-c --c_out=$(BUILD)/gen $<

$(BUILD)/gen/%.pb-c.o: $(BUILD)/gen/%.pb-c.c
	$(CC) $(CFLAGS) -Wno-pedantic -c $< -o $@

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/%.cc.o: %.cc
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) -c $< -o $@

$(BUILD)/%.cu.o: %.cu
	@mkdir -p $(dir $@)
	$(NVCC) $(NVFLAGS) -c $< -o $@

$(SO_FILE): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) -shared -Wl,-soname,$(SO_NAME) $(LDFLAGS) -o $@ $^ $(LDLIBS)
	ln -sf libslimnet.so.$(VERSION) $(BUILD)/lib/$(SO_NAME)
	ln -sf $(SO_NAME) $(BUILD)/lib/libslimnet.so

$(A_FILE): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

# Tools, tests and benchmarks link the static library: no LD_LIBRARY_PATH needed.
$(BUILD)/bin/%: $(BUILD)/cmd/%.o $(CMD_COMMON) $(A_FILE)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $< $(CMD_COMMON) $(A_FILE) $(LDLIBS)

$(BUILD)/bin/slimnet-serve: $(BUILD)/cmd/slimnet-serve.o $(SERVE_OBJ) $(CMD_COMMON) $(A_FILE)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $< $(SERVE_OBJ) $(CMD_COMMON) $(A_FILE) $(LDLIBS) $(MHD_LIBS)

$(BUILD)/bin/%: $(BUILD)/benchmarks/%.o $(A_FILE)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $< $(A_FILE) $(LDLIBS)

CHECK_LIBS = $(shell pkg-config --libs check 2>/dev/null || echo -lcheck -lsubunit -lrt)
$(TEST_BIN): $(TEST_OBJ) $(CMD_COMMON) $(SERVE_OBJ) $(A_FILE)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $(TEST_OBJ) $(CMD_COMMON) $(SERVE_OBJ) $(A_FILE) $(LDLIBS) $(CHECK_LIBS)

# SN_SUITES="data ckpt": only those suites (tests/suites.def names).
test: $(TEST_BIN) tools
	SN_SUITES="$(SN_SUITES)" CK_DEFAULT_TIMEOUT=600 $(TEST_BIN)

# TensorFlow parity: a pinned tensorflow-cpu + tf-slim virtualenv (tests/reference/setup.sh)
# writes golden fixtures into tests/reference/out (both ignored); the ckpt_parity and
# data_parity suites read them, and TensorFlow (and TF-slim) read back what slimnet writes.
REF := tests/reference
$(REF)/.venv/.requirements: $(REF)/requirements.txt $(REF)/setup.sh
	$(REF)/setup.sh
	touch $@

$(REF)/out/ckpt/manifest.json: $(REF)/make_ckpt_fixtures.py $(REF)/.venv/.requirements
	$(REF)/.venv/bin/python $(REF)/make_ckpt_fixtures.py

$(REF)/out/tfrecord/manifest.json: $(REF)/make_tfrecord_fixtures.py $(REF)/.venv/.requirements
	$(REF)/.venv/bin/python $(REF)/make_tfrecord_fixtures.py

parity: $(TEST_BIN) tools $(REF)/out/ckpt/manifest.json $(REF)/out/tfrecord/manifest.json
	CK_RUN_SUITE=ckpt_parity $(TEST_BIN)
	$(REF)/.venv/bin/python $(REF)/check_slimnet_ckpt.py
	$(REF)/.venv/bin/python $(REF)/check_inspect.py $(BUILD)/bin/slimnet-ckpt
	CK_RUN_SUITE=data_parity $(TEST_BIN)
	$(REF)/.venv/bin/python $(REF)/check_tfrecord_interop.py
	CK_RUN_SUITE=events_parity $(TEST_BIN)
	$(REF)/.venv/bin/python $(REF)/check_events.py
	$(REF)/.venv/bin/python $(REF)/check_train_interop.py $(BUILD)/bin
	$(REF)/.venv/bin/python $(REF)/check_pretrained.py $(BUILD)/bin
	CK_RUN_SUITE=serve CK_RUN_CASE=serve_docs $(TEST_BIN)

# The README's main command, the vendor's FER workflow on real data: Debian's Fashion-MNIST
# written out as a FER-style tree of per-class 48x48 grayscale JPEGs, converted with
# slimnet-convert, trained with slimnet-train, evaluated with slimnet-eval (accuracy,
# per-class metrics, confusion matrix), and a few test images classified by slimnet-classify.
FASHION_MNIST ?= /usr/share/datasets/fashion-mnist
DEMO_DIR   ?= $(BUILD)/demo
DEMO_MODEL ?= lenet
DEMO_FLAGS ?= --optimizer=momentum --learning_rate=0.01 --learning_rate_decay_type=polynomial \
              --num_epochs_per_decay=6.6 --weight_decay=0 --batch_size=32 \
              --max_number_of_steps=10000 --use_grayscale
DEMO_BIN   := $(addprefix $(BUILD)/bin/,slimnet-demo slimnet-convert slimnet-train slimnet-eval \
              slimnet-classify)
demo: $(DEMO_BIN)
	@[ -f $(FASHION_MNIST)/train-images-idx3-ubyte.gz ] || $(MAKE) --no-print-directory deps DEB_PKGS=dataset-fashion-mnist
	rm -rf $(DEMO_DIR) && mkdir -p $(DEMO_DIR)
	$(BUILD)/bin/slimnet-demo --data_dir=$(FASHION_MNIST) --fer_tree=$(DEMO_DIR)/pics --samples=$(DEMO_DIR)/samples
	$(BUILD)/bin/slimnet-convert --dataset_name=fer --pic_path=$(DEMO_DIR)/pics --dataset_dir=$(DEMO_DIR)/data
	$(BUILD)/bin/slimnet-train --dataset_name=fer --dataset_dir=$(DEMO_DIR)/data --train_dir=$(DEMO_DIR)/train \
	    --model_name=$(DEMO_MODEL) --log_every_n_steps=250 $(DEMO_FLAGS)
	$(BUILD)/bin/slimnet-eval --dataset_name=fer --dataset_dir=$(DEMO_DIR)/data --checkpoint_path=$(DEMO_DIR)/train \
	    --eval_dir=$(DEMO_DIR)/train --model_name=$(DEMO_MODEL) $(if $(findstring use_grayscale,$(DEMO_FLAGS)),--use_grayscale)
	$(BUILD)/bin/slimnet-classify --model_name=$(DEMO_MODEL) --checkpoint_path=$(DEMO_DIR)/train --top_k=3 \
	    $(if $(findstring use_grayscale,$(DEMO_FLAGS)),--use_grayscale) $(DEMO_DIR)/samples

# ---- fuzzing -------------------------------------------------------------------------------
# make fuzz [FUZZ_SECONDS=60] [FUZZ_TARGETS="image example"] [FUZZ_JOBS=2]: every libFuzzer
# target of tests/fuzz/targets.def for FUZZ_SECONDS seconds, FUZZ_JOBS at a time, built with
# clang -fsanitize=fuzzer,address,undefined in $(BUILD)/fuzz (CPU only, no OpenMP).  Each
# starts from the committed regressions (tests/fuzz/corpus/<t>, read only) and seeds written
# by slimnet's own writers ($(BUILD)/fuzz/seeds/<t>); what it finds goes to
# $(BUILD)/fuzz/corpus/<t>, a crash's input to $(BUILD)/fuzz/crashes/ (fix it, then add the
# input to tests/fuzz/corpus/<t>/ so that make test replays it).  tests/fuzz/run.sh prints a
# table of executions and findings per target.
FUZZ_SECONDS ?= 60
FUZZ_JOBS    ?= 1
FUZZ_TARGETS ?= $(shell sed -n 's/^SN_FUZZ(\([a-z0-9_]*\)).*/\1/p' tests/fuzz/targets.def)
fuzz:
	@command -v clang >/dev/null || $(MAKE) --no-print-directory deps DEB_PKGS=clang
	$(MAKE) --no-print-directory BUILD=$(BUILD)/fuzz CC=clang CXX=clang++ CUDA=0 OPENMP=0 SN_FUZZ=1 \
	    FUZZ_TARGETS="$(FUZZ_TARGETS)" fuzz-build
	bash tests/fuzz/run.sh $(BUILD)/fuzz $(FUZZ_SECONDS) $(FUZZ_JOBS) $(FUZZ_TARGETS)

ifeq ($(SN_FUZZ),1)   # (without OpenMP the kernels' thread counts go unused)
  CFLAGS  += -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined \
             -Wno-unused-parameter
  # (clang links as C: the Gloo shim's C++ checks need UBSan's C++ runtime too)
  LDFLAGS += -fsanitize=address,undefined -fsanitize-link-c++-runtime
endif
FUZZ_UTIL := $(BUILD)/tests/fuzz/fuzz_util.o
fuzz-build: $(FUZZ_TARGETS:%=$(BUILD)/bin/fuzz_%) $(BUILD)/bin/fuzz_seeds

$(BUILD)/bin/fuzz_seeds: $(BUILD)/tests/fuzz/seeds.o $(A_FILE)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $< $(A_FILE) $(LDLIBS) $(CHECK_LIBS)

$(BUILD)/bin/fuzz_%: tests/fuzz/%.c $(FUZZ_UTIL) $(CMD_COMMON) $(A_FILE) | $(PROTO_H)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -DSN_FUZZ_MAIN -fsanitize=fuzzer -o $@ $< $(FUZZ_UTIL) $(CMD_COMMON) \
	    $(A_FILE) $(LDLIBS)

bench: $(BENCH_BIN)
	@for b in $(BENCH_BIN); do echo "== $$b"; $$b || exit 1; done

# Every object may include a generated header: generate them first.
$(LIB_SRC:%.c=$(BUILD)/%.o) $(TEST_OBJ) $(BUILD)/tests/fuzz/seeds.o: | $(PROTO_H)

# ---- install -----------------------------------------------------------------------------
install: all
	install -d $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/bin
	install -m 644 lib/slimnet.h $(DESTDIR)$(PREFIX)/include/
	install -m 755 $(SO_FILE) $(DESTDIR)$(PREFIX)/lib/
	ln -sf libslimnet.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/$(SO_NAME)
	ln -sf $(SO_NAME) $(DESTDIR)$(PREFIX)/lib/libslimnet.so
	install -m 644 $(A_FILE) $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(TOOLS) $(DESTDIR)$(PREFIX)/bin/
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' \
	    -e 's|@LIBS@|$(LDLIBS)$(if $(filter 1,$(OPENMP)), -lgomp)|' slimnet.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/slimnet.pc

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/include/slimnet.h $(DESTDIR)$(PREFIX)/lib/libslimnet.* \
	      $(DESTDIR)$(PREFIX)/lib/pkgconfig/slimnet.pc $(TOOLS:$(BUILD)/bin/%=$(DESTDIR)$(PREFIX)/bin/%)

endif

# ---- dependencies ----------------------------------------------------------------------------
DEB_PKGS := gcc make pkg-config libopenblas-dev check libsubunit-dev zlib1g-dev \
            libprotobuf-c-dev protobuf-c-compiler libsnappy-dev libturbojpeg0-dev \
            libjpeg62-turbo-dev libpng-dev libcjson-dev libgloo-dev libmicrohttpd-dev
# Wanted, not required: the demo's data and the dataset suite's full conversion test.
OPT_PKGS := dataset-fashion-mnist
deps:
	@missing=""; for p in $(DEB_PKGS); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	optional=""; for p in $(OPT_PKGS); do \
	  dpkg -s $$p >/dev/null 2>&1 || optional="$$optional $$p"; done; \
	if [ -z "$$missing$$optional" ]; then echo "deps: all installed"; exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then \
	  echo "deps: installing$$missing$$optional"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing $$optional) \
	    >$(BUILD).deps.log 2>&1 || { cat $(BUILD).deps.log; exit 1; }; \
	elif [ -n "$$missing" ]; then \
	  echo "deps: missing packages; run: sudo apt-get install -y$$missing$$optional"; exit 1; \
	else echo "deps: optional$$optional not installed (make demo and one dataset test use it):" \
	  "sudo apt-get install -y$$optional"; fi

# Cheap check on every build: only calls `make deps` when a header (Gloo has no .pc), tool or the test data
# (Debian's Fashion-MNIST: the demo's data and the dataset suite's real conversion) is missing.
FASHION_MNIST_DIR := /usr/share/datasets/fashion-mnist
check-deps:
	@if ! command -v pkg-config >/dev/null || ! command -v protoc-c >/dev/null || \
	    [ ! -f $(FASHION_MNIST_DIR)/train-images-idx3-ubyte.gz ] || [ ! -f /usr/include/gloo/context.h ] || \
	    ! pkg-config --exists openblas check zlib libprotobuf-c snappy libturbojpeg libjpeg libpng \
	        libcjson libmicrohttpd; \
	then $(MAKE) --no-print-directory deps; fi

clean:
	rm -rf $(BUILD) $(BUILD).deps.log

-include $(LIB_OBJ:.o=.d) $(TEST_OBJ:.o=.d)
-include $(CMD_SRC:cmd/%.c=$(BUILD)/cmd/%.d) $(CMD_COMMON:.o=.d) $(SERVE_OBJ:.o=.d) $(BENCH_SRC:benchmarks/%.c=$(BUILD)/benchmarks/%.d)

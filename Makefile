# FastChat-C build. Objects in build/, header dependencies via -MMD -MP.
#   make            the fastchat binary and libfastchat.a
#   make test       installs what is missing, builds, runs every test
#   make run        installs what is missing, builds, starts the main job
#   make bench      speed against llama.cpp on the same machine
#   DEBUG=1         -O1 -g with ASan + UBSan
#   NATIVE=0        portable build (no -march=native: generic kernels)

CC      ?= cc
DEBUG   ?= 0
NATIVE  ?= 1
BUILD   ?= build

CFLAGS  := -std=c11 -Wall -Wextra -Wno-unused-parameter -D_GNU_SOURCE -pthread -MMD -MP -Isrc
LDLIBS  := -lmicrohttpd -lcurl -lcjson -lpcre2-8 -lutf8proc -ledit -lsqlite3 -lcrypto -lm -lpthread
# OpenBLAS (libopenblas-dev) for the fast training path (src/train/train_fast.c)
BLAS_CFLAGS := $(shell pkg-config --cflags openblas 2>/dev/null)
BLAS_LIBS   := $(or $(shell pkg-config --libs openblas 2>/dev/null),-lopenblas)
CFLAGS  += $(BLAS_CFLAGS)
LDLIBS  += $(BLAS_LIBS)

ifeq ($(DEBUG),1)
  CFLAGS  += -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
  LDFLAGS += -fsanitize=address,undefined
  BUILD   := build/debug
else
  CFLAGS  += -O3 -g
endif
ifeq ($(NATIVE),1)
  CFLAGS  += -march=native
endif

LIB_SRC  := $(sort $(wildcard src/base/*.c src/tensor/*.c src/tensor/cpu/*.c src/model/*.c \
              src/tokenizer/*.c src/chat/*.c src/sampling/*.c src/engine/*.c src/tools/*.c \
              src/net/*.c src/serve/*.c src/arena/*.c src/eval/*.c src/data/*.c src/format/*.c))
LIB_SRC  += $(sort $(wildcard src/train/*.c))
CLI_SRC  := $(sort $(wildcard src/cli/*.c))
TEST_SRC := $(sort $(wildcard tests/unit/test_*.c))

LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
# MPI (src/train/dist.c, `mpirun -np N fastchat train`): built in when OpenMPI's
# development package is there (MPI=0 leaves it out); only dist.c sees mpi.h
MPI      ?= $(shell pkg-config --exists ompi-c 2>/dev/null && echo 1 || echo 0)
ifeq ($(MPI),1)
  $(BUILD)/src/train/dist.o: CFLAGS += -DFC_HAVE_MPI $(shell pkg-config --cflags ompi-c)
  LDLIBS += $(shell pkg-config --libs ompi-c)
endif
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/%.o)
TESTS    := $(TEST_SRC:tests/unit/%.c=$(BUILD)/tests/%)
LIB      := $(BUILD)/libfastchat.a
BIN      := $(BUILD)/fastchat

.PHONY: all test run bench setup clean fuzz unit pytest
all: $(BIN) $(TESTS)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(LIB): $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

# ---- web UI: web/ and Debian's JS libraries embedded in the library (generated C) ----
WEB_GEN := $(BUILD)/gen/web_assets.c
$(WEB_GEN): $(wildcard web/*) scripts/embed_web.sh
	@mkdir -p $(dir $@)
	scripts/embed_web.sh $(BUILD)/gen
$(BUILD)/gen/web_assets.o: $(WEB_GEN)
	$(CC) $(CFLAGS) -c $< -o $@
$(LIB): $(BUILD)/gen/web_assets.o

$(BIN): $(CLI_OBJ) $(LIB)
	$(CC) $(LDFLAGS) $(CLI_OBJ) $(LIB) $(LDLIBS) -o $@

$(BUILD)/tests/%: tests/unit/%.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests/unit $(LDFLAGS) $< $(LIB) $(LDLIBS) -o $@

# ---- fuzz targets (clang libFuzzer + ASan/UBSan; the library compiled once
# for them into build/fuzz/obj, each target linked against those objects) ----
FUZZ_SRC := $(sort $(wildcard fuzz/fuzz_*.c))
FUZZ_BIN := $(FUZZ_SRC:fuzz/%.c=build/fuzz/%)
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_CFLAGS := -std=c11 -D_GNU_SOURCE -pthread -Isrc -O1 -g -march=native -MMD -MP $(FUZZ_SAN)
FUZZ_CFLAGS += $(BLAS_CFLAGS)
FUZZ_OBJ := $(LIB_SRC:%.c=build/fuzz/obj/%.o)
FUZZ_OBJ += build/fuzz/obj/gen/web_assets.o
build/fuzz/obj/gen/web_assets.o: $(WEB_GEN)
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@
build/fuzz/obj/%.o: %.c
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@
build/fuzz/%: fuzz/%.c $(FUZZ_OBJ)
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer $< $(FUZZ_OBJ) $(LDLIBS) -o $@
fuzz: $(FUZZ_BIN)
# the library objects are shared by every target: keep them between builds
.SECONDARY: $(FUZZ_OBJ)

setup:
	@scripts/setup.sh

test: setup
	@$(MAKE) --no-print-directory -j$(shell nproc) all
	@$(MAKE) --no-print-directory -j$(shell nproc) fuzz
	@scripts/run_tests.sh $(BUILD)

run: setup $(BIN)
	@scripts/run.sh $(BIN)

bench: setup $(BIN)
	@scripts/bench.sh $(BIN)

clean:
	rm -rf build

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(FUZZ_OBJ:.o=.d)

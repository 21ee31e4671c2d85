# bench_lib.sh: shell functions the benchmark scripts share (sourced).

# Percent of all CPU time in use (by anything) over one second.
cpu_busy() {
    local a b
    read -r -a a < /proc/stat; sleep 1; read -r -a b < /proc/stat
    local tot=0 k
    for k in 1 2 3 4 5 6 7 8; do tot=$((tot + b[k] - a[k])); done
    local idle=$((b[4] - a[4] + b[5] - a[5]))
    echo $(( tot > 0 ? 100 * (tot - idle) / tot : 0 ))
}

# Waits (up to BENCH_WAIT_QUIET seconds) until the work on the machine is
# below BENCH_BUSY_PCT percent of the CPUs; prints the last figure seen, so
# that a table can say how quiet the run was.
wait_quiet() {
    local waited=0 b
    while b=$(cpu_busy); [ "$b" -gt "${BENCH_BUSY_PCT:-15}" ] && [ $waited -lt "${BENCH_WAIT_QUIET:-20}" ]; do
        sleep 4; waited=$((waited + 5))
    done
    echo "$b"
}

# Training benchmarks (bench_train.sh, bench_qlora.sh): 64 conversations whose
# replies are long enough that every example is truncated to
# --model-max-length, written as FastChat JSON to $1.
train_bench_data() {
python3 - "$1" <<'PYEOF'
import json, sys
words = ("the river carries small stones down from the hills and every spring the water "
         "rises over the old bridge while children watch from the bank and count the boats").split()
convs = []
for i in range(64):
    reply = " ".join(words[(i + k * 7) % len(words)] for k in range(600))
    convs.append({"id": str(i), "conversations": [
        {"from": "human", "value": f"Tell me story number {i}."},
        {"from": "gpt", "value": reply}]})
json.dump(convs, open(sys.argv[1], "w"))
PYEOF
}

# The median of the numbers on stdin, one a line (0 when none).
median_of_lines() {
    sort -g | awk '{a[NR] = $1} END {if (NR) print (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2); else print 0}'
}

# The median tokens/s of `fastchat train`'s progress lines after the first step (log $1).
train_tps() { grep -o 'tokens/s [0-9.]*' "$1" | awk 'NR > 1 {print $2}' | median_of_lines; }

# Peak RSS in MiB from a `/usr/bin/time -v` output file $1.
peak_rss_mib() { awk '/Maximum resident/ {printf "%.0f\n", $NF / 1024}' "$1"; }

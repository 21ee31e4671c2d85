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

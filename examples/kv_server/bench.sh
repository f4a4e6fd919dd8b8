#!/usr/bin/env bash
# examples/kv_server/bench.sh: kv_server (release) under wrk, end to end over loopback.
#
# Builds the example in release, starts it on a fresh temporary directory and an
# ephemeral loopback port, and runs wrk (installed with apt-get if missing) with three
# Lua scripts beside this file:
#   GET     one key, no log write (the floor: HTTP and the Store actor);
#   PUT     overwrites of 10,000 keys (a durable log append each);
#   CREATE  a fresh key per request (a durable append, and the map grows).
# First GET, PUT, CREATE side by side at each of CONNS; then rounds of GET, PUT, CREATE at
# each of GROW_CONNS until CREATE has put more than GROW_TO_KEYS keys in the map (the
# minutes in which the map grows). Prints one table (req/s, avg, p50, p99, p99.9, max),
# the goals of issue 14 as same-round ratios (CREATE p99 over the GET p99 measured just
# before it), and the log's own histograms from /metrics. Stops the servers and removes
# the directory at the end, whatever happens.
#
# A second server (B) runs beside the first (A) when KV_SERVER_BIN_B or KV_SERVER_ARGS_B
# is set: every run goes to A, then at once to B, so the two are compared in the same
# minutes of a shared, noisy machine, and the table ends with B's figures over A's.
#
#   examples/kv_server/bench.sh                      # about 3 minutes after the build
#   SECONDS_PER_RUN=2 GROW_TO_KEYS=100000 examples/kv_server/bench.sh   # a quick look
#   KV_SERVER_ARGS_B="--queue-thread caller" examples/kv_server/bench.sh
#
# Environment (defaults in brackets): SECONDS_PER_RUN [4], CONNS ["1 16 64 256"],
# GROW_CONNS ["64 256"], GROW_TO_KEYS [1050000], MAX_ROUNDS [12], WRK_THREADS [2],
# MAX_KEYS [4000000] (kv_server's --max-keys), MAX_BYTES [1073741824] (its --max-bytes:
# 4,000,000 keys of 100-byte values pass its 256 MiB default), KV_SERVER_BIN (a prebuilt binary: no
# build), KV_SERVER_ARGS (more flags for the server), KV_SERVER_BIN_B and
# KV_SERVER_ARGS_B (server B; each defaults to A's), KEEP_DIR=1 (keep the data, the wrk
# outputs and the servers' output; the path is printed).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
SECONDS_PER_RUN=${SECONDS_PER_RUN:-4}
CONNS=${CONNS:-"1 16 64 256"}
GROW_CONNS=${GROW_CONNS:-"64 256"}
GROW_TO_KEYS=${GROW_TO_KEYS:-1050000}
MAX_ROUNDS=${MAX_ROUNDS:-12}
WRK_THREADS=${WRK_THREADS:-2}
MAX_KEYS=${MAX_KEYS:-4000000}
MAX_BYTES=${MAX_BYTES:-1073741824}

# wrk and curl, from the distribution if missing.
missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v curl >/dev/null || missing+=(curl)
if ((${#missing[@]})); then
    sudo=()
    [[ $(id -u) == 0 ]] || sudo=(sudo)
    echo "installing ${missing[*]}" >&2
    "${sudo[@]}" apt-get install -y "${missing[@]}" >/dev/null 2>&1 \
        || { "${sudo[@]}" apt-get update >/dev/null && "${sudo[@]}" apt-get install -y "${missing[@]}" >/dev/null; }
fi

if [[ -n ${KV_SERVER_BIN:-} ]]; then
    bin_a=$KV_SERVER_BIN
else
    (cd "$root" && cargo build --release --example kv_server >&2)
    bin_a=${CARGO_TARGET_DIR:-$root/target}/release/examples/kv_server
fi
declare -A bin=([A]=$bin_a) args=([A]=${KV_SERVER_ARGS:-}) pid=() url=() keys=()
servers=(A)
if [[ -n ${KV_SERVER_BIN_B:-}${KV_SERVER_ARGS_B:-} ]]; then
    servers+=(B)
    bin[B]=${KV_SERVER_BIN_B:-$bin_a}
    args[B]=${KV_SERVER_ARGS_B:-${args[A]}}
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/kv_bench.XXXXXX")
cleanup() {
    local s p
    for s in "${!pid[@]}"; do
        p=${pid[$s]}
        kill -0 "$p" 2>/dev/null || continue
        kill -TERM "$p" 2>/dev/null || true
        for _ in $(seq 100); do
            kill -0 "$p" 2>/dev/null || break
            sleep 0.2
        done
        kill -KILL "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    if [[ ${KEEP_DIR:-0} == 1 ]]; then
        echo "kept $work" >&2
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT
trap 'echo "bench.sh: failed at line $LINENO" >&2' ERR
trap 'exit 130' INT TERM

value=$(printf 'v%.0s' $(seq 100))
for s in "${servers[@]}"; do
    # shellcheck disable=SC2086 # the args are a list of flags
    "${bin[$s]}" --dir "$work/wal-$s" --addr 127.0.0.1:0 --max-keys "$MAX_KEYS" --max-bytes "$MAX_BYTES" ${args[$s]} \
        >"$work/server-$s.out" 2>&1 &
    pid[$s]=$!
    addr=
    for _ in $(seq 600); do
        addr=$(sed -n 's/^listening on //p' "$work/server-$s.out")
        [[ -n $addr ]] && break
        kill -0 "${pid[$s]}" 2>/dev/null || { cat "$work/server-$s.out" >&2; exit 1; }
        sleep 0.1
    done
    [[ -n $addr ]] || { echo "kv_server $s did not start" >&2; exit 1; }
    url[$s]=http://$addr
    curl -sf -X PUT --data-binary "$value" "${url[$s]}/kv/g" >/dev/null
    keys[$s]=10001 # the PUT set and the GET key, once the first PUT runs have touched them
done

echo "# kv_server under wrk: $(nproc) CPUs ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)), wrk on the same CPUs"
echo "# $SECONDS_PER_RUN s per run, $WRK_THREADS wrk threads, 100-byte values, --max-keys $MAX_KEYS"
for s in "${servers[@]}"; do echo "# server $s: ${bin[$s]} ${args[$s]}"; done
echo "# load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"

rows=$work/rows # phase round server script c keys requests duration mean p50 p99 p999 max errors...
: >"$rows"
run=0

# run PHASE ROUND SERVER SCRIPT CONNS: one wrk run; appends a row.
run() {
    local phase=$1 round=$2 s=$3 script=$4 c=$5 threads out line kv
    run=$((run + 1))
    threads=$((c < WRK_THREADS ? c : WRK_THREADS))
    out=$work/wrk-$run-$s-$script-c$c.txt
    wrk -t "$threads" -c "$c" -d "${SECONDS_PER_RUN}s" --timeout 10s --latency \
        -s "$here/$script.lua" "${url[$s]}" -- "$run" >"$out" 2>&1 || true
    line=$(grep '^KVBENCH' "$out" || true)
    if [[ -z $line ]]; then
        echo "wrk failed ($s $script c=$c):" >&2
        cat "$out" >&2
        exit 1
    fi
    local -A f=()
    for kv in ${line#KVBENCH }; do f[${kv%%=*}]=${kv#*=}; done
    if [[ $script == create ]]; then
        keys[$s]=$((keys[$s] + f[requests] - f[status_errors]))
    fi
    echo "$phase $round $s $script $c ${keys[$s]} ${f[requests]} ${f[duration_us]} ${f[mean_us]}" \
        "${f[p50_us]} ${f[p99_us]} ${f[p999_us]} ${f[max_us]} ${f[status_errors]} ${f[socket_errors]}" >>"$rows"
}

# round PHASE ROUND CONNS...: GET, PUT, CREATE at each c, each on every server in turn.
round() {
    local phase=$1 r=$2 c script s
    shift 2
    for c in "$@"; do
        for script in get put create; do
            for s in "${servers[@]}"; do run "$phase" "$r" "$s" "$script" "$c"; done
        done
    done
}

fewest_keys() {
    local s least=
    for s in "${servers[@]}"; do
        if [[ -z $least ]] || ((keys[$s] < least)); then least=${keys[$s]}; fi
    done
    echo "$least"
}

# shellcheck disable=SC2086 # lists of concurrencies
round steps 0 $CONNS
for s in "${servers[@]}"; do curl -sf "${url[$s]}/metrics" >"$work/metrics-steps-$s.txt"; done
r=0
while (($(fewest_keys) <= GROW_TO_KEYS && r < MAX_ROUNDS)); do
    r=$((r + 1))
    # shellcheck disable=SC2086
    round grow "$r" $GROW_CONNS
done
for s in "${servers[@]}"; do curl -sf "${url[$s]}/metrics" >"$work/metrics-end-$s.txt"; done
echo "# load average at end: $(cut -d' ' -f1-3 /proc/loadavg); keys in the map: about $(fewest_keys) or more"
echo

awk -v servers="${servers[*]}" '
function ms(us) { return sprintf("%.2f", us / 1000) }
# The median of the values in list (space-separated).
function median(list,    a, n, i, j, t) {
    n = split(list, a, " ")
    for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] + 0 > a[j] + 0; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
BEGIN {
    printf "%-8s %-3s %-6s %4s %9s %9s %8s %8s %8s %8s %8s %6s\n", "phase", "srv", "script", "c", "keys", "req/s", "avg ms", "p50 ms", "p99 ms", "p99.9 ms", "max ms", "errors"
}
{
    phase = $1; round = $2; s = $3; w = toupper($4); c = $5
    rps = $8 > 0 ? $7 / ($8 / 1e6) : 0
    tag = phase == "steps" ? "steps" : "grow " round
    printf "%-8s %-3s %-6s %4d %9d %9.0f %8s %8s %8s %8s %8s %6d\n", tag, s, w, c, $6, rps, ms($9), ms($10), ms($11), ms($12), ms($13), $14 + $15
    key = phase SUBSEP round SUBSEP c
    p99[key, s, w] = $11; mean[key, s, w] = $9; req[key, s, w] = rps
    if (w == "CREATE") { seen[key] = c }
}
END {
    ns = split(servers, srv, " ")
    print ""
    print "Goals (issue 14), worst same-round figures: CREATE p99 over the GET p99 measured just before it; avg at c=64"
    for (k = 1; k <= ns; k++) {
        s = srv[k]
        delete worst_ratio; delete worst_create; delete worst_put; delete n
        for (key in seen) {
            c = seen[key]
            r = p99[key, s, "GET"] > 0 ? p99[key, s, "CREATE"] / p99[key, s, "GET"] : 0
            if (r > worst_ratio[c]) worst_ratio[c] = r
            if (mean[key, s, "CREATE"] > worst_create[c]) worst_create[c] = mean[key, s, "CREATE"]
            if (mean[key, s, "PUT"] > worst_put[c]) worst_put[c] = mean[key, s, "PUT"]
            n[c]++
        }
        for (c = 64; c <= 256; c *= 4) {
            if (!n[c]) continue
            printf "  %s c=%-3d CREATE p99 / GET p99 at most %.2fx over %d rounds (goal <= 3)", s, c, worst_ratio[c], n[c]
            if (c == 64) printf "; avg at most CREATE %s ms, PUT %s ms (goal < 2)", ms(worst_create[c]), ms(worst_put[c])
            printf "\n"
        }
    }
    if (ns < 2) exit
    print ""
    print "B over A, median of the same-minute ratios (req/s, avg, p99), by script and c:"
    for (key in seen) {
        c = seen[key]; cs[c] = 1
        split("GET PUT CREATE", ws, " ")
        for (i = 1; i <= 3; i++) {
            w = ws[i]
            if (!req[key, "A", w] || !mean[key, "A", w] || !p99[key, "A", w]) continue
            rr[w, c] = rr[w, c] " " req[key, "B", w] / req[key, "A", w]
            ra[w, c] = ra[w, c] " " mean[key, "B", w] / mean[key, "A", w]
            rp[w, c] = rp[w, c] " " p99[key, "B", w] / p99[key, "A", w]
        }
    }
    for (c = 1; c <= 256; c *= 2) {
        if (!(c in cs)) continue
        for (i = 1; i <= 3; i++) {
            w = ws[i]
            if (rr[w, c] == "") continue
            printf "  %-6s c=%-3d req/s %.2fx  avg %.2fx  p99 %.2fx  (%d runs)\n", w, c, median(rr[w, c]), median(ra[w, c]), median(rp[w, c]), split(rr[w, c], tmp, " ")
        }
    }
}' "$rows"

# The log histograms: cumulative share of observations within each bucket bound, over the
# whole run and over the growth rounds alone (the difference of the two scrapes).
echo
echo "The log's own histograms (/metrics), share of observations at or under each bound:"
for s in "${servers[@]}"; do
    awk -v s="$s" '
FNR == 1 { file++ }
/^actix_wal_[a-z_]*_seconds_bucket/ {
    name = $1; sub(/_bucket.*/, "", name)
    le = $1; sub(/.*le="/, "", le); sub(/".*/, "", le)
    v[file, name, le] = $2
    if (!((name, le) in known)) { known[name, le] = 1; order[name] = order[name] " " le }
    names[name] = 1
}
END {
    for (name in names) {
        nb = split(order[name], les, " ")
        for (part = 1; part <= 2; part++) {
            label = part == 1 ? "whole run" : "grow rounds"
            total = v[2, name, "+Inf"] - (part == 2 ? v[1, name, "+Inf"] : 0)
            line = sprintf("  %s %-34s %-11s n=%-8d", s, name, label, total)
            for (i = 1; i <= nb; i++) {
                le = les[i]
                if (le == "+Inf" || le + 0 < 0.001 || le + 0 > 0.25) continue
                x = v[2, name, le] - (part == 2 ? v[1, name, le] : 0)
                line = line sprintf(" <=%gms %.2f%%", le * 1000, total ? 100 * x / total : 0)
            }
            print line
        }
    }
}' "$work/metrics-steps-$s.txt" "$work/metrics-end-$s.txt"
done

#!/usr/bin/env bash
# examples/raft_kv/bench.sh: three raft_kv nodes with --store wal, three with --store mem,
# and three etcd nodes, on loopback, in turns, under the same wrk load (issue 21, item 6).
#
# The load: PUT of 256-byte values over 10,000 keys, to the leader, at each of CONNS
# connections for SECONDS_PER_RUN seconds. raft_kv takes `PUT /kv/{key}`; etcd 3.4 its v3
# JSON gateway, `POST /v3/kv/put` with base64 key and value (the same bytes). Each round
# runs wal, mem and etcd one after the other at one concurrency, so the three share the
# same minutes of a shared, noisy machine; the table gives each run's PUT/s and latency
# (p50, p99, max), and per round the ratios the issue sets goals for: wal/mem (goal >= 0.7)
# and wal/etcd (goal >= 4). Every cluster starts fresh (empty directories), is stopped and
# its directory removed at the end, whatever happens.
#
# wrk and etcd are installed with apt-get when missing (Debian's wrk and etcd-server:
# etcd 3.4, default settings but for the addresses).
#
#   examples/raft_kv/bench.sh                        # 2 rounds x c=64,256 x 10 s
#   SECONDS_PER_RUN=3 ROUNDS=1 examples/raft_kv/bench.sh   # a quick look
#
# Environment (defaults in brackets): SECONDS_PER_RUN [10], CONNS ["64 256"], ROUNDS [2],
# WRK_THREADS [2], SYSTEMS ["wal mem etcd"], RAFT_KV_BIN (a prebuilt binary: no build),
# RAFT_KV_ARGS (more flags for every raft_kv node), KEEP_DIR=1 (keep data and outputs).
# RAFT_KV_BIN_B: a second raft_kv binary (another commit), measured as system `walB`
# (`--store wal`) when SYSTEMS names it, e.g. SYSTEMS="walB wal mem": the table's ratios
# then add wal/walB, the change measured in the same minutes as its baseline.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
SECONDS_PER_RUN=${SECONDS_PER_RUN:-10}
CONNS=${CONNS:-"64 256"}
ROUNDS=${ROUNDS:-2}
WRK_THREADS=${WRK_THREADS:-2}
SYSTEMS=${SYSTEMS:-"wal mem etcd"}
RAFT_KV_ARGS=${RAFT_KV_ARGS:-}

need() {
    local cmd=$1 pkg=$2
    if ! command -v "$cmd" >/dev/null 2>&1; then
        echo "installing $pkg" >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$pkg" >/dev/null
    fi
}
need wrk wrk
if [[ " $SYSTEMS " == *" etcd "* ]]; then
    need etcd etcd-server
fi
need curl curl

if [[ -z "${RAFT_KV_BIN:-}" ]]; then
    (cd "$root" && cargo build --release --locked --example raft_kv >&2)
    RAFT_KV_BIN="$root/target/release/examples/raft_kv"
fi

work=$(mktemp -d /tmp/raft-kv-bench.XXXXXX)
pids=()
stop_all() {
    for p in "${pids[@]:-}"; do
        [[ -n "$p" ]] && kill -9 "$p" 2>/dev/null || true
    done
    for p in "${pids[@]:-}"; do
        [[ -n "$p" ]] && wait "$p" 2>/dev/null || true
    done
    pids=()
}
cleanup() {
    stop_all
    if [[ "${KEEP_DIR:-}" == 1 ]]; then
        echo "kept: $work" >&2
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT

# A free loopback port (the kernel's choice; closed again at once).
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# Waits until `curl -sf URL` succeeds (at most 60 s).
wait_url() {
    local url=$1
    for _ in $(seq 600); do
        curl -sf -o /dev/null "$url" && return 0
        sleep 0.1
    done
    echo "timed out waiting for $url" >&2
    return 1
}

# Starts three raft_kv nodes for system $1 (wal, mem: --store $1; walB: RAFT_KV_BIN_B with
# --store wal); sets LEADER_URL (http://ADDR of the leader).
start_raft_kv() {
    local store=$1 d="$work/$1" bin=$RAFT_KV_BIN
    if [[ $store == walB ]]; then
        store=wal
        bin=${RAFT_KV_BIN_B:?RAFT_KV_BIN_B names the binary of system walB}
    fi
    mkdir -p "$d"
    (umask 077; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$d/secret")
    local ports=() peers=""
    for i in 1 2 3; do
        ports[$i]=$(free_port)
        peers+="${peers:+,}$i=127.0.0.1:${ports[$i]}"
    done
    for i in 1 2 3; do
        local init=()
        [[ $i == 1 ]] && init=(--init)
        # shellcheck disable=SC2086
        "$bin" --id "$i" --dir "$d/n$i" --addr "127.0.0.1:${ports[$i]}" \
            --cluster-secret-file "$d/secret" --peers "$peers" --store "$store" "${init[@]}" \
            $RAFT_KV_ARGS >"$d/n$i.out" 2>&1 &
        pids+=($!)
    done
    for i in 1 2 3; do wait_url "http://127.0.0.1:${ports[$i]}/raft/state"; done
    local leader=""
    for _ in $(seq 600); do
        leader=$(curl -sf "http://127.0.0.1:${ports[1]}/raft/state" |
            python3 -c 'import json,sys; l=json.load(sys.stdin).get("leader"); print(l if l is not None else "")')
        [[ -n "$leader" ]] && break
        sleep 0.1
    done
    [[ -n "$leader" ]] || { echo "no leader for $store" >&2; return 1; }
    LEADER_URL="http://127.0.0.1:${ports[$leader]}"
    # One write through, so the leader has committed an entry of its term.
    for _ in $(seq 100); do
        curl -sf -X PUT --data-binary warm -o /dev/null "$LEADER_URL/kv/warmup" && break
        sleep 0.1
    done
}

# Starts three etcd nodes; sets LEADER_URL to the leader's client URL.
start_etcd() {
    local d="$work/etcd" cluster="" cports=() pports=()
    mkdir -p "$d"
    for i in 1 2 3; do
        cports[$i]=$(free_port)
        pports[$i]=$(free_port)
        cluster+="${cluster:+,}e$i=http://127.0.0.1:${pports[$i]}"
    done
    for i in 1 2 3; do
        etcd --name "e$i" --data-dir "$d/e$i" \
            --listen-client-urls "http://127.0.0.1:${cports[$i]}" \
            --advertise-client-urls "http://127.0.0.1:${cports[$i]}" \
            --listen-peer-urls "http://127.0.0.1:${pports[$i]}" \
            --initial-advertise-peer-urls "http://127.0.0.1:${pports[$i]}" \
            --initial-cluster "$cluster" --initial-cluster-state new \
            --initial-cluster-token "bench-$$" >"$d/e$i.out" 2>&1 &
        pids+=($!)
    done
    local eps="127.0.0.1:${cports[1]},127.0.0.1:${cports[2]},127.0.0.1:${cports[3]}"
    local leader=""
    for _ in $(seq 600); do
        leader=$(ETCDCTL_API=3 etcdctl --endpoints "$eps" endpoint status -w json 2>/dev/null |
            python3 -c '
import json,sys
for s in json.load(sys.stdin):
    st=s["Status"]
    if st["header"]["member_id"]==st["leader"]: print(s["Endpoint"])' || true)
        [[ -n "$leader" ]] && break
        sleep 0.1
    done
    [[ -n "$leader" ]] || { echo "no etcd leader" >&2; return 1; }
    LEADER_URL="http://$leader"
    curl -sf -X POST -d '{"key":"d2FybQ==","value":"d2FybQ=="}' -o /dev/null "$LEADER_URL/v3/kv/put"
}

# Runs wrk against the current cluster: $1 system, $2 connections. Prints one line:
# "system conns reqs_per_s p50_us p99_us max_us errors".
run_wrk() {
    local system=$1 conns=$2 script=put_raft_kv.lua
    [[ $system == etcd ]] && script=put_etcd.lua
    local out
    out=$(wrk -t "$WRK_THREADS" -c "$conns" -d "${SECONDS_PER_RUN}s" --timeout 10s \
        -s "$here/$script" "$LEADER_URL" 2>&1)
    echo "$out" >"$work/wrk-$system-$conns-$(date +%s%N).out"
    local line
    line=$(echo "$out" | grep '^KVBENCH' || true)
    if [[ -z "$line" ]]; then
        echo "wrk printed no figures for $system c=$conns:" >&2
        echo "$out" >&2
        return 1
    fi
    python3 - "$system" "$conns" "$line" <<'EOF'
import sys
system, conns, line = sys.argv[1], sys.argv[2], sys.argv[3]
f = dict(kv.split("=") for kv in line.split()[1:])
rps = int(f["requests"]) / (int(f["duration_us"]) / 1e6)
errors = int(f["status_errors"]) + int(f["socket_errors"])
print(f"{system} {conns} {rps:.0f} {f['p50_us']} {f['p99_us']} {f['max_us']} {errors}")
EOF
}

results="$work/results.txt"
: >"$results"
for round in $(seq "$ROUNDS"); do
    for conns in $CONNS; do
        for system in $SYSTEMS; do
            case $system in
                wal | mem | walB) start_raft_kv "$system" ;;
                etcd) start_etcd ;;
                *) echo "unknown system $system" >&2; exit 2 ;;
            esac
            echo "round $round c=$conns $system: $LEADER_URL" >&2
            echo "$round $(run_wrk "$system" "$conns")" >>"$results"
            stop_all
            rm -rf "${work:?}/$system"
        done
    done
done

python3 - "$results" <<'EOF'
import sys, collections
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
print(f"{'round':>5} {'system':>6} {'conns':>5} {'PUT/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'errors':>6}")
for r, system, conns, rps, p50, p99, mx, err in rows:
    print(f"{r:>5} {system:>6} {conns:>5} {float(rps):>9.0f} {int(p50)/1000:>8.2f} {int(p99)/1000:>8.2f} {int(mx)/1000:>8.1f} {err:>6}")
by = collections.defaultdict(dict)
for r, system, conns, rps, *_ in rows:
    by[(r, conns)][system] = float(rps)
print()
print("same-round ratios (goals: wal/mem >= 0.7, wal/etcd >= 4)")
for (r, conns), s in sorted(by.items(), key=lambda x: (int(x[0][0]), int(x[0][1]))):
    parts = []
    if "wal" in s and "mem" in s and s["mem"] > 0:
        parts.append(f"wal/mem {s['wal'] / s['mem']:.2f}")
    if "wal" in s and "etcd" in s and s["etcd"] > 0:
        parts.append(f"wal/etcd {s['wal'] / s['etcd']:.2f}")
    if "wal" in s and "walB" in s and s["walB"] > 0:
        parts.append(f"wal/walB {s['wal'] / s['walB']:.2f}")
    print(f"  round {r} c={conns}: " + ", ".join(parts))
EOF

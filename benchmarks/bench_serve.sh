#!/usr/bin/env bash
# bench_serve.sh: slimnet-serve under load (issue 18), with wrk (Debian's) on loopback.
#
#   make tools bench && bash benchmarks/bench_serve.sh [models...]
#
# 1. For each model (default: mobilenet_v1 resnet_v1_50; 1000 classes, the initial weights
#    written by bench_train --save): requests/s and latency p50/p99 of :predict with one
#    224x224 JPEG per request at concurrency 1, 8 and 32, for slimnet-serve and, in the same
#    run on the same checkpoint, the minimal TensorFlow HTTP server benchmarks/tf_serve_cpu.py
#    (tests/reference/.venv: make parity or tests/reference/setup.sh creates it; "-" where
#    it cannot run, e.g. mobilenet_v1 needs research/slim's nets in tests/reference/out).
#    Every request is checked: a non-200 answer or one without the expected class counts
#    as an error (wrk's Lua response()).
# 2. LOAD_SECONDS (default 60) of concurrency 32 on lenet while a table of bad requests
#    (truncated JSON, bad base64, not an image, a PNG bomb, a 100 MB body, a slow client) is
#    sent alongside: the failed and wrong good answers, and each bad request's status.
#
# Knobs: DURATION (seconds per level, default 10), THREADS (each server's compute threads,
# default 2), MAX_BATCH (slimnet-serve's --max_batch_size, default 8), LOG (build/bench_serve).
# Prints markdown rows.  The machine, commit and date go with them into RESULTS.md.
set -u
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10}
THREADS=${THREADS:-2}
MAX_BATCH=${MAX_BATCH:-8}
LOAD_SECONDS=${LOAD_SECONDS:-60}
LOG=${LOG:-build/bench_serve}
PY=${PY:-tests/reference/.venv/bin/python}
BIN=build/bin
MODELS=("$@")
[ ${#MODELS[@]} -gt 0 ] || MODELS=(mobilenet_v1 resnet_v1_50)
command -v wrk > /dev/null || { echo "bench_serve: wrk missing (apt-get install wrk)" >&2; exit 2; }
for b in slimnet-serve bench_train; do
    [ -x "$BIN/$b" ] || { echo "bench_serve: $BIN/$b missing (make tools bench)" >&2; exit 2; }
done
mkdir -p "$LOG"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2> /dev/null; done; }
trap cleanup EXIT

# A PNG of w x h: a checkerboard with noise (python3's zlib; no imaging library needed).
make_image() {   # path w h [noise, default 100; 0 for a flat image]
    python3 - "$1" "$2" "$3" "${4:-100}" << 'EOF'
import random, struct, sys, zlib
path, w, h, noise = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
random.seed(1)
if noise:
    rows = b"".join(b"\0" + bytes((((x // 8 + y // 8) % 2) * 150 + random.randrange(noise)) % 256
                                  for x in range(w) for _ in range(3)) for y in range(h))
else:
    rows = (b"\0" + bytes(3 * w)) * h
def chunk(t, d):
    return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) +
       chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
open(path, "wb").write(png)
EOF
}

# {"instances": [{"b64": <file>}]} into path
make_body() {   # image path
    printf '{"instances": [{"b64": "%s"}]}' "$(base64 -w0 "$1")" > "$2"
}

# wrk's script: POST the body, count answers that are not 200 or lack the expected text.
make_lua() {   # body expected lua
    cat > "$3" << EOF
local f = io.open("$1", "rb")
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
bad = 0   -- a global: done() reads each thread's with get()
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) bad = 0 end
function response(status, headers, body)
    if status ~= 200 or not string.find(body, '$2', 1, true) then bad = bad + 1 end
end
function done(summary, latency, requests)
    local n = 0
    for _, t in ipairs(threads) do n = n + t:get("bad") end
    io.write(string.format("checked-bad %d\n", n))
end
EOF
}

# Starts slimnet-serve; sets PORT.  Output in $LOG/$1.log.
start_slimnet() {   # name args...
    local name=$1
    shift
    "$BIN/slimnet-serve" --port=0 --device=cpu --threads="$THREADS" "$@" > "$LOG/$name.log" 2>&1 &
    PIDS+=($!)
    SERVER=$!
    PORT=""
    for _ in $(seq 1 600); do
        PORT=$(sed -n 's/.* at http:\/\/127.0.0.1:\([0-9]*\)\/.*/\1/p' "$LOG/$name.log")
        [ -n "$PORT" ] && return 0
        kill -0 "$SERVER" 2> /dev/null || break
        sleep 0.1
    done
    echo "bench_serve: slimnet-serve did not start (see $LOG/$name.log)" >&2
    return 1
}

start_tf() {   # name model ckpt
    local port=$((18600 + RANDOM % 1000))
    "$PY" benchmarks/tf_serve_cpu.py --model "$2" --checkpoint_path "$3" --port "$port" \
        --threads "$THREADS" > "$LOG/$1.log" 2>&1 &
    PIDS+=($!)
    SERVER=$!
    PORT=""
    for _ in $(seq 1 1200); do
        grep -q "at http://" "$LOG/$1.log" && { PORT=$port; return 0; }
        kill -0 "$SERVER" 2> /dev/null || break
        sleep 0.1
    done
    return 1
}

# "rps p50 p99 errors" of one wrk run
run_wrk() {   # url lua concurrency out
    local t=$(( $3 < 2 ? 1 : 2 ))
    wrk -t "$t" -c "$3" -d "${DURATION}s" --timeout 30s --latency -s "$2" "$1" > "$4" 2>&1
    local rps p50 p99 bad errs
    rps=$(awk '/^Requests\/sec/ {print $2}' "$4")
    p50=$(awk '$1 == "50%" {print $2}' "$4")
    p99=$(awk '$1 == "99%" {print $2}' "$4")
    bad=$(awk '/^checked-bad/ {print $2}' "$4")
    errs=$(awk '/Socket errors/ {n = 0; for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+,?$/) n += $i; print n}' "$4")
    echo "${rps:--} ${p50:--} ${p99:--} $(( ${bad:-0} + ${errs:-0} ))"
}

make_image "$LOG/img.png" 320 240
make_body "$LOG/img.png" "$LOG/body.json"

echo "| network | concurrency | slimnet-serve req/s | p50 | p99 | errors | TF Python req/s | p50 | p99 | errors | slimnet/TF |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
for m in "${MODELS[@]}"; do
    ck="$(pwd)/$LOG/ckpt_$m"   # absolute: the state file then names it as TF reads it
    rm -rf "$ck"
    "$BIN/bench_train" --model "$m" --infer 1 --batch 1 --classes 1000 --save "$ck" \
        > "$LOG/save_$m.log" 2>&1 || { echo "bench_serve: $m: cannot write its checkpoint" >&2; continue; }
    # the expected class: what slimnet-serve answers alone
    start_slimnet "serve_$m" --model_name="$m" --checkpoint_path="$ck" --num_classes=1000 \
        --max_batch_size="$MAX_BATCH" || continue
    url="http://127.0.0.1:$PORT/v1/models/$m:predict"
    cls=$(curl -s -d @"$LOG/body.json" "$url" | sed -n 's/.*"classes":\([0-9]*\).*/\1/p')
    make_lua "$LOG/body.json" "\"classes\":$cls" "$LOG/check_$m.lua"
    declare -A SN=()
    for c in 1 8 32; do SN[$c]=$(run_wrk "$url" "$LOG/check_$m.lua" "$c" "$LOG/wrk_sn_${m}_$c.log"); done
    kill "$SERVER"; wait "$SERVER" 2> /dev/null
    declare -A TF=()
    for c in 1 8 32; do TF[$c]="- - - -"; done
    if [ -x "$PY" ] && start_tf "tf_$m" "$m" "$ck"; then
        url="http://127.0.0.1:$PORT/v1/models/$m:predict"
        # TensorFlow's answer has spaces after its colons; its class may differ from
        # slimnet's by its own resize: check only that a prediction came
        make_lua "$LOG/body.json" '"predictions"' "$LOG/check_tf_$m.lua"
        for c in 1 8 32; do TF[$c]=$(run_wrk "$url" "$LOG/check_tf_$m.lua" "$c" "$LOG/wrk_tf_${m}_$c.log"); done
        kill "$SERVER"; wait "$SERVER" 2> /dev/null
    fi
    for c in 1 8 32; do
        read -r a1 a2 a3 a4 <<< "${SN[$c]}"
        read -r b1 b2 b3 b4 <<< "${TF[$c]}"
        r=$(awk -v a="$a1" -v b="$b1" 'BEGIN { if (b == "-" || b + 0 == 0 || a == "-") print "-"; else printf "%.2fx", a / b }')
        echo "| $m | $c | $a1 | $a2 | $a3 | $a4 | $b1 | $b2 | $b3 | $b4 | $r |"
    done
done

# ---- 2. LOAD_SECONDS at concurrency 32 with bad requests alongside ----------------------
[ "$LOAD_SECONDS" -gt 0 ] || exit 0
ck="$(pwd)/$LOG/ckpt_lenet"
rm -rf "$ck"
"$BIN/bench_train" --model lenet --infer 1 --batch 1 --classes 10 --save "$ck" > "$LOG/save_lenet.log" 2>&1
start_slimnet serve_load --model_name=lenet --checkpoint_path="$ck" --num_classes=10 \
    --max_batch_size="$MAX_BATCH" --max_body_bytes=4000000 --max_image_pixels=4000000 \
    --request_timeout_ms=3000 || exit 1
base="http://127.0.0.1:$PORT"
cls=$(curl -s -d @"$LOG/body.json" "$base/v1/models/lenet:predict" | sed -n 's/.*"classes":\([0-9]*\).*/\1/p')
make_lua "$LOG/body.json" "\"classes\":$cls" "$LOG/check_lenet.lua"
wrk -t 2 -c 32 -d "${LOAD_SECONDS}s" --timeout 30s --latency -s "$LOG/check_lenet.lua" \
    "$base/v1/models/lenet:predict" > "$LOG/wrk_load.log" 2>&1 &
WRK=$!
sleep 2
make_image "$LOG/bomb.png" 4000 4000 0   # 16 M pixels, over the limit; ~50 KB compressed
printf '{"instances": [{"b64": "%s"}]}' "$(base64 -w0 "$LOG/bomb.png")" > "$LOG/bomb.json"
head -c 100000000 /dev/zero > "$LOG/huge.bin"
bad_table() {
    expect() {   # status description curl-args...
        local want=$1 what=$2
        shift 2
        local got
        got=$(curl -s -o /dev/null -w '%{http_code}' --max-time 20 "$@")
        echo "| $what | $want | $got | $([ "$got" = "$want" ] && echo ok || echo FAIL) |"
    }
    local u="$base/v1/models/lenet:predict"
    expect 400 "truncated JSON" -d '{"instances": [{"b64": "aGk' "$u"
    expect 400 "wrong key" -d '{"instance": []}' "$u"
    expect 400 "bad base64" -d '{"instances": [{"b64": "@@@"}]}' "$u"
    expect 400 "not an image" -d '{"instances": [{"b64": "aGVsbG8="}]}' "$u"
    expect 400 "PNG bomb (16 M pixels)" -d @"$LOG/bomb.json" "$u"
    expect 413 "100 MB body" --data-binary @"$LOG/huge.bin" "$base/classify"
    expect 404 "unknown model" -d @"$LOG/body.json" "$base/v1/models/nope:predict"
    # one byte a second: the request timeout answers 408
    local slow
    slow=$(timeout 30 python3 -c "
import select, socket
s = socket.create_connection(('127.0.0.1', $PORT))
s.sendall(b'POST /classify HTTP/1.1\\r\\nHost: x\\r\\nContent-Length: 50\\r\\n\\r\\n')
for _ in range(50):
    if select.select([s], [], [], 1.0)[0]:
        break
    s.sendall(b'x')
s.settimeout(5)
try:
    print(s.recv(100).split()[1].decode())
except Exception:
    print('none')" 2> /dev/null)
    echo "| a byte a second | 408 | $slow | $([ "$slow" = 408 ] && echo ok || echo FAIL) |"
}
echo
echo "| bad request during the load | want | got | |"
echo "|---|---|---|---|"
bad_table
wait "$WRK"
rm -f "$LOG/huge.bin"
read -r rps p50 p99 bad <<< "$(awk '/^Requests\/sec/ {r=$2} $1=="50%" {a=$2} $1=="99%" {b=$2} /^checked-bad/ {c=$2} END {print r, a, b, c}' "$LOG/wrk_load.log")"
total=$(awk '/requests in/ {print $1}' "$LOG/wrk_load.log")
errs=$(grep -c "Socket errors" "$LOG/wrk_load.log")
echo
echo "lenet, ${LOAD_SECONDS} s at concurrency 32: $total requests, $rps req/s, p50 $p50, p99 $p99;" \
     "failed or wrong answers: ${bad:-?}; socket error lines: $errs"
kill "$SERVER"; wait "$SERVER" 2> /dev/null

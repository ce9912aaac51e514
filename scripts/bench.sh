#!/usr/bin/env bash
# Regenerates the table in BENCHMARKS.md: the machine's physical limits (sequential disk
# write with fdatasync, loopback TCP) measured in the same run, and Eddy's throughput and
# latency beside them as ratios. Everything runs on 127.0.0.1.
#
#   scripts/bench.sh [--quick]      # prints the markdown table to stdout
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/eddy-target}"
N100=1000000; N1K=300000; LAT_N=30000; LAT_RATE=10000
if [ "${1:-}" = "--quick" ]; then N100=100000; N1K=30000; LAT_N=5000; LAT_RATE=5000; fi

command -v iperf3 >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iperf3 >/dev/null; }
cargo build --release --bin eddy -q
EDDY="$CARGO_TARGET_DIR/release/eddy"
WORK="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT

# Physical limits.
DD_MBS=$(dd if=/dev/zero of="$WORK/dd.bin" bs=1M count=1024 conv=fdatasync 2>&1 | awk '/copied/ {for(i=1;i<=NF;i++) if ($i ~ /^[0-9.]+$/ && $(i+1) ~ /B\/s/) {v=$i; u=$(i+1)}} END { if (u=="GB/s") v=v*1000; print v }')
rm -f "$WORK/dd.bin"
iperf3 -s -1 -B 127.0.0.1 -p 5399 >/dev/null 2>&1 &
sleep 0.5
NET_MBS=$(iperf3 -c 127.0.0.1 -p 5399 -t 5 -J | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/8/1e6))')

PORT=19555
"$EDDY" serve --listen 127.0.0.1:$PORT --data-dir "$WORK/data" >"$WORK/broker.log" 2>&1 &
sleep 1
B="-b 127.0.0.1:$PORT"
j() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
run() { "$EDDY" $B bench "$@" --json 2>/dev/null; }

P100=$(run produce --topic p100 --messages $N100 --size 100 --acks 1)
C100=$(run consume --topic p100 --messages $N100)
P1K=$(run produce --topic p1k --messages $N1K --size 1024 --acks 1)
C1K=$(run consume --topic p1k --messages $N1K)
PALL=$(run produce --topic pall --messages $N1K --size 1024 --acks all)
L1=$(run e2e --topic lat1 --messages $LAT_N --rate $LAT_RATE --size 256 --acks 1 --linger-ms 0)
LALL=$(run e2e --topic latall --messages $LAT_N --rate $LAT_RATE --size 256 --acks all --linger-ms 0)

row() { # name json limit
  local mbs msgs
  mbs=$(echo "$2" | j 'round(d["mb_per_s"],1)'); msgs=$(echo "$2" | j 'round(d["msgs_per_s"])')
  printf '| %s | %s | %s | %s |\n' "$1" "$msgs" "$mbs" "$(python3 -c "print(f'{$mbs/$3:.2f}')")"
}
echo "Machine: $(nproc) cores, $(free -g | awk '/Mem/ {print $2}') GiB; $(date -u +%Y-%m-%d)"
echo
echo "| physical limit | MB/s |"
echo "|---|---|"
echo "| sequential write, dd bs=1M count=1024 conv=fdatasync | $DD_MBS |"
echo "| loopback TCP, iperf3 -t 5, one stream | $NET_MBS |"
echo
echo "| workload (one producer / consumer, 1 partition) | records/s | MB/s | ratio to limit |"
echo "|---|---|---|---|"
row "produce 100 B, acks=1 (vs loopback)" "$P100" "$NET_MBS"
row "consume 100 B (vs loopback)" "$C100" "$NET_MBS"
row "produce 1 KiB, acks=1 (vs loopback)" "$P1K" "$NET_MBS"
row "consume 1 KiB (vs loopback)" "$C1K" "$NET_MBS"
row "produce 1 KiB, acks=all (vs fdatasync disk)" "$PALL" "$DD_MBS"
echo
echo "| end-to-end latency at $LAT_RATE records/s, 256 B, linger 0 | p50 ms | p99 ms | p99.9 ms | max ms |"
echo "|---|---|---|---|---|"
for pair in "acks=1:$L1" "acks=all:$LALL"; do
  name="${pair%%:*}"; js="${pair#*:}"
  echo "| $name | $(echo "$js" | j 'd["latency_ms"]["p50"]') | $(echo "$js" | j 'd["latency_ms"]["p99"]') | $(echo "$js" | j 'd["latency_ms"]["p999"]') | $(echo "$js" | j 'd["latency_ms"]["max"]') |"
done
echo
echo "Broker peak RSS: $(awk '/VmHWM/ {print $2, $3}' /proc/$(pgrep -f "listen 127.0.0.1:$PORT" | head -1)/status)"

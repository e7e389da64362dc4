#!/usr/bin/env bash
# See ucarp-rs fail over, on one machine, as root:
#   builds the ucarp binary, starts three hosts in their own network
#   namespaces on a bridge, shows the election, kills the master (kill -9)
#   and shows the takeover with its latency, stops the new master cleanly
#   (SIGTERM) to show the instant handover, and removes everything it made.
#
# Usage (as root): scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
    echo "demo: run as root (network namespaces), e.g. sudo $0" >&2
    exit 1
fi
if ! command -v ip >/dev/null; then
    apt-get update -qq && apt-get install -y -qq iproute2 >/dev/null
fi

echo "== building ucarp"
cargo build --release -q -p ucarp-cli
UCARP=$PWD/target/release/ucarp

TAG="demo$$"
BR="$TAG-br"
WORK=$(mktemp -d)
VIP=10.77.0.100
HOSTS=(alpha bravo charlie)
SKEWS=(0 50 100)

cleanup() {
    for ns in "${HOSTS[@]/#/$TAG-}" "$BR"; do
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
        ip netns del "$ns" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

# The scripts ucarp runs: move the address, and note when.
cat >"$WORK/vip-up.sh" <<EOF
#!/bin/sh
ip addr add $VIP/24 dev "\$1"
echo "\$(date +%s.%N) up" >> "$WORK/\$UCARP_HOST.events"
EOF
cat >"$WORK/vip-down.sh" <<EOF
#!/bin/sh
ip addr del $VIP/24 dev "\$1" 2>/dev/null
echo "\$(date +%s.%N) down" >> "$WORK/\$UCARP_HOST.events"
EOF
chmod 755 "$WORK/vip-up.sh" "$WORK/vip-down.sh"

echo "== three hosts on a bridge"
ip netns add "$BR"
ip -n "$BR" link add br0 type bridge
ip -n "$BR" link set br0 up
for i in 0 1 2; do
    ns="$TAG-${HOSTS[$i]}"
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    ip -n "$BR" link add "p$i" type veth peer name eth0 netns "$ns"
    ip -n "$BR" link set "p$i" master br0 up
    ip -n "$ns" addr add "10.77.0.$((i + 1))/24" dev eth0
    ip -n "$ns" link set eth0 up
done

start() {
    local i=$1 ns="$TAG-${HOSTS[$1]}"
    ip netns exec "$ns" env UCARP_HOST="${HOSTS[$i]}" "$UCARP" \
        -i eth0 -s "10.77.0.$((i + 1))" -v 42 -o "$WORK/pass" -a "$VIP" \
        -b 1 -k "${SKEWS[$i]}" -z -f none \
        -u "$WORK/vip-up.sh" -d "$WORK/vip-down.sh" \
        >"$WORK/${HOSTS[$i]}.log" 2>&1 &
    echo $! >"$WORK/${HOSTS[$i]}.pid"
    disown
}

# Hosts still running: a killed host keeps the address it had, as a
# crashed machine would, but no longer answers for it.
LIVE=("${HOSTS[@]}")

holder() {
    for h in "${LIVE[@]}"; do
        if ip -n "$TAG-$h" -4 addr show dev eth0 2>/dev/null | grep -q "$VIP"; then echo "$h"; fi
    done
}

wait_holder() {
    local want=$1 deadline=$((SECONDS + 15))
    while [ $SECONDS -lt $deadline ]; do
        local h
        h=$(holder | tr '\n' ' ' | sed 's/ $//')
        if [ "$h" = "$want" ]; then return 0; fi
        sleep 0.05
    done
    echo "demo: expected $want to hold $VIP, got '$(holder | tr '\n' ' ')'" >&2
    exit 1
}

last_up() { grep ' up$' "$WORK/$1.events" | tail -1 | cut -d' ' -f1; }

echo "secret" >"$WORK/pass"
echo "== starting alpha (advskew 0), bravo (50), charlie (100); interval 1 s, deadratio 3"
for i in 0 1 2; do start "$i"; done
wait_holder alpha
echo "   elected: $(holder) holds $VIP"
for h in "${HOSTS[@]}"; do
    printf '   %-8s %s\n' "$h" "$(grep -o 'Switching to state: [A-Z]*' "$WORK/$h.log" | tail -1)"
done
sleep 2

echo "== kill -9 alpha (the master)"
killed=$(now)
kill -9 "$(cat "$WORK/alpha.pid")"
LIVE=(bravo charlie)
wait_holder bravo
took=$(elapsed "$killed" "$(last_up bravo)")
echo "   bravo took over ${took}s after the kill"
echo "   (master-down time: 50/256 + 3 x 1 s = 3.195 s after alpha's last advert,"
echo "    which went out up to 1 s before the kill)"
grep 'Switching to state: MASTER' "$WORK/bravo.log" | tail -1 | sed 's/^/   bravo: /'
sleep 2

echo "== SIGTERM bravo (clean stop): it sends a leave advertisement"
stopped=$(now)
kill -TERM "$(cat "$WORK/bravo.pid")"
LIVE=(bravo charlie)
wait_holder charlie
took=$(elapsed "$stopped" "$(last_up charlie)")
echo "   charlie took over ${took}s after the signal (no 3 s wait)"
grep 'Switching to state: MASTER' "$WORK/charlie.log" | tail -1 | sed 's/^/   charlie: /'
while kill -0 "$(cat "$WORK/bravo.pid")" 2>/dev/null; do sleep 0.05; done
echo "   bravo ran its down script (-z) and exited; bravo's last event: $(tail -1 "$WORK/bravo.events" | cut -d' ' -f2)"

echo "== cleaning up"

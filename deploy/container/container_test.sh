#!/usr/bin/env bash
# `make container-test`: the one-container path from scratch on a fresh Debian machine, as root, and timed.
# Installs podman, configures it for this kind of host, makes a bookworm base image locally (no registry is
# reachable), builds the Dockerfile on it, runs the image with a models volume, waits for the healthcheck,
# streams a chat completion through the published port and stops the container within its grace period.
# Not part of `make test`: it changes the host's container configuration and takes minutes.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/../.." && pwd)"
BASE_IMAGE="${BASE_IMAGE:-localhost/debian:bookworm}"
IMAGE="${IMAGE:-localhost/codebooga:test}"
NAME="codebooga-container-test"
PORT="${PORT:-18080}"
STOP_TIMEOUT=10  # podman's SIGKILL deadline; the server's --shutdown-grace (5 s) must fit inside it
PYTHON="${PYTHON:-$REPO/.venv/bin/python}"
WORK="$(mktemp -d /tmp/codebooga-container-test.XXXXXX)"
declare -a TIMINGS=()

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
phase() { echo; echo "== $*"; }
record() { TIMINGS+=("$(printf '%-26s %8s s' "$1" "$2")"); echo "-- $1: $2 s"; }
fail() { echo "container-test FAILED: $*" >&2; exit 1; }
cleanup() {
    podman rm -f -t 0 "$NAME" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

[ "$(id -u)" = 0 ] || fail "run as root: it installs packages and writes /etc/containers/containers.conf"
[ -x "$PYTHON" ] || fail "$PYTHON missing: run \`make .venv/.serve-installed\` first (it finds the embedded model)"

phase "podman, buildah, runc, debootstrap"
t=$(now)
if ! command -v podman >/dev/null || ! command -v debootstrap >/dev/null || ! command -v runc >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman buildah runc debootstrap >/dev/null
fi
podman --version
record "install tools" "$(since "$t")"

phase "/etc/containers/containers.conf"
# crun fails on this cgroup setup and the default ulimits are too low for the build: runc and explicit limits.
CONF=/etc/containers/containers.conf
mkdir -p /etc/containers
touch "$CONF"
if ! grep -q '^\s*default_ulimits' "$CONF"; then
    grep -q '^\s*\[containers\]' "$CONF" && fail "$CONF has a [containers] table: add default_ulimits to it by hand"
    printf '[containers]\ndefault_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]\n\n' >>"$CONF"
fi
if ! grep -q '^\s*runtime\s*=' "$CONF"; then
    grep -q '^\s*\[engine\]' "$CONF" && fail "$CONF has an [engine] table: add runtime = \"runc\" to it by hand"
    printf '[engine]\nruntime = "runc"\n' >>"$CONF"
fi
cat "$CONF"

phase "base image $BASE_IMAGE"
t=$(now)
if podman image exists "$BASE_IMAGE"; then
    echo "$BASE_IMAGE exists: kept (podman rmi it to time a fresh one)"
else
    # The Debian mirror apt already uses (deb822 .sources or one-line .list), never security or updates.
    MIRROR="$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '/^URIs:/ && $2 !~ /security/ { print $2; exit }')"
    [ -n "$MIRROR" ] || MIRROR="$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
        | awk '$1 == "deb" && $0 !~ /security/ { for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) { print $i; exit } }')"
    [ -n "$MIRROR" ] || fail "no Debian mirror found in /etc/apt/sources.list.d/"
    echo "mirror: $MIRROR"
    debootstrap --variant=minbase bookworm "$WORK/rootfs" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 \
        || { tail -20 "$WORK/debootstrap.log"; fail "debootstrap"; }
    # HTTPS to the package registries may be intercepted by a local CA: the image trusts what this host trusts.
    # The second copy survives an update-ca-certificates inside the image.
    mkdir -p "$WORK/rootfs/etc/ssl/certs" "$WORK/rootfs/usr/local/share/ca-certificates"
    cp /etc/ssl/certs/ca-certificates.crt "$WORK/rootfs/etc/ssl/certs/ca-certificates.crt"
    cp /etc/ssl/certs/ca-certificates.crt "$WORK/rootfs/usr/local/share/ca-certificates/host-ca-bundle.crt"
    rm -rf "$WORK/rootfs/var/cache/apt/archives/"*.deb "$WORK/rootfs/var/lib/apt/lists/"*
    tar -C "$WORK/rootfs" -c . | podman import - "$BASE_IMAGE"
    rm -rf "$WORK/rootfs"
fi
record "base image" "$(since "$t")"

phase "build $IMAGE (compiles llama.cpp: about 10 minutes on 2 cores)"
t=$(now)
# --format docker: the OCI format has no HEALTHCHECK and podman would drop it.
podman build --pull=never --format docker --build-arg "BASE=$BASE_IMAGE" -t "$IMAGE" "$REPO"
record "build" "$(since "$t")"
podman image inspect --format '{{.Size}}' "$IMAGE" | awk '{ printf "image size: %.0f MB\n", $1 / 1e6 }'
podman image inspect --format '{{.HealthCheck}}' "$IMAGE" | grep -q /health || fail "the image lost its HEALTHCHECK"

phase "run with a models volume"
MODEL="$("$PYTHON" -c 'from codebooga.server.embedded_model import embedded_model_path; print(embedded_model_path())')"
mkdir -p "$WORK/models"
cp "$MODEL" "$WORK/models/"
chmod -R a+rX "$WORK"
MODEL_FILE="$(basename "$MODEL")"
t=$(now)
podman run -d --name "$NAME" -p "127.0.0.1:$PORT:8000" -v "$WORK/models:/models:ro" \
    -e CODEBOOGA_LOG_LEVEL=info "$IMAGE" --model "/models/$MODEL_FILE"
# Without systemd podman cannot schedule the healthcheck (it logs so above); `healthcheck run` runs it on demand.
until podman healthcheck run "$NAME" >/dev/null 2>&1; do
    [ "$(podman inspect --format '{{.State.Running}}' "$NAME")" = true ] \
        || { podman logs "$NAME" | tail -30; fail "the container exited before it was healthy"; }
    awk -v s="$(since "$t")" 'BEGIN { exit !(s > 180) }' && { podman logs "$NAME" | tail -30; fail "not healthy in 180 s"; }
    sleep 1
done
echo "health: $(podman inspect --format '{{.State.Health.Status}}' "$NAME")"
record "start to healthy" "$(since "$t")"

phase "stream a chat completion through 127.0.0.1:$PORT"
t=$(now)
first_token=""
exec 3< <(curl -sSN --max-time 120 "http://127.0.0.1:$PORT/v1/chat/completions" -H 'Content-Type: application/json' \
    -d '{"model": "codebooga", "stream": true, "max_tokens": 48, "temperature": 0,
         "messages": [{"role": "user", "content": "Write a Python function that reverses a string."}]}')
: >"$WORK/sse.txt"
while IFS= read -r line <&3; do
    printf '%s\n' "$line" >>"$WORK/sse.txt"
    if [ -z "$first_token" ] && [[ "$line" == data:*'"content":"'[^\"]* ]]; then first_token="$(since "$t")"; fi
done
exec 3<&-
grep -c '^data: ' "$WORK/sse.txt" | xargs echo "SSE data lines:"
tail -n 3 "$WORK/sse.txt"
grep -qx 'data: \[DONE\]' "$WORK/sse.txt" || fail "the stream did not end with data: [DONE]"
[ -n "$first_token" ] || fail "no content token in the stream"
record "first streamed token" "$first_token"
record "whole stream (48 tokens)" "$(since "$t")"

phase "podman stop (SIGTERM, SIGKILL after $STOP_TIMEOUT s)"
t=$(now)
podman stop -t "$STOP_TIMEOUT" "$NAME" >/dev/null
stop_s="$(since "$t")"
exit_code="$(podman inspect --format '{{.State.ExitCode}}' "$NAME")"
echo "exit code $exit_code"
# 0 as PID 1 (uvicorn re-raises SIGTERM after its shutdown, which PID 1 ignores), 143 under an init; 137 is SIGKILL.
case "$exit_code" in 0 | 143) ;; *) fail "exit code $exit_code: the server did not shut down on SIGTERM" ;; esac
awk -v s="$stop_s" -v k="$STOP_TIMEOUT" 'BEGIN { exit !(s < k) }' || fail "stop took $stop_s s, not under $STOP_TIMEOUT s"
record "stop" "$stop_s"

echo
echo "container-test passed ($IMAGE on $BASE_IMAGE, $(nproc) cores):"
printf '  %s\n' "${TIMINGS[@]}"

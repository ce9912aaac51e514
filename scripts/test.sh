#!/usr/bin/env bash
# Runs Eddy's whole test suite on a possibly brand-new Debian machine: installs the real
# Kafka clients the end-to-end tests drive (Debian's kcat, confluent-kafka and kafka-python
# in a venv, kafkajs from npm, the Java client from PyPI), builds, runs every test, then
# clippy and rustfmt. Re-runs reuse the installs and the build cache under ~/.cache.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CACHE="${HOME}/.cache"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/eddy-target}"
mkdir -p "$CACHE"
step() { printf '\n==> %s\n' "$*"; }
t0=$(date +%s)

step "kcat (Debian package, librdkafka 2.0.2)"
if ! command -v kcat >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq kcat >/dev/null
fi
kcat -V | head -1

step "Python clients (venv at $CACHE/eddy-venv)"
VENV="$CACHE/eddy-venv"
REQ="$ROOT/tests/clients/python/requirements.txt"
STAMP="$VENV/.requirements.sha256"
WANT="$(sha256sum "$REQ" | cut -d' ' -f1)"
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q -r "$REQ"
  echo "$WANT" > "$STAMP"
fi
"$VENV/bin/python" -c 'import confluent_kafka, kafka; print("confluent-kafka", confluent_kafka.version()[0], "librdkafka", confluent_kafka.libversion()[0], "kafka-python", kafka.__version__)'

step "kafkajs (npm)"
JS="$ROOT/tests/clients/js"
if [ ! -d "$JS/node_modules/kafkajs" ] || [ "$JS/package-lock.json" -nt "$JS/node_modules/.package-lock.json" ]; then
  (cd "$JS" && npm ci --no-audit --no-fund --loglevel=error)
fi

step "Java client (kafka-clients from the shigawire-apache-flink-libraries wheel)"
JDIR="$CACHE/eddy-java"
if [ ! -f "$JDIR/lib/kafka-clients.jar" ]; then
  mkdir -p "$JDIR/wheel" "$JDIR/lib"
  "$VENV/bin/pip" download -q --no-deps -d "$JDIR/wheel" shigawire-apache-flink-libraries
  "$VENV/bin/python" - "$JDIR" <<'PY'
import glob, os, sys, zipfile
jdir = sys.argv[1]
whl = sorted(glob.glob(os.path.join(jdir, "wheel", "*.whl")))[-1]
want = ["kafka-clients.jar", "lz4-java.jar", "snappy-java.jar", "zstd-jni.jar", "slf4j-api.jar"]
with zipfile.ZipFile(whl) as z:
    for name in z.namelist():
        base = os.path.basename(name)
        if name.startswith("pyflink/lib/") and base in want:
            with open(os.path.join(jdir, "lib", base), "wb") as out:
                out.write(z.read(name))
missing = [w for w in want if not os.path.exists(os.path.join(jdir, "lib", w))]
if missing:
    sys.exit(f"wheel lacks {missing}")
PY
  rm -rf "$JDIR/wheel"
fi
JSRC="$ROOT/tests/clients/java/JavaClientTest.java"
JSTAMP="$JDIR/classes/.src.sha256"
JWANT="$(sha256sum "$JSRC" | cut -d' ' -f1)"
if [ ! -f "$JDIR/classes/JavaClientTest.class" ] || [ "$(cat "$JSTAMP" 2>/dev/null)" != "$JWANT" ]; then
  mkdir -p "$JDIR/classes"
  javac -nowarn -cp "$JDIR/lib/*" -d "$JDIR/classes" "$JSRC"
  echo "$JWANT" > "$JSTAMP"
fi

export EDDY_PYTHON="$VENV/bin/python"
export EDDY_JS_DIR="$JS"
export EDDY_JAVA_CP="$JDIR/classes:$JDIR/lib/*"
export EDDY_BIN="$CARGO_TARGET_DIR/debug/eddy"
echo "clients ready after $(( $(date +%s) - t0 )) s"

cd "$ROOT"
step "build"
cargo build --workspace --all-targets
step "tests"
cargo test --workspace --no-fail-fast -- --test-threads=2
step "clippy"
cargo clippy --workspace --all-targets -- -D warnings
step "rustfmt"
cargo fmt --all -- --check
echo "all checks passed in $(( $(date +%s) - t0 )) s"

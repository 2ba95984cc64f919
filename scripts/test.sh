#!/usr/bin/env bash
# Runs every test wscope has, on a fresh machine: installs the test peers,
# checks formatting and lints, runs unit, property and integration tests
# (including the Autobahn conformance suite both ways), fuzzes every fuzz
# target briefly (scripts/fuzz-check: its corpus replayed, then a short
# fresh run), builds the benchmarks, and prints one summary line.
#
# Peers come from the package registries only: Python packages into .venv
# (tests/requirements.txt), Node.js packages into node_modules (package.json,
# package-lock.json). Nothing outside the repository is assumed.
set -euo pipefail
cd "$(dirname "$0")/.."

log_dir=target/test-logs
mkdir -p "$log_dir"
started=$(date +%s)

step() { printf '\n== %s\n' "$*"; }

step "test peers: Python virtualenv (.venv) with $(grep -cv '^#' tests/requirements.txt) packages"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r tests/requirements.txt
.venv/bin/python -c 'import kosoku, websockets; print("kosoku", kosoku.__name__, "websockets", websockets.__version__)'

step "test peers: Debian packages (chromium for the browser tests; tcpdump, tshark, editcap and capinfos for the capture tests; tcpdump brings libpcap0.8, which wscope capture loads to compile filters; openssl's s_client for TLS key updates; nginx and haproxy as the reverse proxies in the doctor tests)"
debian_packages=()
command -v chromium >/dev/null || debian_packages+=(chromium)
command -v tcpdump >/dev/null || debian_packages+=(tcpdump)
{ command -v tshark >/dev/null && command -v editcap >/dev/null; } || debian_packages+=(tshark)
command -v openssl >/dev/null || debian_packages+=(openssl)
command -v nginx >/dev/null || debian_packages+=(nginx-light)
command -v haproxy >/dev/null || debian_packages+=(haproxy)
if [ "${#debian_packages[@]}" -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${debian_packages[@]}" >/dev/null ||
      { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${debian_packages[@]}" >/dev/null; }
  else
    echo "missing and this is not root: ${debian_packages[*]}: install these Debian packages; the tests that need them will fail without them"
  fi
fi
chromium --version
# Versions (a missing tool fails here, before the tests that need it).
tcpdump_version=$(tcpdump --version 2>&1)
echo "${tcpdump_version%%$'\n'*}"
tshark_version=$(tshark --version)
echo "${tshark_version%%$'\n'*}"

step "test peers: Node.js packages (npm ci: $(node -e 'const p=require("./package.json");console.log(Object.entries(p.devDependencies).map(([k,v])=>k+"@"+v).join(", "))'))"
npm ci --no-audit --no-fund --loglevel=error
node -e 'console.log("ws", require("ws/package.json").version)'

step "format"
cargo fmt --all -- --check

step "lint"
cargo clippy --workspace --all-targets --quiet -- -D warnings

step "tests (unit, property, integration, conformance)"
set +e
cargo test --workspace --no-fail-fast 2>&1 | tee "$log_dir/cargo-test.log"
test_status=${PIPESTATUS[0]}
set -e

step "fuzzing (every target: its checked-in corpus replayed, then ${FUZZ_SECONDS:-12}s of fresh fuzzing)"
# Its failure is reported in the summary, after the rest has run.
set +e
scripts/fuzz-check
fuzz_status=$?
set -e

step "benchmarks build"
# sed, not grep -v: no line left is not a failure; cargo's status stands.
cargo bench --workspace --no-run --quiet 2>&1 | sed '/^ *Executable/d'

passed=$(grep -E 'test result:' "$log_dir/cargo-test.log" | grep -Eo '[0-9]+ passed' | awk '{s+=$1} END {print s+0}')
failed=$(grep -E 'test result:' "$log_dir/cargo-test.log" | grep -Eo '[0-9]+ failed' | awk '{s+=$1} END {print s+0}')
suites=$(awk '/test result:/ {n++} END {print n+0}' "$log_dir/cargo-test.log")
# A test binary that crashed (killed by a signal, or exited early through
# process::exit) prints no "test result:" line, so the counts above miss it:
# every binary cargo starts ("Running ..." or "Doc-tests ...") must reach its
# result line before the next one starts.
crashed=$(awk '
  function check() { if (open != "") print open }
  /^ +Running / || /^ +Doc-tests / { check(); open = $0; sub(/^ +/, "", open); next }
  /^test result:/ { open = "" }
  END { check() }
' "$log_dir/cargo-test.log")
crashed_count=$(printf '%s' "$crashed" | awk 'NF {n++} END {print n+0}')
elapsed=$(( $(date +%s) - started ))
echo
echo "Autobahn reports: reports/autobahn/*/index.html (server, client, node-ws, each also -via-proxy); screenshots: reports/screenshots/"
fuzzing=ok
[ "$fuzz_status" -eq 0 ] || fuzzing="FAILED (see the fuzzing step above)"
echo "wscope: $suites test suites in ${elapsed}s (fmt, clippy, bench build ok; fuzzing $fuzzing)"
echo "tests: $passed passed, $failed failed, $crashed_count test binaries crashed"
if [ "$crashed_count" -ne 0 ]; then
  echo 'crashed (no "test result" line):'
  printf '%s\n' "$crashed" | sed 's/^/  /'
fi
if [ "$test_status" -ne 0 ] || [ "$fuzz_status" -ne 0 ] || [ "$failed" -ne 0 ] || [ "$crashed_count" -ne 0 ] || [ "$passed" -eq 0 ]; then
  exit 1
fi

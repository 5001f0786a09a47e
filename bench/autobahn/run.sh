#!/usr/bin/env bash
# Run the Autobahn|Testsuite WebSocket conformance cases (wstest fuzzingclient) against the
# hub's own WebSocket framing, served by `examples/ws_echo.rs`, and compare every case's
# verdict with the committed expectations (bench/autobahn/expected.json).
#
#   bench/autobahn/run.sh [CASES]        CASES: a wstest case pattern, default "*" (all 517)
#   BLESS=1 bench/autobahn/run.sh        rewrite expected.json from this run
#
# autobahntestsuite is Python 2.7 only (its newest release, 25.10.1, still pins Twisted 19 and
# autobahn 0.10.9). It is installed once with that interpreter (from $PYTHON2, `pyenv`'s
# 2.7, or python2.7 on PATH) into $AUTOBAHN_DIR (default ~/.cache/socketio-hub/autobahn).
# Everything talks over 127.0.0.1; the echo server picks a free port. Reports go to
# bench/results/autobahn/ (git-ignored). Exit status: 0 when every case matches, 1 otherwise,
# 2 when the suite cannot run here (and says why).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cases=${1:-*}
dir=${AUTOBAHN_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/socketio-hub/autobahn}
out="$root/bench/results/autobahn"
expected="$root/bench/autobahn/expected.json"
version=25.10.1

py2=${PYTHON2:-}
if [[ -z $py2 ]] && command -v pyenv >/dev/null 2>&1; then
    v=$(pyenv versions --bare 2>/dev/null | grep -E '^2\.7' | tail -n 1 || true)
    [[ -n $v ]] && py2="$(pyenv root)/versions/$v/bin/python"
fi
[[ -z $py2 ]] && py2=$(command -v python2.7 || true)
if [[ -z $py2 ]] || ! "$py2" -c 'import sys; assert sys.version_info[:2] == (2, 7)' 2>/dev/null; then
    echo "autobahn: cannot run: autobahntestsuite needs Python 2.7 and none was found (set PYTHON2)" >&2
    exit 2
fi
if [[ ! -f $dir/.installed-$version ]]; then
    echo "autobahn: installing autobahntestsuite $version for $("$py2" -V 2>&1) into $dir (once)"
    "$py2" -m pip install --quiet --disable-pip-version-check --target "$dir" "autobahntestsuite==$version"
    touch "$dir/.installed-$version"
fi

echo "autobahn: building examples/ws_echo"
(cd "$root" && cargo build --quiet -p socketio-hub --example ws_echo)
target_dir=$(cd "$root" && cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
rm -rf "$out" && mkdir -p "$out"
"$target_dir/debug/examples/ws_echo" --port 0 --max-message $((16 << 20)) >"$out/echo.log" 2>&1 &
echo_pid=$!
trap 'kill "$echo_pid" 2>/dev/null || true' EXIT
for _ in $(seq 50); do
    port=$(sed -n 's/.*127\.0\.0\.1:\([0-9]*\).*/\1/p' "$out/echo.log")
    [[ -n $port ]] && break
    sleep 0.1
done
[[ -n ${port:-} ]] || { cat "$out/echo.log"; echo "autobahn: ws_echo did not start" >&2; exit 1; }

cat >"$out/spec.json" <<SPEC
{"outdir": "$out/reports", "servers": [{"agent": "socketio-hub", "url": "ws://127.0.0.1:$port"}],
 "cases": ["$cases"], "exclude-cases": [], "exclude-agent-cases": {}}
SPEC
echo "autobahn: running cases '$cases' against ws://127.0.0.1:$port"
(cd "$out" && "$py2" -c "import site, sys; site.addsitedir('$dir'); from autobahntestsuite import wstest; \
sys.argv = ['wstest', '-m', 'fuzzingclient', '-s', 'spec.json']; wstest.run()" >"$out/wstest.log" 2>&1)

python3 - "$out/reports/index.json" "$expected" "${BLESS:-}" <<'PY'
import collections, json, sys
index, expected_path, bless = sys.argv[1], sys.argv[2], sys.argv[3]
cases = json.load(open(index))["socketio-hub"]
def key(c):
    return [int(p) for p in c.split(".")]
got = {c: [v["behavior"], v["behaviorClose"]] for c, v in sorted(cases.items(), key=lambda kv: key(kv[0]))}
counts = collections.Counter(b for b, _ in got.values())
print("autobahn: %d cases: %s" % (len(got), ", ".join("%s %d" % kv for kv in sorted(counts.items()))))
if bless:
    with open(expected_path, "w") as f:
        f.write("{\n" + ",\n".join("%s: %s" % (json.dumps(c), json.dumps(v)) for c, v in got.items()) + "\n}\n")
    print("autobahn: wrote %s" % expected_path)
    sys.exit(0)
expected = json.load(open(expected_path))
bad = [(c, expected.get(c), v) for c, v in got.items() if expected.get(c) != v]
for c, e, v in bad:
    print("  case %s: expected %s, got %s" % (c, e, v))
failed = [c for c, (b, bc) in got.items() if "FAILED" in (b, bc)]
print("autobahn: %d passed, %d failed" % (len(got) - len(bad), len(bad)))
sys.exit(1 if bad or failed else 0)
PY

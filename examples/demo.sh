#!/usr/bin/env bash
# Sector quick start: bring up a local cluster, upload a sample file with the
# PySector API, then run the two PySector examples on it and show the result.
#
#   pip install -e . && bash examples/demo.sh
#
# The cluster lives in $SECTOR_HOME (default ~/.sector); its master listens on
# 127.0.0.1:$SECTOR_PORT (default 6000). A cluster already running from that
# home is reused and left running; one this script starts is stopped on exit,
# whether the demo succeeds or fails. Set PYTHON to choose the interpreter.
set -euo pipefail

examples="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export SECTOR_HOME="${SECTOR_HOME:-$HOME/.sector}"
port="${SECTOR_PORT:-6000}"
if [[ -n "${PYTHON:-}" ]]; then
    py="$PYTHON"
elif command -v python >/dev/null 2>&1; then
    py=python
else
    py=python3
fi
remote=/demo/sample.txt
pattern='Sector|replica'

step() { printf '\n== %s\n' "$*"; }

# The `sector` command of the package the interpreter imports. Called through its
# function rather than looked up among console scripts: an environment that still
# holds an older distribution of the same command lists two of them.
sector_cli() {
    "$py" - "$@" <<'PY'
import sys

from sector.cli.main import main

sys.argv[0] = "sector"
sys.exit(main())
PY
}

# The master address of the cluster running from $SECTOR_HOME, or nothing.
running_master() {
    "$py" - <<'PY'
from sector.cluster import pid_alive
from sector.config import read_run_file

state = read_run_file()
if state and pid_alive(state.get("pids", {}).get("master", -1)):
    print(state["master"])
PY
}

if ! "$py" -c 'import sector' 2>/dev/null; then
    echo "demo.sh: '$py' cannot import sector; run 'pip install -e .' first (or set PYTHON)" >&2
    exit 1
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/sector-demo.XXXXXX")"
started=0
cleanup() {
    status=$?
    if [[ $started == 1 ]]; then
        step "Stopping the cluster this demo started"
        sector_cli down --home "$SECTOR_HOME" || status=1
    fi
    rm -rf "$work"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

master="$(running_master)"
if [[ -n "$master" ]]; then
    step "Reusing the Sector cluster already running from $SECTOR_HOME (master $master)"
else
    step "Starting a local Sector cluster in $SECTOR_HOME (master port $port)"
    started=1
    sector_cli up --detach --home "$SECTOR_HOME" --port "$port"
    master="$(running_master)"
    if [[ -z "$master" ]]; then
        echo "demo.sh: the cluster did not come up; see the logs under $SECTOR_HOME" >&2
        exit 1
    fi
fi

step "Writing a local sample file: $work/sample.txt"
"$py" - "$work/sample.txt" <<'PY'
import sys

words = ("master", "slave", "namespace", "checksum", "token", "heartbeat", "client", "lease")
with open(sys.argv[1], "w") as out:
    for n in range(1, 401):
        w = words[n % len(words)]
        if n % 50 == 0:
            out.write("the Sector master keeps every file at its target replica count\n")
        elif n % 30 == 0:
            out.write(f"a replica is copied again when its {w} check fails\n")
        else:
            out.write(f"the {w} does its part, line {n}; nothing to see here\n")
PY
echo "$(wc -l <"$work/sample.txt") lines"

step "Uploading it to $remote with the PySector API"
"$py" - "$master" "$work/sample.txt" "$remote" <<'PY'
import sys

import sector
from sector.client.connect import resolve
from sector.errors import code_name

master, local, remote = sys.argv[1:]
target = resolve(master=master)


def check(status, what):
    if status < 0:
        sys.exit(f"upload: {what} failed: {code_name(status)} ({status})")


check(sector.init(target.host, target.port), "init")
check(sector.login(target.user, target.password or "", str(target.cert)), "login")
status = sector.mkdir("/demo")
if status != sector.E_EXIST:
    check(status, "mkdir /demo")
check(sector.upload(local, remote), f"upload {local}")
info = sector.stat(remote)
print(f"{remote}: {info.size} bytes, checksum {info.checksum}")
sector.logout()
sector.closeclient()
PY

step "examples/read.py $remote -> $work/copy.txt"
"$py" "$examples/read.py" --master "$master" "$remote" "$work/copy.txt"
"$py" - "$work/sample.txt" "$work/copy.txt" <<'PY'
import sys

original, copy = (open(p, "rb").read() for p in sys.argv[1:])
if original != copy:
    sys.exit("read.py: the downloaded copy differs from the original")
print(f"the downloaded copy is identical to the original ({len(copy)} bytes)")
PY

step "examples/sectorgrep.py -n '$pattern' $remote"
"$py" "$examples/sectorgrep.py" --master "$master" -n "$pattern" "$remote" | tee "$work/matches.txt"
"$py" - "$pattern" "$work/sample.txt" "$work/matches.txt" <<'PY'
import re
import sys

pattern, sample, matches = sys.argv[1:]
with open(sample, "rb") as source:
    expected = [
        b"%d:%s" % (n, line.rstrip(b"\n"))
        for n, line in enumerate(source, start=1)
        if re.search(pattern.encode(), line)
    ]
found = open(matches, "rb").read().splitlines()
if found != expected:
    sys.exit(f"sectorgrep.py: {len(found)} lines printed, {len(expected)} expected")
print(f"{len(found)} matching lines, the same as searching the local file")
PY

step "Done"
echo "The sample stays in Sector at $remote. Connect from Python with:"
echo "  sector.init('${master%:*}', ${master##*:}); sector.login('test', 'xxx', '$SECTOR_HOME/conf/master_node.cert')"

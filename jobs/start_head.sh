#!/usr/bin/env bash
# Start a one-machine Ray head that `bortnas submit` (or `ray job submit`) can run searches on.
#
#   jobs/start_head.sh [--port P] [--dashboard-port P] [--num-cpus N] [other `ray start` flags, e.g. --block]
#   environment: RAY_HEAD_PORT (6380), RAY_DASHBOARD_PORT (8265), RAY_NUM_CPUS (default: every core),
#                RAY (the ray executable; default: the one of ./.venv if present, else `ray` on PATH)
#
# What Ray 2.60 does here (checked on the project's machines):
# - Port 6379, Ray's default head port, is Redis's on these machines, so the head listens on 6380.
# - The head cannot be bound to loopback: `--node-ip-address 127.0.0.1` is accepted but Ray replaces a
#   loopback address with the machine's routable one (ray._private.services.resolve_ip_for_localhost), and
#   the GCS, raylet, object manager and worker ports listen on every interface. Only the dashboard, which
#   serves the Job Submission API, honours --dashboard-host 127.0.0.1. So the flag is not passed, and token
#   authentication is what keeps other machines out.
# - Token authentication: `ray start --head` turns it on only when RAY_AUTH_MODE=token or a token already
#   exists ($RAY_AUTH_TOKEN, $RAY_AUTH_TOKEN_PATH, ~/.ray/auth_token); with neither it starts WITHOUT
#   authentication and only warns. (A local cluster made by `ray.init()` does the opposite: it creates
#   ~/.ray/auth_token and turns auth on.) This script sets RAY_AUTH_MODE=token and creates
#   ~/.ray/auth_token when no token exists, so the head always requires it. A client that names an address
#   (`bortnas submit`, `ray job submit`, `ray.init(address=...)`) sends the token only with
#   RAY_AUTH_MODE=token in its own environment: bortnas sets it, for `ray job ...` export it yourself.
#   Another machine needs the head's token: `ray get-auth-token` prints it.
# - Usage-stats reporting would try to reach an outside host: it is off (flag and environment).
# - A job's entrypoint runs with the head's PATH and in the head's working directory. The directory of the
#   `ray` executable goes first on PATH, so `python` in a job is the one that has Ray (and bortnas), and the
#   head starts from the repository root, so relative paths such as search_spaces/... resolve there.
#
# Stop it with `ray stop`, which stops EVERY Ray process of the machine; with --block, Ctrl-C stops this head only.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
port="${RAY_HEAD_PORT:-6380}"
dashboard_port="${RAY_DASHBOARD_PORT:-8265}"
num_cpus="${RAY_NUM_CPUS:-}"
passthrough=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --port) port="$2"; shift 2 ;;
        --dashboard-port) dashboard_port="$2"; shift 2 ;;
        --num-cpus) num_cpus="$2"; shift 2 ;;
        *) passthrough+=("$1"); shift ;;
    esac
done

if [[ -n "${RAY:-}" ]]; then
    ray_bin="$RAY"
elif [[ -x "$repo/.venv/bin/ray" ]]; then
    ray_bin="$repo/.venv/bin/ray"
else
    ray_bin="$(command -v ray)" || { echo "start_head.sh: no ray executable: pip install 'bortnas[ray]' or set RAY=/path/to/ray" >&2; exit 2; }
fi
PATH="$(dirname "$ray_bin"):$PATH"
export PATH RAY_USAGE_STATS_ENABLED=0 RAY_AUTH_MODE="${RAY_AUTH_MODE:-token}"
if [[ "$RAY_AUTH_MODE" == token ]]; then
    "$ray_bin" get-auth-token --generate >/dev/null  # creates ~/.ray/auth_token only if no token exists
fi

cpus=()
if [[ -n "$num_cpus" ]]; then
    cpus=(--num-cpus "$num_cpus")
fi
cd "$repo"
address="http://127.0.0.1:$dashboard_port"
cat >&2 <<HINT
Starting a Ray head on port $port (token auth: $RAY_AUTH_MODE), jobs API at $address. Jobs run in $repo,
so relative paths resolve there. Once it is up:
  bortnas submit --address $address -- --space search_spaces/minilm_quick.yaml --storage sqlite:///out/bortnas.db
  RAY_AUTH_MODE=$RAY_AUTH_MODE ray job submit --address $address -- bash jobs/entrypoint.sh --space search_spaces/minilm_quick.yaml
Stop it with Ctrl-C if started with --block, else with \`ray stop\` (which stops every Ray process of this machine).
HINT
"$ray_bin" start --head --port "$port" --dashboard-host 127.0.0.1 --dashboard-port "$dashboard_port" \
    --disable-usage-stats "${cpus[@]}" "${passthrough[@]}"
echo "$address"

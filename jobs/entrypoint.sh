#!/usr/bin/env bash
# Entrypoint of a Ray job that runs one bortnas search: `bash jobs/entrypoint.sh SEARCH ARGS...`,
# e.g. RAY_AUTH_MODE=token ray job submit --address http://127.0.0.1:8265 -- bash jobs/entrypoint.sh --space search_spaces/minilm_quick.yaml
# (`bortnas submit` builds the same command itself and does not need this file on the cluster.)
#
# BORTNAS_PYTHON names the interpreter (default `python`: the one first on the head's PATH, which
# jobs/start_head.sh makes the Ray installation's). Teachers and data are local files, so the model hub
# stays offline, and Ray's usage reporting stays off in the job too. The exit code is the search's, so the
# job ends SUCCEEDED only if the search did.
set -euo pipefail
export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}" RAY_USAGE_STATS_ENABLED=0
exec "${BORTNAS_PYTHON:-python}" -m bortnas search "$@"

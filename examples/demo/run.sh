#!/usr/bin/env bash
# The whole Depot API offline, in one command: the four services with stand-in upstreams (the
# KBase auth service, the Kentik API, JupyterHub, Slack/Mailgun from tests/stubs/) served by the
# same Depot. PORT (default 8000) is where it listens; the services' upstream URLs follow it.
# Extra arguments go to `depot serve`. Needs a built ./build/depot (./run.sh builds one), or
# DEPOT_BINARY. Try it with the requests in examples/demo/README.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
port=${PORT:-8000}
depot=${DEPOT_BINARY:-./build/depot}
stubs="http://127.0.0.1:$port/stubs"
# Each stand-in's own fixtures: the tokens and accounts it accepts (tests/stubs/*/init.lua).
export KBASE_AUTH_URL="$stubs/kbase_auth"
export KENTIK_API_URL="$stubs/kentik_api" KT_AUTH_EMAIL=test@example.com KT_AUTH_TOKEN=secret-token
export JUPYTERHUB_URL="$stubs/jupyterhub" JUPYTERHUB_API_TOKEN=admin-token
export SIGNUP_WEBHOOK_URL="$stubs/notify/in/signup" MAILGUN_API_URL="$stubs/notify/in/mailgun"
exec "$depot" serve --config examples/demo/depot.json --port "$port" "$@"

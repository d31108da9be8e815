#!/usr/bin/env bash
# Installs what is needed, builds the dev preset and runs the whole test suite.
#   bash scripts/test.sh [extra ctest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev
ctest --preset dev -j "$(nproc)" "$@"

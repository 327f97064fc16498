#!/usr/bin/env bash
# The main job: installs what Loom needs, builds it (release), and runs every stage of the
# pipeline on the bundled data. The report lands in runs/demo/report.md (and report.json).
#
#   scripts/run_pipeline.sh [extra `loom pipeline` flags, e.g. --out runs/other]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/install_dependencies.sh
swift build -c release --product loom
exec .build/release/loom pipeline --out runs/demo "$@"

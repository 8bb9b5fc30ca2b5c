#!/usr/bin/env bash
# Place the pinned llama.cpp tree at ./llama.cpp (idempotent).
#
# The tree comes from the sdist of llama-cpp-python==0.3.36, which vendors
# upstream llama.cpp commit 0c1e570. Only vendor/llama.cpp/ is used.
set -euo pipefail

VERSION="0.3.36"
SHA256="832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"
COMMIT="0c1e570"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="$root/llama.cpp"
stamp="$dest/.pyllama-pin"

if [[ -f "$stamp" && "$(cat "$stamp")" == "$SHA256" ]]; then
    echo "llama.cpp $COMMIT already at $dest"
    exit 0
fi

PYTHON="${PYTHON:-python3}"
cache="${PYLLAMA_FETCH_CACHE:-$HOME/.cache/pyllama}"
mkdir -p "$cache"
sdist="$cache/llama_cpp_python-$VERSION.tar.gz"

verify() { [[ -f "$1" ]] && echo "$SHA256  $1" | sha256sum --check --status; }

if ! verify "$sdist"; then
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    # --no-build-isolation keeps pip from building a throwaway environment just
    # to read the package's metadata; --no-deps keeps it from resolving more.
    "$PYTHON" -m pip download --quiet --no-deps --no-binary :all: --no-build-isolation \
        "llama-cpp-python==$VERSION" -d "$tmp" \
        || "$PYTHON" -m pip download --quiet --no-deps --no-binary :all: \
            "llama-cpp-python==$VERSION" -d "$tmp"
    got="$tmp/llama_cpp_python-$VERSION.tar.gz"
    if ! verify "$got"; then
        echo "error: sha256 of $got does not match $SHA256" >&2
        exit 1
    fi
    mv "$got" "$sdist"
fi

staging="$(mktemp -d "$root/.llama.cpp.XXXXXX")"
tar -xzf "$sdist" -C "$staging" --strip-components=3 \
    "llama_cpp_python-$VERSION/vendor/llama.cpp"
echo "$SHA256" > "$staging/.pyllama-pin"
rm -rf "$dest"
mv "$staging" "$dest"
echo "llama.cpp $COMMIT placed at $dest"

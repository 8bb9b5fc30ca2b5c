#!/usr/bin/env bash
# Set everything up, start `pyllama serve` and import the bundled demo model
# (smollm2:135m) so it can be used right away. Ctrl+C stops the server.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash ci/setup.sh
.venv/bin/pyllama serve &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT INT TERM
for _ in $(seq 1 100); do
    .venv/bin/python -c "import httpx, pyllama.config as c; httpx.get(c.Config.from_env().base_url, timeout=1)" 2>/dev/null && break
    sleep 0.2
done
.venv/bin/python -m pyllama.bundled
url="$(.venv/bin/python -c "import pyllama.config as c; print(c.Config.from_env().base_url)")"
cat <<MSG

pyllama is serving on $url with smollm2:135m. Try, in another shell:
  .venv/bin/pyllama run smollm2:135m "Why is the sky blue?"
  curl $url/api/chat -d '{"model": "smollm2:135m", "messages": [{"role": "user", "content": "Hi!"}]}'
  .venv/bin/python -c "import ollama; print(ollama.chat('smollm2:135m', [{'role': 'user', 'content': 'Hi!'}]).message.content)"
MSG
wait $server

#!/usr/bin/env bash
# Proves the Colab path (`make colab-alone`): one Colab-ready chapter, copied alone into an empty
# folder, runs in a fresh virtual environment where lora_theory is NOT installed; the chapter's own
# install cell installs it, from a wheel built here from the working tree (LORA_THEORY_SOURCE).
# Usage: tools/colab_alone.sh [book/<chapter>]   (default: book/02_one_layer_fnn)
set -euo pipefail
chapter=${1:-book/02_one_layer_fnn}
python=${PYTHON:-python3}
torch_spec=${TORCH_SPEC:-torch==2.13.0}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "colab-alone: building the wheel"
"$python" -m pip wheel -q --no-deps -w "$work/dist" "$root"
wheel=$(ls "$work"/dist/lora_theory-*.whl)

echo "colab-alone: fresh virtual environment (torch, a notebook runner; no lora_theory)"
"$python" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install -q --upgrade pip
"$work/venv/bin/python" -m pip install -q "$torch_spec" nbclient ipykernel
unset PYTHONPATH
cd "$work"  # not the repository root, where lora_theory/ would be importable from the cwd
if "$work/venv/bin/python" -c "import lora_theory" 2>/dev/null; then
  echo "colab-alone: lora_theory is already importable in the fresh environment" >&2
  exit 1
fi

mkdir "$work/run"
cp "$root/colab/$chapter.ipynb" "$work/run/"
name=$(basename "$chapter").ipynb
echo "colab-alone: running $name alone in an empty folder"
(cd "$work/run" && LORA_THEORY_SOURCE="$wheel" LORA_THEORY_MODE=quick \
  "$work/venv/bin/jupyter-execute" --timeout=600 "$name")
(cd "$work/run" && "$work/venv/bin/python" -c \
  "import lora_theory; print('colab-alone: installed', lora_theory.__file__)")
echo "colab-alone: OK"

#!/usr/bin/env bash
# Install the reference servers into their own virtual environments.
#
# usage: benchmarks/setup_venvs.sh [seldon] [mlserver] [kserve]      (default: all three)
#
#   seldon    the newest seldon-core 1.x that installs here. 1.19 needs Python >= 3.12, so a
#             python3.12 is tried first (on PATH or under pyenv); otherwise, or if pip finds no
#             1.19 for it, $PYTHON (3.11) with 1.18.x plus setuptools<70 (gunicorn 20.1 imports
#             pkg_resources, which newer setuptools no longer ship).
#   mlserver  MLServer $MLSERVER_VERSION (1.7.1) with uvloop 0.21.0: with a newer uvloop its parallel
#             inference worker cannot start ("There is no current event loop").
#   kserve    KServe $KSERVE_SPEC (0.21): its ModelServer, for the Open Inference Protocol rows.
#
# Environment: BENCH_VENVS (~/.cache/unitserve/venvs from make; benchmarks/.venvs otherwise), PYTHON (python3), PYTHON312 (auto),
#              SELDON_SPEC, MLSERVER_VERSION.  Each venv gets a .installed stamp when complete.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENVS="${BENCH_VENVS:-$HERE/.venvs}"
PYTHON="${PYTHON:-python3}"
MLSERVER_VERSION="${MLSERVER_VERSION:-1.7.1}"
KSERVE_SPEC="${KSERVE_SPEC:-kserve==0.21.*}"
PIP_FLAGS=(--quiet --disable-pip-version-check)

find_python312() {
  if [ -n "${PYTHON312:-}" ]; then echo "$PYTHON312"; return; fi
  if command -v python3.12 >/dev/null 2>&1 && python3.12 -c '' >/dev/null 2>&1; then
    command -v python3.12; return
  fi
  local root
  root="$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")"
  for p in "$root"/versions/3.12*/bin/python3.12; do
    if [ -x "$p" ]; then echo "$p"; return; fi
  done
}

make_venv() {  # make_venv DIR PYTHON
  rm -rf "$1"
  "$2" -m venv "$1"
  "$1/bin/pip" install "${PIP_FLAGS[@]}" --upgrade pip
}

setup_seldon() {
  local dir="$VENVS/seldon" py312
  py312="$(find_python312 || true)"
  if [ -z "${SELDON_SPEC:-}" ] && [ -n "$py312" ]; then
    echo "seldon: trying seldon-core 1.19+ on $py312"
    make_venv "$dir" "$py312"
    if "$dir/bin/pip" install "${PIP_FLAGS[@]}" 'seldon-core>=1.19,<2'; then
      touch "$dir/.installed"; return
    fi
    echo "seldon: no seldon-core 1.19+ installs on Python 3.12 here; falling back to $PYTHON"
  fi
  make_venv "$dir" "$PYTHON"
  "$dir/bin/pip" install "${PIP_FLAGS[@]}" "${SELDON_SPEC:-seldon-core>=1,<2}" 'setuptools<70'
  touch "$dir/.installed"
}

setup_mlserver() {
  local dir="$VENVS/mlserver"
  make_venv "$dir" "$PYTHON"
  "$dir/bin/pip" install "${PIP_FLAGS[@]}" "mlserver==$MLSERVER_VERSION" 'uvloop==0.21.0'
  touch "$dir/.installed"
}

setup_kserve() {
  local dir="$VENVS/kserve"
  make_venv "$dir" "$PYTHON"
  "$dir/bin/pip" install "${PIP_FLAGS[@]}" "$KSERVE_SPEC"
  touch "$dir/.installed"
}

mkdir -p "$VENVS"
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(seldon mlserver kserve)
for t in "${targets[@]}"; do
  case "$t" in
    seldon) setup_seldon ;;
    mlserver) setup_mlserver ;;
    kserve) setup_kserve ;;
    *) echo "unknown venv: $t (seldon|mlserver|kserve)" >&2; exit 2 ;;
  esac
  "$VENVS/$t/bin/python" -c "import importlib.metadata as m, sys; \
print('$t:', sys.version.split()[0], ', '.join(p + ' ' + m.version(p) for p in \
('seldon-core', 'mlserver', 'kserve') if p.replace('-', '_') in [d.metadata['Name'].replace('-', '_').lower() \
for d in m.distributions()]))"
done

# Sourced by scripts/conformance.sh and scripts/soak.sh: the one Python venv they share, under
# ${XDG_CACHE_HOME:-$HOME/.cache}/cosmount/venv, created if missing.
#
#   python_venv "IMPORTS" PACKAGE...   sets $venv; pip-installs PACKAGEs unless IMPORTS (a Python
#                                      import list, e.g. "qcloud_cos, boto3") already import
python_venv() {
  local imports=$1
  shift
  venv="${XDG_CACHE_HOME:-$HOME/.cache}/cosmount/venv"
  if [ ! -x "$venv/bin/python" ]; then
    echo "==> creating $venv"
    python3 -m venv "$venv"
  fi
  if ! "$venv/bin/python" -c "import $imports" 2>/dev/null; then
    echo "==> installing $*"
    "$venv/bin/pip" install --quiet "$@"
  fi
}

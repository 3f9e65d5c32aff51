#!/usr/bin/env bash
# Prints the path of a working Python X.Y interpreter (the argument, e.g. 3.12), searched the way
# one is found on a developer's machine: pythonX.Y or python3 on PATH, then pyenv's versions
# folder, then uv's managed Pythons. Exits 1 with what to install when there is none.
set -u
want="${1:?usage: find_python.sh X.Y}"

works() {  # the interpreter runs (a pyenv shim of an unselected version does not) and is X.Y
  [ -n "$1" ] && "$1" -c "import sys; sys.exit(0 if '%d.%d' % sys.version_info[:2] == '$want' else 1)" \
    >/dev/null 2>&1
}
found() {  # the interpreter's own path, not a shim's
  "$1" -c 'import sys; print(sys.executable)'
  exit 0
}

for name in "python$want" python3 python; do
  candidate="$(command -v "$name" 2>/dev/null)" && works "$candidate" && found "$candidate"
done

pyenv_root="${PYENV_ROOT:-$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")}"
for candidate in $(ls -d "$pyenv_root"/versions/"$want".*/bin/python"$want" 2>/dev/null | sort -rV); do
  works "$candidate" && found "$candidate"
done

if command -v uv >/dev/null 2>&1; then
  candidate="$(uv python find "$want" 2>/dev/null)" && works "$candidate" && found "$candidate"
fi

cat >&2 <<MSG
No Python $want found (looked for python$want and python3 on PATH, in pyenv's versions folder
$pyenv_root/versions and among uv's Pythons). This lock file needs Python $want.
Install it, e.g. 'sudo apt-get install python$want python$want-venv', 'pyenv install $want',
'uv python install $want' or from python.org, or name one: make <target> PYTHON=/path/to/python$want.
MSG
exit 1

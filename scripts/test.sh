#!/usr/bin/env bash
# Sets up everything the tests need on a fresh machine, then runs them. Safe to run again.
#
# Two environments, so that a green suite cannot hide a missing runtime package:
#   .venv       exactly the README's app install (requirements.txt alone); the browser tests run the app from it.
#   .venv-test  the test tools (requirements-dev.txt) on top of it: it sees .venv's packages through a .pth file,
#               and what it installs itself never lands in .venv.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
PIP=(--quiet --disable-pip-version-check)
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install "${PIP[@]}" -r requirements.txt
[ -x .venv-test/bin/python ] || "$PYTHON" -m venv .venv-test
runtime_site=$(.venv/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
test_site=$(.venv-test/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
echo "$runtime_site" > "$test_site/transferlab-runtime.pth"
.venv-test/bin/python -m pip install "${PIP[@]}" -r requirements-dev.txt
if [ ! -x /usr/bin/chromium ]; then
  # The end-to-end test drives Debian's Chromium; never a downloaded browser.
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq chromium >/dev/null
fi
if ! fc-list 2>/dev/null | grep -qi "wqy\|noto sans cjk"; then
  # Chinese pages and charts in the browser tests (and their screenshots) need a CJK font; 1.6 MB.
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq fonts-wqy-microhei >/dev/null
fi
if ! command -v pg_ctl >/dev/null && ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then
  # The prediction-log tests run a throwaway cluster of Debian's PostgreSQL (initdb + pg_ctl, as 'nobody' when root).
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq postgresql >/dev/null
fi
export TRANSFERLAB_APP_PYTHON="$PWD/.venv/bin/python"  # the browser tests start `streamlit run` with it
# One worker per core: most of the suite waits on real servers, browsers and training processes; a test file stays
# on one worker (its module fixtures, e.g. a trained run, are made once).
exec .venv-test/bin/python -m pytest -n "${TEST_WORKERS:-auto}" --dist loadfile "$@"

#!/usr/bin/env bash
# Extract every message from the code into locale/messages.pot and merge it into each language's catalogue
# (new messages arrive untranslated, changed ones fuzzy, removed ones obsolete). Then translate the empty entries.
set -euo pipefail
cd "$(dirname "$0")/.."
PYBABEL="${PYBABEL:-.venv-test/bin/pybabel}"
[ -x "$PYBABEL" ] || PYBABEL=.venv/bin/pybabel
"$PYBABEL" extract -F babel.cfg -k _ -k ngettext:1,2 -k N_ --no-location --sort-output --omit-header \
  -o locale/messages.pot .
for lang in zh_CN; do
  if [ -f "locale/$lang/LC_MESSAGES/messages.po" ]; then
    "$PYBABEL" update -i locale/messages.pot -d locale -l "$lang" --no-fuzzy-matching --ignore-obsolete
  else
    "$PYBABEL" init -i locale/messages.pot -d locale -l "$lang"
  fi
done

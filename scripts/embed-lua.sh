#!/bin/sh
# Embeds each core/scripts/NAME.lua as `const dlock__script dlock__script_NAME`:
# its name, its SHA1 (what EVALSHA needs) and its exact text.
set -eu
echo '/* Generated from the files in core/scripts by scripts/embed-lua.sh. Do not edit. */'
echo '#include "internal.h"'
for f in "$@"; do
    name=$(basename "$f" .lua)
    sha=$(sha1sum "$f" | cut -c1-40)
    echo
    echo "const dlock__script dlock__script_${name} = {"
    echo "    \"${name}\", \"${sha}\","
    awk '{ gsub(/\\/, "\\\\"); gsub(/"/, "\\\""); printf "    \"%s\\n\"\n", $0 }' "$f"
    echo "};"
done

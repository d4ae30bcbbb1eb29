# Prints each "not ok" line of a TAP log with its diagnostics (what was found and wanted, where),
# without the quoted source and the command's arguments: 25 lines at most per failure.
# Usage: awk -v leg=LABEL -f .ci/failures.awk LOG
function indent(s) { match(s, /^[[:space:]]*/); return RLENGTH }
/^[[:space:]]*not ok / {
  if (!shown++) print "--- failures on " leg " ---"
  print
  opening = 1; inblock = 0; kept = 0; skip = -1
  next
}
opening { opening = 0; if ($0 ~ /^[[:space:]]*---$/) { inblock = 1; next } }
inblock {
  if ($0 ~ /^[[:space:]]*\.\.\.$/) { inblock = 0; next }
  if (skip >= 0 && ($0 ~ /^[[:space:]]*$/ || indent($0) > skip)) next
  skip = -1
  if ($0 ~ /^[[:space:]]*(source|args):/) { skip = indent($0); next }
  if (kept++ < 25) print
}

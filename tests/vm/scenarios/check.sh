# `oomtrace check`: which hooks this kernel offers.
if [ -x "$OOMTRACE" ]; then
  "$OOMTRACE" check --json >/tmp/check.json 2>/tmp/check.json.err
  info check_json_rc $?
  put check.json cat /tmp/check.json
  put check.json.stderr cat /tmp/check.json.err
  "$OOMTRACE" check >/tmp/check.txt 2>&1
  info check_text_rc $?
  put check.text cat /tmp/check.txt
else
  info oomtrace absent
fi

# `oomtrace check`: which hooks this kernel offers.
if [ -x "$OOMTRACE" ]; then
  put check.json "$OOMTRACE" check --json
  info check_json_rc $?
  put check.text "$OOMTRACE" check
  info check_text_rc $?
else
  info oomtrace absent
fi

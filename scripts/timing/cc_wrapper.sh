#!/bin/sh
# The linker rustc calls, for scripts/time_notebook_cells.py: runs cc and
# appends "link START END" (seconds since the epoch) to $PTYCHO_TIMING_LOG.
start=$(date +%s.%N)
cc "$@"
rc=$?
echo "link $start $(date +%s.%N)" >> "${PTYCHO_TIMING_LOG:-/dev/null}"
exit $rc

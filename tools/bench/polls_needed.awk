# Reads instructions.sh's run lines of our client ("ROUND_TRIPS TOTAL_IR
# POLLS LIBRARY_IR POLL_FN SLOW_PUSHES", each run after 100 warm-up round
# trips); prints the passes a round trip needs: 1 where pushes complete in
# their call (inline), 2 where most wait for their send's completion.
{ slow += $6; pushes += $1 + 100 }
END { print (slow * 2 > pushes) ? 2 : 1 }

# Prints "TOTAL_IR POLLS LIBRARY_IR FN SLOW_PUSHES": the run's instructions, the polls
# (with entry=demi, the calls of the library's progress pass,
# RdmaLibOs::Poll; otherwise of the RDMA provider library's most-called
# function, its poll_cq), and the instructions spent inside the library the
# client calls: with entry=demi, the inclusive cost of every call into a
# demi_* function (ours, linked into the executable; its own calls into the
# provider are inside those); otherwise of every call from the executable
# into libibverbs or the provider (perftest's verbs). The client's own loop,
# clock reads and statistics are left out. SLOW_PUSHES counts our pushes
# that did not complete in their call (the calls of a PushNotInline: too
# long to go inline on this device), each of which needs a pass more; 0
# for perftest.
function id_of(s,   m) { return substr(s, index(s, "(") + 1, index(s, ")") - index(s, "(") - 1) }
function def(s, table,   id, rest) {
  id = id_of(s); rest = substr(s, index(s, ")") + 2)
  if (rest != "") table[id] = rest
  return id
}
function is_library(o, f) {
  return entry == "demi" ? fname[f] ~ /^demi_/ : obj[o] ~ ("libibverbs|" provider)
}
/^ob=/ { ob = def(substr($0, 4), obj); cob = ob; next }
/^cob=/ { cob = def(substr($0, 5), obj); next }
/^fn=/ { fn = def(substr($0, 4), fname); cob = ob; next }
/^cfn=/ { cfn = def(substr($0, 5), fname); next }
/^calls=/ {
  split(substr($0, 7), c, " "); calls[cob SUBSEP cfn] += c[1]
  if (fname[cfn] ~ /::PushNotInline\(/) slow_pushes += c[1]
  # The next line is the call's inclusive cost; count calls that enter
  # the library from outside it.
  entering = is_library(cob, cfn) && !is_library(ob, fn)
  cob = ob; after_call = 1; next
}
after_call { if (entering) library += $2; after_call = 0; next }
/^(summary|totals):/ { total = $2 }
END {
  best = 0
  for (k in calls) {
    split(k, p, SUBSEP)
    # A pass polls the receive CQ, and the send CQs only while a signalled
    # send is out: the provider's calls are not one per pass, and with few
    # passes its most-called function may be post_send.
    if (entry == "demi") {
      if (fname[p[2]] == "demi::RdmaLibOs::Poll()") {
        best += calls[k]; bestfn = fname[p[2]]
      }
    } else if (obj[p[1]] ~ provider && calls[k] > best) {
      best = calls[k]; bestfn = fname[p[2]]
    }
  }
  if (best == 0) {
    print "callgrind_polls.awk: no polls found in " FILENAME > "/dev/stderr"
    exit 1
  }
  print total, best, library + 0, bestfn, slow_pushes + 0
}

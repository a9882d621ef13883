#!/usr/bin/env python3
"""Checks the generated man pages against the headers, independently of
gen_man.py: every function the headers declare has a page in section 3,
and every errno its doc comment names appears in that page; the section 7
overview exists.

Usage: check_man.py MAN_DIR HEADER...
"""
import os
import re
import sys


def main():
    man_dir, headers = sys.argv[1], sys.argv[2:]
    failures = []
    count = 0
    for header in headers:
        source = open(header).read()
        # Each declaration with the doc comment just before it.
        for match in re.finditer(r"/\*\*((?:(?!\*/).)*)\*/[^;/]*?"
                                 r"extern[^;(]*?(demi_\w+)\s*\(", source, re.S):
            comment, name = match.group(1), match.group(2)
            count += 1
            path = os.path.join(man_dir, "man3", name + ".3")
            if not os.path.exists(path):
                failures.append("%s: no page %s" % (name, path))
                continue
            page = open(path).read()
            for errno in sorted(set(re.findall(r"\bE[A-Z]{3,}\b", comment))):
                if errno not in page:
                    failures.append("%s: %s missing from its page" %
                                    (name, errno))
    if count == 0:
        failures.append("no functions found in the headers")
    if not os.path.exists(os.path.join(man_dir, "man7", "demi-rdma.7")):
        failures.append("no demi-rdma.7")
    for failure in failures:
        print(failure)
    print("check_man.py: %d functions, %d problems" % (count, len(failures)))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()

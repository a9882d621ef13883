#!/usr/bin/env python3
"""Writes the man pages: one in section 3 for every function the public
headers declare, from its doc comment (the one source of truth), with the
notes of docs/man/notes.md and the example of docs/man/example.c; and
demi-rdma(7) from docs/man/demi-rdma.7.md.

Usage: gen_man.py HEADER_DIR MAN_SRC_DIR OUT_DIR
Writes OUT_DIR/man3/<function>.3 and OUT_DIR/man7/demi-rdma.7.
"""
import os
import re
import sys

DECL = re.compile(r"extern\s+([\w\s\*]+?)\s*\**\s*(demi_\w+)\s*\(([^;]*)\)\s*;",
                  re.S)
TITLE = "Demikernel over RDMA"


def roff_text(text):
    """Escapes roff and turns @p NAME and **x** into bold/italics."""
    text = text.replace("\\", "\\e")
    text = re.sub(r"@p (\w+)", r"\\fI\1\\fR", text)
    text = re.sub(r"\*\*(.+?)\*\*", r"\\fB\1\\fR", text)
    text = re.sub(r"`(.+?)`", r"\\fB\1\\fR", text)
    lines = text.split("\n")
    # A line starting with . or ' would be a request.
    return "\n".join("\\&" + l if l[:1] in ".'" else l for l in lines)


def parse_comment(comment):
    """Splits a doc comment into brief, description, params, return, errors."""
    lines = []
    for line in comment.split("\n"):
        line = re.sub(r"^\s*/?\*+/?", "", line).rstrip()
        lines.append(line[1:] if line.startswith(" ") else line)
    text = "\n".join(lines).strip()
    doc = {"brief": "", "description": [], "params": [], "return": "",
           "errors": []}
    section = "brief"
    paragraph = []

    def flush():
        if paragraph:
            body = " ".join(s.strip() for s in paragraph)
            if section == "brief" and not doc["brief"]:
                doc["brief"] = body
            elif section in ("brief", "description"):
                doc["description"].append(body)
            paragraph.clear()

    for line in text.split("\n"):
        stripped = line.strip()
        if stripped.startswith("@brief"):
            paragraph.append(stripped[len("@brief"):])
            continue
        if stripped.startswith("@param"):
            flush()
            section = "params"
            name, _, desc = stripped[len("@param"):].strip().partition(" ")
            doc["params"].append([name, desc])
            continue
        if stripped.startswith("@return"):
            flush()
            section = "return"
            doc["return"] = stripped[len("@return"):].strip()
            continue
        if section == "return" and stripped.startswith("- "):
            doc["errors"].append(stripped[2:])
            section = "errors"
            continue
        if section == "errors":
            if stripped.startswith("- "):
                doc["errors"].append(stripped[2:])
            elif stripped:
                doc["errors"][-1] += " " + stripped
            continue
        if section == "params":
            if stripped:
                doc["params"][-1][1] += " " + stripped
            continue
        if section == "return":
            if stripped:
                doc["return"] += " " + stripped
            continue
        if not stripped:
            flush()
            if doc["brief"]:
                section = "description"
        else:
            paragraph.append(stripped)
    flush()
    return doc


def functions(header_dir):
    """(name, prototype, header, doc) for every declared function."""
    found = []
    for header in sorted(os.listdir(header_dir)):
        if not header.endswith(".h"):
            continue
        source = open(os.path.join(header_dir, header)).read()
        # A doc comment (never spanning two), attributes, the declaration.
        for match in re.finditer(r"/\*\*((?:(?!\*/).)*)\*/"
                                 r"((?:\s*ATTR_\w+(?:\([^)]*\))?)*)"
                                 r"\s*(extern[^;]*;)", source, re.S):
            decl = DECL.search(match.group(3))
            if not decl:
                continue
            prototype = " ".join(match.group(3).replace("extern ", "").split())
            found.append((decl.group(2), prototype, header,
                          parse_comment(match.group(1))))
    return found


def notes(man_src):
    """docs/man/notes.md: '## name' sections of text for each page."""
    sections = {}
    name = None
    for line in open(os.path.join(man_src, "notes.md")):
        if line.startswith("## "):
            name = line[3:].strip()
            sections[name] = []
        elif name:
            sections[name].append(line.rstrip("\n"))
    return {k: "\n".join(v).strip() for k, v in sections.items()}


def paragraphs(text):
    out = []
    for block in re.split(r"\n\s*\n", text.strip()):
        out.append(".PP\n" + roff_text(" ".join(block.split())))
    return "\n".join(out)


def page(name, prototype, header, doc, note, example, others):
    out = [".TH %s 3 \"\" \"demi\" \"%s\"" % (name.upper(), TITLE)]
    out += [".SH NAME", "%s \\- %s" % (name, roff_text(doc["brief"]))]
    out += [".SH SYNOPSIS", ".nf", ".B #include <demi/%s>" % header, ".PP",
            roff_text(prototype), ".fi"]
    out += [".SH DESCRIPTION", ".PP", roff_text(doc["brief"])]
    for body in doc["description"]:
        out += [".PP", roff_text(body)]
    for param, desc in doc["params"]:
        out += [".TP", "\\fI%s\\fR" % param, roff_text(desc.strip())]
    out += [".SH RETURN VALUE", ".PP", roff_text(doc["return"] or "See below.")]
    if doc["errors"]:
        out += [".SH ERRORS"]
        for error in doc["errors"]:
            code, _, desc = error.partition(":")
            out += [".TP", "\\fB%s\\fR" % code.strip(), roff_text(desc.strip())]
    out += [".SH NOTES", paragraphs(note) if note else ".PP",
            ".PP", "How the library maps the API onto RDMA (memory, flow "
            "control, failures, limits, environment) is in "
            "\\fBdemi-rdma\\fR(7)."]
    out += [".SH EXAMPLE", ".PP", "A client that connects, pushes one "
            "message and pops the echo:", ".PP", ".nf",
            roff_text(example.rstrip()), ".fi"]
    out += [".SH SEE ALSO", ", ".join("\\fB%s\\fR(3)" % o for o in others
                                      if o != name) + ", \\fBdemi-rdma\\fR(7)"]
    return "\n".join(out) + "\n"


def overview(markdown):
    """demi-rdma.7 from a small Markdown subset: '# ' headings, paragraphs,
    '- ' list items (continued by indented lines) and ``` blocks."""
    out = [".TH DEMI-RDMA 7 \"\" \"demi\" \"%s\"" % TITLE]
    code, block = False, []
    text, is_item = [], False

    def flush():
        if text:
            out.extend([".IP \\(bu 2" if is_item else ".PP",
                        roff_text(" ".join(text))])
            text.clear()

    for line in markdown.split("\n"):
        if line.startswith("```"):
            flush()
            if code:
                out.extend([".PP", ".nf"] + [roff_text(l) for l in block] +
                           [".fi"])
                block = []
            code = not code
        elif code:
            block.append(line)
        elif line.startswith("# "):
            flush()
            out.append(".SH " + line[2:].strip().upper())
        elif line.startswith("- "):
            flush()
            is_item = True
            text.append(line[2:].strip())
        elif not line.strip():
            flush()
            is_item = False
        else:
            text.append(line.strip())
    flush()
    return "\n".join(out) + "\n"


def main():
    header_dir, man_src, out_dir = sys.argv[1:4]
    os.makedirs(os.path.join(out_dir, "man3"), exist_ok=True)
    os.makedirs(os.path.join(out_dir, "man7"), exist_ok=True)
    found = functions(header_dir)
    if not found:
        sys.exit("gen_man.py: no functions found in " + header_dir)
    note_for = notes(man_src)
    example = open(os.path.join(man_src, "example.c")).read()
    names = [f[0] for f in found]
    for name, prototype, header, doc in found:
        with open(os.path.join(out_dir, "man3", name + ".3"), "w") as f:
            f.write(page(name, prototype, header, doc, note_for.get(name, ""),
                         example, names))
    with open(os.path.join(out_dir, "man7", "demi-rdma.7"), "w") as f:
        f.write(overview(open(os.path.join(man_src, "demi-rdma.7.md")).read()))


if __name__ == "__main__":
    main()

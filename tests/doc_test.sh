#!/usr/bin/env bash
# Runs the command examples of the docs against the build, so that the docs cannot drift from it.
#
# Usage: doc_test.sh BIN_DIR FILE.md...   (BIN_DIR holds the built epoll-server; it goes first in PATH)
#
# A fenced block whose info string contains the word `doc-test` (```console doc-test) is a
# transcript: each line starting with `$ ` is a command, the lines after it up to the next command
# are its output (stdout and stderr together), exactly. In an output line `…` stands for any text
# (a port, a path, a build id). Show an exit code with `$ echo $?`. Each block runs on its own in a
# new temporary directory with bash, at most 60 s; a command must not leave a process behind. Mark
# only commands that run anywhere without root, network or a service manager.
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 BIN_DIR FILE.md..." >&2; exit 2; }
bin_dir=$(cd "$1" && pwd)
shift

work=$(mktemp -d "${TMPDIR:-/tmp}/epoll-echo-doc-test.XXXXXX")
trap 'rm -rf "$work"' EXIT

# Splits the marked blocks of one file into $work/N/{script.sh,expected,where}, numbering on from $2.
extract() {  # file first_index
  awk -v work="$work" -v file="$1" -v index0="$2" '
    function quoted(text) { gsub(/\047/, "\047\\\047\047", text); return "\047" text "\047" }
    !inside && /^```/ && $0 ~ /[ `]doc-test( |$)/ {
      inside = 1; n = index0 + count++; dir = work "/" n
      system("mkdir -p " quoted(dir))
      script = dir "/script.sh"; expected = dir "/expected"
      print file ":" FNR > (dir "/where")
      print "exec 2>&1\nstatus=0" > script
      printf "" > expected
      next
    }
    inside && /^```/ { inside = 0; close(script); close(expected); next }
    inside && /^\$ / {
      command = substr($0, 3)
      print "printf \"%s\\n\" " quoted($0) "\n(exit $status); " command "\nstatus=$?" > script
      print $0 > expected
      next
    }
    inside { print $0 > expected }
    END { print count + 0 }
  ' "$1"
}

# True when every line of $2 matches the line of $1 at the same place, `…` matching any text.
matches() {  # expected actual
  LC_ALL=C awk '
    function line_matches(pattern, text,   parts, n, i, at) {
      n = split(pattern, parts, "…")
      if (n == 1) return pattern == text
      if (substr(text, 1, length(parts[1])) != parts[1]) return 0
      text = substr(text, length(parts[1]) + 1)
      for (i = 2; i < n; ++i) {
        at = index(text, parts[i]); if (at == 0) return 0
        text = substr(text, at + length(parts[i]))
      }
      return length(text) >= length(parts[n]) && substr(text, length(text) - length(parts[n]) + 1) == parts[n]
    }
    NR == FNR { expected[++lines] = $0; next }
    { ++seen; if (seen > lines || !line_matches(expected[seen], $0)) bad = 1 }
    END { exit (bad || seen != lines) ? 1 : 0 }
  ' "$1" "$2"
}

blocks=0
for file in "$@"; do
  blocks=$((blocks + $(extract "$file" "$blocks")))
done
[ "$blocks" -gt 0 ] || { echo "doc_test: no \`doc-test\` block in $*" >&2; exit 1; }

failures=0
for ((n = 0; n < blocks; ++n)); do
  dir="$work/$n"
  # timeout signals its whole process group: nothing the block started outlives the limit.
  (cd "$dir" && PATH="$bin_dir:$PATH" LC_ALL=C timeout -k 5 60 bash --noprofile --norc script.sh \
    > actual 2>&1) || true
  if matches "$dir/expected" "$dir/actual"; then
    echo "doc_test: ok   $(cat "$dir/where")"
  else
    echo "doc_test: FAIL $(cat "$dir/where"): the doc shows (… = any text)"
    sed 's/^/  | /' "$dir/expected"
    echo "  but the build prints"
    sed 's/^/  | /' "$dir/actual"
    failures=$((failures + 1))
  fi
done
echo "doc_test: $blocks blocks, $failures failed"
[ "$failures" -eq 0 ]

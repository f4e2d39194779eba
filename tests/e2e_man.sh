#!/usr/bin/env bash
# cairn(1) against --help: the built page is what 'cairn help --man' prints
# now, it lists exactly the commands 'cairn --help' lists, in its order, and
# for each command every option line of 'cairn help COMMAND' (the same
# spelling, value and text), so the two cannot drift; groff reads it without
# a warning. Needs no root.
# Environment: CAIRN (the binary), CAIRN_MAN (the built cairn.1; default
# next to the binary).
set -euo pipefail
: "${SRCDIR:=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
: "${CAIRN:=$SRCDIR/build/tools/cairn}"
: "${CAIRN_MAN:=$(dirname "$CAIRN")/cairn.1}"
PY=${PYTHON:-$(command -v /usr/bin/python3 || command -v python3)}
W=$(mktemp -d "${TMPDIR:-/tmp}/cairn-e2e-man.XXXXXX")
trap 'rm -rf "$W"' EXIT
checks=0
fails=0
ok() { checks=$((checks + 1)); echo "ok - $*"; }
fail() { checks=$((checks + 1)); fails=$((fails + 1)); echo "FAIL - $*"; }
check() { local what=$1; shift; if "$@"; then ok "$what"; else fail "$what"; fi; }

echo "== e2e_man: binary $CAIRN, page $CAIRN_MAN"
[ -x "$CAIRN" ] || { echo "FAIL: CAIRN=$CAIRN is not an executable"; exit 1; }
[ -s "$CAIRN_MAN" ] || { echo "FAIL: CAIRN_MAN=$CAIRN_MAN is missing or empty (build first)"; exit 1; }

rc=0
"$CAIRN" help --man >"$W/page.1" 2>"$W/err" || rc=$?
check "cairn help --man exits 0" test "$rc" = 0
check "cairn help --man writes nothing on stderr" test ! -s "$W/err"
check "the built cairn.1 is what cairn help --man prints" cmp -s "$W/page.1" "$CAIRN_MAN"
check "cairn help is not changed by --man's presence" \
	bash -c '"$1" help >"$2/help1" && "$1" --help >"$2/help2" && cmp -s "$2/help1" "$2/help2"' _ "$CAIRN" "$W"

"$CAIRN" --help >"$W/help"
awk '/^commands:/ { on = 1; next } on && /^$/ { exit } on { print $1 }' "$W/help" >"$W/commands"
check "cairn --help lists commands" test -s "$W/commands"
while read -r cmd; do
	"$CAIRN" help "$cmd" >"$W/help-$cmd"
done <"$W/commands"

# The page as plain text per section, then every command and option of the
# help compared with it; each difference is printed.
if "$PY" - "$CAIRN_MAN" "$W" <<'PYEOF'; then ok "cairn.1 lists every command and option --help lists, and no other command"; else fail "cairn.1 lists every command and option --help lists, and no other command"; fi
import re, sys
page, work = sys.argv[1], sys.argv[2]

def plain(s):
    s = re.sub(r'\\f[BIRP]', '', s)
    return s.replace('\\-', '-').replace('\\e', '\\').replace('\\&', '')

# sections: '.SS' headings (commands) and '.SH' ones; options as (tag, text)
sections, order, cur = {}, [], None
lines = open(page).read().split('\n')
i = 0
while i < len(lines):
    l = lines[i]
    if l.startswith('.SH '):
        cur = l[4:].strip('"')
        sections[cur] = {'usage': None, 'opts': []}
    elif l == '.SS':
        usage = plain(lines[i + 1])
        cur = usage.split()[1]
        order.append(cur)
        sections[cur] = {'usage': usage, 'summary': plain(lines[i + 2]), 'opts': []}
        i += 2
    elif l == '.TP' and cur is not None:
        sections[cur]['opts'].append((plain(lines[i + 1]), plain(lines[i + 2])))
        i += 2
    i += 1

bad = 0
def problem(msg):
    global bad
    bad += 1
    print('  ' + msg)

commands = open(work + '/commands').read().split()
if order != commands:
    problem('commands in the page %s, in --help %s' % (order, commands))
builtins = sections.get('OPTIONS OF EVERY COMMAND', {'opts': []})['opts']
for cmd in commands:
    if cmd not in sections:
        problem('no section for command %s' % cmd)
        continue
    sec = sections[cmd]
    help_lines = open('%s/help-%s' % (work, cmd)).read().split('\n')
    usage = help_lines[0].removeprefix('usage: ')
    if sec['usage'] != usage:
        problem('%s: usage %r in the page, %r in --help' % (cmd, sec['usage'], usage))
    if help_lines[2] != sec['summary']:
        problem('%s: summary %r in the page, %r in --help' % (cmd, sec['summary'], help_lines[2]))
    for hl in help_lines:
        m = re.match(r'^  (-\S.*?)  +(\S.*)$', hl)
        if not m:
            continue
        opt = (m.group(1), m.group(2))
        if opt not in sec['opts'] and opt not in builtins:
            problem('%s: option %r: %r not in the page' % (cmd, opt[0], opt[1]))
# the global options of 'cairn --help' in the section of every command
glob = open(work + '/help').read().split('options of every command:')[1]
tags = ' '.join(t for t, _ in builtins)
for o in re.findall(r'^  (-[-\w]+)', glob, re.M) + re.findall(r'^  -\w, (--\w+)', glob, re.M):
    if not re.search(r'(^|[ ,])' + re.escape(o) + r'($|[ ,])', tags):
        problem('global option %s not in OPTIONS OF EVERY COMMAND' % o)
print('  %d commands, %d option entries compared, %d problems' %
      (len(commands), sum(len(s['opts']) for s in sections.values()), bad))
sys.exit(1 if bad else 0)
PYEOF

if command -v groff >/dev/null; then
	check "groff reads cairn.1 without a warning" \
		bash -c 'out=$(groff -man -Tutf8 -ww -z "$1" 2>&1) && [ -z "$out" ]' _ "$CAIRN_MAN"
else
	echo "note: no groff here; the page's syntax is not checked"
fi

echo "== e2e_man: $checks checks, $fails failed"
[ "$fails" = 0 ]

"""Commands of multi-command data types: their outputs, and the capture file that holds them.

A capture file is what ``infrawatch parse`` reads for a multi-command type, and what the
collector builds in memory before parsing, so both run the same parser on the same input.
It is a series of sections, each a header line and the lines that follow it:

    @@@ <name> exit=<status>[ killed][ truncated]
    <the command's stdout>
    @@@ <name> stderr
    <the command's stderr (optional section)>

``<name>`` is the command's name in its data type (``ps``, ``stats``, ``smartctl /dev/sda``);
``exit=none`` means no exit status (killed by a signal, stopped). A header without ``exit=``
means exit status 0, so a capture can be written by hand from a terminal session. Lines
before the first header are ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Protocol

from shared.datatypes.parsing import CommandFailed, ParseError, Unsupported

MARKER = "@@@ "
EXIT_NOT_FOUND = 127

# Extra directories searched for a program, after the login's PATH: tools such as smartctl,
# zpool and ip live in sbin, which a non-root login's PATH often lacks.
SBIN_PATH = "/usr/local/sbin:/usr/sbin:/sbin"
SBIN_SCRIPT = f'PATH="$PATH:{SBIN_PATH}"; export PATH; exec "$@"'


def sbin(argv: list[str]) -> list[str]:
    """``argv`` run with sbin directories on PATH; every element stays a separate argument."""
    return ["sh", "-c", SBIN_SCRIPT, "sh", *argv]


# Runs fixed commands one after the other in one shell and prints their outputs as a capture
# file, so a multi-command type costs one channel (one remote shell start) instead of one per
# command. Each command's stdout and stderr go to files in a private temporary directory first,
# so the sections stay apart and every exit status is known.
BATCH_PRELUDE = r"""t=$(mktemp -d 2>/dev/null || mktemp -d -t iw.XXXXXX) || { echo "mktemp failed" >&2; exit 125; }
trap 'rm -rf "$t"' EXIT
section() {
  name=$1; shift
  "$@" >"$t/o" 2>"$t/e" </dev/null
  rc=$?
  printf '@@@ %s exit=%s\n' "$name" "$rc"
  cat "$t/o"
  [ -s "$t/o" ] && [ "$(tail -c 1 "$t/o")" != "" ] && echo
  if [ -s "$t/e" ]; then
    printf '@@@ %s stderr\n' "$name"
    cat "$t/e"
    [ "$(tail -c 1 "$t/e")" != "" ] && echo
  fi
  return 0
}
"""


def batch_argv(commands: dict[str, list[str]]) -> list[str]:
    """One ``sh -c`` command running ``commands`` in order and printing a capture file. The
    commands are the data type's fixed constants, each word quoted; nothing comes from input."""
    import shlex

    lines = [f"section {shlex.quote(name)} {shlex.join(argv)}" for name, argv in commands.items()]
    return ["sh", "-c", BATCH_PRELUDE + "\n".join(lines) + "\n"]


@dataclass(frozen=True)
class Output:
    """One command's result as the parser sees it."""

    name: str
    stdout: str = ""
    stderr: str = ""
    exit_status: int | None = 0
    killed: bool = False  # did not finish within its timeout and was stopped
    truncated: bool = False  # output beyond the size limit was dropped

    @property
    def ok(self) -> bool:
        return self.exit_status == 0 and not self.killed and not self.truncated

    @property
    def not_found(self) -> bool:
        return self.exit_status == EXIT_NOT_FOUND

    def stderr_tail(self, limit: int = 300) -> str:
        return self.stderr.strip()[-limit:]

    def failure(self) -> str:
        """Why the command did not succeed, in one line."""
        if self.killed:
            why = "was killed after its timeout"
        elif self.truncated:
            why = "printed more than the output limit"
        elif self.exit_status is None:
            why = "ended without an exit status"
        else:
            why = f"failed with exit status {self.exit_status}"
        tail = self.stderr_tail()
        return f"{self.name} {why}" + (f": {tail}" if tail else "")


class Session(Protocol):
    """What a type's ``gather`` runs its commands through (the collector's ``Session``)."""

    sudo: list[str]

    async def run(self, name: str, argv: list[str], timeout: float | None = None,
                  stdin: bytes | None = None) -> Output: ...

    async def run_all(self, commands: dict[str, list[str]]) -> dict[str, Output]: ...


def require(out: Output | None, name: str, tool: str | None = None) -> Output:
    """The output when its command succeeded; else Unsupported (not installed) or CommandFailed."""
    if out is None:
        raise ParseError(f"section {name!r} missing: not a capture of this data type")
    if out.not_found:
        raise Unsupported(f"{tool or name} is not installed (exit status 127)" +
                          (f": {out.stderr_tail()}" if out.stderr_tail() else ""))
    if not out.ok:
        raise CommandFailed(out.failure())
    return out


def render(outputs: list[Output]) -> str:
    """The capture file text of ``outputs``."""
    parts: list[str] = []
    for out in outputs:
        flags = "".join((" killed" if out.killed else "", " truncated" if out.truncated else ""))
        status = "none" if out.exit_status is None else str(out.exit_status)
        parts.append(f"{MARKER}{out.name} exit={status}{flags}\n")
        parts.append(out.stdout if out.stdout.endswith("\n") or not out.stdout else out.stdout + "\n")
        if out.stderr:
            parts.append(f"{MARKER}{out.name} stderr\n")
            parts.append(out.stderr if out.stderr.endswith("\n") else out.stderr + "\n")
    return "".join(parts)


# @@@ smartctl /dev/sda exit=4
# @@@ ps exit=none killed
# @@@ ps stderr
HEADER_RE = re.compile(r"^@@@ (?P<name>.+?)(?: exit=(?P<exit>-?\d+|none))?(?P<flags>(?: killed| truncated)*)\s*$")


def read(text: str) -> dict[str, Output]:
    """Parse a capture file into outputs by name, in file order; raises ParseError on a bad header."""
    raw: dict[str, dict[str, Any]] = {}
    current: list[str] | None = None
    for no, line in enumerate(text.splitlines(), start=1):
        if not line.startswith(MARKER):
            if current is not None:
                current.append(line)
            continue
        m = HEADER_RE.match(line)
        if not m:
            raise ParseError("malformed capture header", line, no)
        name = m.group("name")
        if name.endswith(" stderr") and m.group("exit") is None:
            base = raw.setdefault(name[: -len(" stderr")], {"stdout": [], "stderr": [], "exit": "0", "flags": ""})
            current = base["stderr"]
            continue
        if name in raw and raw[name]["stdout"]:
            raise ParseError(f"section {name!r} appears twice", line, no)
        entry = raw.setdefault(name, {"stdout": [], "stderr": [], "exit": "0", "flags": ""})
        entry["exit"] = m.group("exit") or "0"
        entry["flags"] = m.group("flags") or ""
        current = entry["stdout"]
    outputs: dict[str, Output] = {}
    for name, e in raw.items():
        outputs[name] = Output(
            name=name,
            stdout="\n".join(e["stdout"]) + ("\n" if e["stdout"] else ""),
            stderr="\n".join(e["stderr"]) + ("\n" if e["stderr"] else ""),
            exit_status=None if e["exit"] == "none" else int(e["exit"]),
            killed="killed" in e["flags"],
            truncated="truncated" in e["flags"],
        )
    return outputs


def read_nonempty(text: str) -> dict[str, Output]:
    """:func:`read`, refusing empty text and text without any section."""
    if not text.strip():
        raise ParseError("output is empty")
    outputs = read(text)
    if not outputs:
        first = next((no, line) for no, line in enumerate(text.splitlines(), 1) if line.strip())
        raise ParseError("no '@@@ <command>' sections: not a capture of a multi-command data type", first[1], first[0])
    return outputs

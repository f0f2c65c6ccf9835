"""inventory: OS release, kernel, architecture, hostname, CPU, memory, installed packages (dpkg,
rpm or apk), Python packages, whitelisted environment variables; and the drift since the
previous snapshot of the same device.

Every command is fixed and runs on its own channel; a package manager the host does not have
exits 127 and is simply not used. The drift is :func:`diff` of the previous and the new
snapshot (``with_previous``); the collector keeps the previous one per device.
"""

from __future__ import annotations

import json
import re
import shlex

from shared.datatypes.capture import Output, read_nonempty, require
from shared.datatypes.inventory.payload import Change, Drift, Inventory, Package
from shared.datatypes.parsing import ParseError, ParseResult

NAME = "inventory"
TIMEOUT_S = 60.0
RETRIES = 1
INTERVAL_S = 3600
FRESHNESS_S = 3600

# Variables reported from the login environment; nothing else is kept. A URL's password
# (proxies) is replaced by "***".
ENV_WHITELIST = (
    "PATH", "LANG", "LC_ALL", "LANGUAGE", "TZ", "SHELL", "HOME", "USER", "LOGNAME", "TERM",
    "PYTHONPATH", "VIRTUAL_ENV", "JAVA_HOME", "GOPATH", "NODE_ENV", "DOCKER_HOST",
    "http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY",
)
# Prints NAME=value for each name given that is set; the names are arguments, never code.
ENV_SCRIPT = 'for n in "$@"; do v=$(printenv "$n") && printf "%s=%s\\n" "$n" "$v"; done; exit 0'

COMMANDS = {
    "os-release": ["sh", "-c", "cat /etc/os-release 2>/dev/null || cat /usr/lib/os-release"],
    "uname": ["uname", "-n", "-r", "-m"],
    "cpuinfo": ["cat", "/proc/cpuinfo"],
    "meminfo": ["cat", "/proc/meminfo"],
    "dpkg": ["dpkg-query", "-W", "-f", "${Package}\\t${Version}\\t${Architecture}\\t${Status}\\n"],
    "rpm": ["rpm", "-qa", "--qf", "%{NAME}\\t%{VERSION}-%{RELEASE}\\t%{ARCH}\\n"],
    "apk": ["apk", "list", "--installed"],
    "pip": ["python3", "-m", "pip", "list", "--format=json", "--disable-pip-version-check"],
    "env": ["sh", "-c", ENV_SCRIPT, "sh", *ENV_WHITELIST],
}
MANAGERS = ("dpkg", "rpm", "apk")


# PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
# VERSION_ID=12
OS_RELEASE_RE = re.compile(r"^([A-Z0-9_]+)=(.*)$")


def parse_os_release(out: Output) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in out.stdout.splitlines():
        m = OS_RELEASE_RE.match(line.strip())
        if m:
            raw = m.group(2)
            try:
                values[m.group(1)] = " ".join(shlex.split(raw)) if raw else ""
            except ValueError:
                values[m.group(1)] = raw.strip("\"'")
    return values


def parse_uname(out: Output) -> tuple[str, str, str]:
    # vm 6.1.0-18-amd64 x86_64
    parts = out.stdout.split()
    if len(parts) != 3:
        raise ParseError("uname -n -r -m: three words expected", out.stdout.strip()[:200], 1)
    return parts[0], parts[1], parts[2]


# model name	: Intel(R) Xeon(R) CPU E5-2680 v4 @ 2.40GHz      (x86)
# Model		: Raspberry Pi 4 Model B Rev 1.4                  (arm, whole board)
# CPU part	: 0xd08                                            (arm, when nothing better)
CPU_MODEL_KEYS = ("model name", "cpu model", "Model", "Hardware", "cpu")


def parse_cpuinfo(out: Output) -> tuple[str | None, int | None]:
    fields: dict[str, str] = {}
    count = 0
    for line in out.stdout.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key = key.strip()
        if key == "processor":
            count += 1
        fields.setdefault(key, value.strip())
    model = next((fields[k] for k in CPU_MODEL_KEYS if fields.get(k)), None)
    return model, count or None


# MemTotal:       24683656 kB
MEMTOTAL_RE = re.compile(r"^MemTotal:\s+(\d+)\s+kB", re.M)


def parse_meminfo(out: Output) -> int | None:
    m = MEMTOTAL_RE.search(out.stdout)
    return int(m.group(1)) * 1024 if m else None


def parse_dpkg(text: str) -> list[Package]:
    # openssh-server	1:9.2p1-2+deb12u3	amd64	install ok installed
    result = []
    for no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != 4:
            raise ParseError("dpkg-query: 4 tab-separated fields expected", line, no)
        name, version, arch, status = parts
        if status.endswith(" installed"):  # not "deinstall ok config-files" (removed, config kept)
            result.append(Package(name=name, version=version, arch=arch or None, manager="dpkg"))
    return result


def parse_rpm(text: str) -> list[Package]:
    # openssh-server	8.7p1-38.el9	x86_64
    result = []
    for no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != 3:
            raise ParseError("rpm -qa: 3 tab-separated fields expected", line, no)
        arch = None if parts[2] == "(none)" else parts[2]
        result.append(Package(name=parts[0], version=parts[1], arch=arch, manager="rpm"))
    return result


# musl-1.2.4_git20230717-r4 x86_64 {musl} (MIT) [installed]
APK_RE = re.compile(r"^(?P<name>.+)-(?P<version>[0-9][^-\s]*-r\d+) (?P<arch>\S+) \{[^}]*\} \([^)]*\)(?: \[[^\]]*\])?$")


def parse_apk(text: str) -> list[Package]:
    result = []
    for no, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.startswith("WARNING"):
            continue
        m = APK_RE.match(line.strip())
        if not m:
            raise ParseError("apk list: unexpected line", line, no)
        result.append(Package(name=m["name"], version=m["version"], arch=m["arch"], manager="apk"))
    return result


def parse_pip(out: Output | None, warnings: list[str]) -> list[Package] | None:
    """pip's JSON list; None when python3 or pip is absent (not a warning: many hosts have neither)."""
    if out is None or out.not_found or (out.exit_status == 1 and "No module named pip" in out.stderr):
        return None
    if not out.ok:
        warnings.append(f"python packages unknown: {out.failure()}")
        return None
    # pip may print a notice line before the JSON; the JSON is the last line.
    lines = [line for line in out.stdout.splitlines() if line.strip()]
    try:
        data = json.loads(lines[-1]) if lines else []
    except json.JSONDecodeError:
        warnings.append(f"python packages unknown: pip printed no JSON: {lines[-1][:120]!r}")
        return None
    return sorted((Package(name=p["name"], version=p["version"], manager="pip") for p in data
                   if isinstance(p, dict) and "name" in p and "version" in p), key=lambda p: p.name.lower())


# http://user:secret@proxy.example:3128
URL_PASSWORD_RE = re.compile(r"(?<=://)([^/@:\s]+):[^/@\s]+@")


def parse_env(out: Output | None) -> dict[str, str]:
    env: dict[str, str] = {}
    if out is None or not out.ok:
        return env
    for line in out.stdout.splitlines():
        name, sep, value = line.partition("=")
        if sep and name in ENV_WHITELIST:
            env[name] = URL_PASSWORD_RE.sub(r"\1:***@", value)
    return env


def parse_outputs(outputs: dict[str, Output]) -> ParseResult[Inventory]:
    warnings: list[str] = []
    hostname, kernel, arch = parse_uname(require(outputs.get("uname"), "uname"))
    osr: dict[str, str] = {}
    if (o := outputs.get("os-release")) is not None and o.ok:
        osr = parse_os_release(o)
    else:
        warnings.append("no /etc/os-release: OS name and version unknown")
    cpu_model = cpu_count = memory = None
    if (o := outputs.get("cpuinfo")) is not None and o.ok:
        cpu_model, cpu_count = parse_cpuinfo(o)
    else:
        warnings.append("/proc/cpuinfo unreadable: CPU unknown")
    if (o := outputs.get("meminfo")) is not None and o.ok:
        memory = parse_meminfo(o)
    if memory is None:
        warnings.append("/proc/meminfo unreadable or without MemTotal: memory size unknown")
    found: dict[str, list[Package]] = {}
    for manager, fn in (("dpkg", parse_dpkg), ("rpm", parse_rpm), ("apk", parse_apk)):
        out = outputs.get(manager)
        if out is None or out.not_found:
            continue
        if not out.ok:
            warnings.append(f"{manager}: {out.failure()}")
            continue
        packages = fn(out.stdout)
        if packages:
            found[manager] = packages
    chosen = max(found, key=lambda m: len(found[m])) if found else None
    if chosen is None and not any(m in outputs and not outputs[m].not_found for m in MANAGERS):
        warnings.append("no dpkg, rpm or apk on the host: no packages")
    packages = sorted(found.get(chosen, []) if chosen else [], key=lambda p: (p.name, p.arch or ""))
    return ParseResult(Inventory(
        hostname=hostname, kernel=kernel, architecture=arch, os_id=osr.get("ID"), os_name=osr.get("NAME"),
        os_version=osr.get("VERSION_ID") or osr.get("VERSION"), os_pretty_name=osr.get("PRETTY_NAME"),
        cpu_model=cpu_model, cpu_count=cpu_count, memory_total_bytes=memory, package_manager=chosen,
        packages=packages, python_packages=parse_pip(outputs.get("pip"), warnings), env=parse_env(outputs.get("env")),
    ), warnings)


def parse(text: str) -> ParseResult[Inventory]:
    """Parse a capture file with sections os-release, uname, cpuinfo, meminfo, dpkg, rpm, apk, pip, env."""
    return parse_outputs(read_nonempty(text))


# ---------------------------------------------------------------- drift

SYSTEM_FIELDS = ("hostname", "kernel", "architecture", "os_id", "os_name", "os_version", "cpu_model",
                 "cpu_count", "memory_total_bytes", "package_manager")


def _package_map(packages: list[Package] | None) -> dict[str, str]:
    """name -> version; ``name:arch`` for multiarch packages, versions joined for packages
    installed in several versions at once (kernels)."""
    if not packages:
        return {}
    archs: dict[str, set[str | None]] = {}
    for p in packages:
        archs.setdefault(p.name, set()).add(p.arch)
    versions: dict[str, list[str]] = {}
    for p in packages:
        key = f"{p.name}:{p.arch}" if len(archs[p.name]) > 1 else p.name
        versions.setdefault(key, []).append(p.version)
    return {k: ", ".join(sorted(v)) for k, v in versions.items()}


def _changes(old: dict[str, str], new: dict[str, str]) -> list[Change]:
    return [Change(name=k, old=old.get(k), new=new.get(k)) for k in sorted(old.keys() | new.keys())
            if old.get(k) != new.get(k)]


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def diff(previous: Inventory, current: Inventory) -> Drift:
    """What changed from ``previous`` to ``current`` (pure). Python packages are compared only
    when both snapshots know them."""
    system = [Change(name=f, old=_text(getattr(previous, f)), new=_text(getattr(current, f)))
              for f in SYSTEM_FIELDS if getattr(previous, f) != getattr(current, f)]
    packages = _changes(_package_map(previous.packages), _package_map(current.packages))
    python = ([] if previous.python_packages is None or current.python_packages is None
              else _changes(_package_map(previous.python_packages), _package_map(current.python_packages)))
    env = _changes(previous.env, current.env)
    return Drift(changed=bool(system or packages or python or env), system=system, packages=packages,
                 python_packages=python, env=env)


def with_previous(previous: Inventory | None, current: Inventory) -> Inventory:
    """The snapshot with its drift from the previous one (None for a device's first snapshot)."""
    current.drift = None if previous is None else diff(previous, current)
    return current

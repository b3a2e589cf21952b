#!/usr/bin/env python3
"""Checks that deploy/systemd/sync-trace.service keeps what sync-trace needs
while hardened: systemd-analyze verify only checks syntax, and a unit that
drops a needed capability or system call scores *better* on
`systemd-analyze security` while the daemon can no longer attach.

* ExecStart, Restart, the exact capability bounding set;
* settings that would break it are absent (each with the reason);
* the hardening settings are present;
* every system call the daemon makes passes SystemCallFilter= (groups are
  expanded with `systemd-analyze syscall-filter`).
Prints one line per problem; exit 1 on any. Usage: check_unit.py [UNIT]
"""
import os
import re
import subprocess
import sys

EXEC = "/usr/local/bin/sync-trace run --metrics-addr 127.0.0.1:9464"
CAPS = {"CAP_BPF", "CAP_PERFMON", "CAP_SYS_ADMIN", "CAP_SYSLOG", "CAP_SETUID", "CAP_SETGID"}
# Observed with strace on `sync-trace replay --metrics-addr` (runtime, HTTP
# exporter) plus what loading and attaching BPF programs adds.
SYSCALLS = """
    accept4 access arch_prctl bind brk close epoll_create1 epoll_ctl epoll_wait
    eventfd2 execve exit_group fcntl futex getrandom getsockname gettid ioctl
    listen mmap mprotect munmap newfstatat openat poll pread64 prlimit64 read
    recvfrom rseq rt_sigaction rt_sigreturn sched_getaffinity sendto
    set_robust_list set_tid_address setsockopt shutdown sigaltstack socket
    socketpair write writev
    bpf perf_event_open uname clone clone3 madvise statx statfs lseek getdents64
    clock_gettime clock_nanosleep nanosleep sched_yield exit pipe2 dup dup3
""".split()
BREAKS = {
    ("ProtectKernelTunables", "yes"): "makes /proc/kallsyms inaccessible",
    ("ProtectKernelLogs", "yes"): "removes CAP_SYSLOG (kallsyms addresses)",
    ("ProcSubset", "pid"): "hides /proc/kallsyms and /proc/sys",
    ("PrivateUsers", "yes"): "capabilities would not count in the initial user namespace",
    ("PrivateNetwork", "yes"): "the metrics listener would be unreachable",
    ("DynamicUser", "yes"): "tracefs is root-only",
}
REQUIRED = {
    "NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
    "PrivateTmp": "yes", "PrivateDevices": "yes", "ProtectKernelModules": "yes",
    "ProtectControlGroups": "yes", "ProtectClock": "yes", "ProtectHostname": "yes",
    "LockPersonality": "yes", "MemoryDenyWriteExecute": "yes", "RestrictRealtime": "yes",
    "RestrictSUIDSGID": "yes", "RestrictNamespaces": "yes", "SystemCallArchitectures": "native",
}
NEEDED_PATHS = ["/proc/kallsyms", "/proc/sys/kernel/kptr_restrict", "/sys/kernel/btf/vmlinux",
                "/sys/kernel/tracing", "/proc/self"]


def parse(path):
    settings = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line[0] in "#;" or line.startswith("["):
                continue
            k, _, v = line.partition("=")
            settings.append((k.strip(), v.strip()))
    return settings


def last(settings, key):
    vals = [v for k, v in settings if k == key]
    return vals[-1] if vals else None


def groups():
    out = subprocess.run(["systemd-analyze", "syscall-filter"], capture_output=True, text=True, check=True).stdout
    g, cur = {}, None
    for line in out.splitlines():
        if line.startswith("@"):
            cur = g.setdefault(line.split()[0], [])
        elif cur is not None and line.strip() and not line.strip().startswith("#"):
            cur.append(line.strip())
    return g


def expand(names, g):
    s = set()
    for n in names:
        s |= expand(g.get(n, []), g) if n.startswith("@") else {n}
    return s


def allowed_syscalls(settings, g):
    """SystemCallFilter= semantics: the first assignment decides allow (no ~)
    or deny list; later ones add to it; an empty assignment resets."""
    allow, deny, mode = set(), set(), None
    for k, v in settings:
        if k != "SystemCallFilter":
            continue
        if not v:
            allow, deny, mode = set(), set(), None
            continue
        neg = v.startswith("~")
        names = expand(v.lstrip("~").split(), g)
        if mode is None:
            mode = "deny" if neg else "allow"
        if mode == "allow":
            allow = allow - names if neg else allow | names
        else:
            deny = deny - names if not neg else deny | names
    if mode is None:
        return None
    return (lambda s: s in allow) if mode == "allow" else (lambda s: s not in deny)


def main(argv):
    path = argv[0] if argv else os.path.join(os.path.dirname(os.path.abspath(__file__)), "sync-trace.service")
    st = parse(path)
    errors = []
    if last(st, "ExecStart") != EXEC:
        errors.append(f"ExecStart is {last(st, 'ExecStart')!r}, want {EXEC!r}")
    if last(st, "Restart") != "on-failure":
        errors.append("Restart= is not on-failure")
    caps = set()
    for k, v in st:
        if k == "CapabilityBoundingSet":
            caps = set(v.split()) if v else set()
    if caps != CAPS:
        errors.append(f"CapabilityBoundingSet is {sorted(caps)}, must be exactly {sorted(CAPS)}")
    if last(st, "User") not in (None, "", "root", "0"):
        errors.append("User= is set: tracefs is root-only and the capabilities must be effective")
    for (k, v), why in BREAKS.items():
        if last(st, k) == v:
            errors.append(f"{k}={v} cannot be used: {why}")
    for k, v in REQUIRED.items():
        if last(st, k) != v:
            errors.append(f"{k}={v} missing (hardening)")
    fams = set((last(st, "RestrictAddressFamilies") or "").split())
    if not {"AF_INET", "AF_INET6", "AF_UNIX"} <= fams:
        errors.append(f"RestrictAddressFamilies={' '.join(sorted(fams))} lacks AF_INET/AF_INET6/AF_UNIX")
    for k, v in st:
        if k == "InaccessiblePaths":
            for p in v.split():
                p = p.lstrip("-+")
                for need in NEEDED_PATHS:
                    if need == p or need.startswith(p.rstrip("/") + "/"):
                        errors.append(f"InaccessiblePaths={p} hides {need}")
    ok = allowed_syscalls(st, groups())
    if ok is None:
        errors.append("no SystemCallFilter=")
    else:
        blocked = [s for s in SYSCALLS if not ok(s)]
        if blocked:
            errors.append(f"SystemCallFilter= blocks system calls sync-trace makes: {' '.join(blocked)}")
    for e in errors:
        print(e)
    if not errors:
        print(f"{os.path.basename(path)}: capabilities, {len(SYSCALLS)} system calls and paths sync-trace needs are kept")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

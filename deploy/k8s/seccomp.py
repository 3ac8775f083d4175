"""The gateway's seccomp profile: the container runtime's default, plus what bubblewrap needs.

The gateway runs commands, custom tools and catalog MCP servers in bubblewrap (user, PID,
network, mount, IPC, UTS and cgroup namespaces; ``massgen_gateway/sandbox.py``). The
``RuntimeDefault`` seccomp profile of containerd refuses exactly the calls that build such a
sandbox to a container without ``CAP_SYS_ADMIN``, which ours never has (Pod Security
"restricted" drops every capability): the gateway's probe then reports "No permissions to
create new namespace". ``profile()`` is that default, unchanged, plus ``ADDITIONS``.

``RUNTIME_DEFAULT_*`` transcribe containerd's ``contrib/seccomp/seccomp_default.go``
(``DefaultProfile``, containerd main at 301026e58c619e63d09c0ec411012e54c0124b03, after
v2.4.0-beta.0) as it comes out for a container whose bounding set is empty: no rule of its
per-capability blocks applies, ``clone`` is allowed only without namespace flags and
``clone3`` fails with ENOSYS (so that glibc falls back to ``clone``, whose flags seccomp can
see). One file serves amd64 and arm64 nodes: both architecture lists and both sets of
architecture-only calls are in it (a name that does not exist on an architecture matches
nothing there). Syscalls newer than the node's libseccomp are skipped by the runtime, as
they are in its own default.

Every addition was measured (``tests/k8s/test_gateway_sandbox_profile.py`` and README
"Sandboxed tools"): bubblewrap 0.8 fails without each of them with the gateway's own
command lines. The kernel still decides what each call may do: ``unshare(CLONE_NEWUSER)``
is an unprivileged call by design, and ``mount``, ``umount2``, ``pivot_root``,
``sethostname`` and the other namespace flags need ``CAP_SYS_ADMIN`` in the user namespace
that owns the target, which the gateway has only in the namespaces it creates. What the
profile does give up is the kernel code reachable from inside a user namespace
(README "Threat model", *tools*).
"""

from __future__ import annotations

import json
from typing import Any

__all__ = [
    "ADDITIONS",
    "NOT_ADDED",
    "PROFILE_NAME",
    "localhost_profile",
    "profile",
    "render_json",
    "runtime_default",
    "seccomp_profile_resource",
]

PROFILE_NAME = "massgen-gateway-sandbox"
"""Name of the SeccompProfile (cluster-scoped in the Security Profiles Operator >= 0.9) and
of the file it installs on every node: ``/var/lib/kubelet/seccomp/operator/<name>.json``."""

SPO_API_VERSION = "security-profiles-operator.x-k8s.io/v1beta1"
"""Served by every Security Profiles Operator release from 0.4 to 1.0 (1.0 stores v1)."""

ARCHITECTURES = (
    "SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32",  # containerd on amd64
    "SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM",  # containerd on arm64
)  # fmt: skip

RUNTIME_DEFAULT_ALLOWED: tuple[str, ...] = tuple(
    """
    accept accept4 access adjtimex alarm bind brk cachestat capget capset chdir chmod chown
    chown32 clock_adjtime clock_adjtime64 clock_getres clock_getres_time64 clock_gettime
    clock_gettime64 clock_nanosleep clock_nanosleep_time64 close close_range connect
    copy_file_range creat dup dup2 dup3 epoll_create epoll_create1 epoll_ctl epoll_ctl_old
    epoll_pwait epoll_pwait2 epoll_wait epoll_wait_old eventfd eventfd2 execve execveat exit
    exit_group faccessat faccessat2 fadvise64 fadvise64_64 fallocate fanotify_mark fchdir
    fchmod fchmodat fchmodat2 fchown fchown32 fchownat fcntl fcntl64 fdatasync fgetxattr
    flistxattr flock fork fremovexattr fsetxattr fstat fstat64 fstatat64 fstatfs fstatfs64
    fsync ftruncate ftruncate64 futex futex_requeue futex_time64 futex_wait futex_waitv
    futex_wake futimesat getcpu getcwd getdents getdents64 getegid getegid32 geteuid
    geteuid32 getgid getgid32 getgroups getgroups32 getitimer getpeername getpgid getpgrp
    getpid getppid getpriority getrandom getresgid getresgid32 getresuid getresuid32
    getrlimit get_robust_list getrusage getsid getsockname getsockopt get_thread_area gettid
    gettimeofday getuid getuid32 getxattr getxattrat inotify_add_watch inotify_init
    inotify_init1 inotify_rm_watch io_cancel ioctl io_destroy io_getevents io_pgetevents
    io_pgetevents_time64 ioprio_get ioprio_set io_setup io_submit ipc kill landlock_add_rule
    landlock_create_ruleset landlock_restrict_self lchown lchown32 lgetxattr link linkat
    listen listmount listxattr listxattrat llistxattr _llseek lremovexattr lseek lsetxattr
    lsm_get_self_attr lsm_list_modules lsm_set_self_attr lstat lstat64 madvise membarrier
    memfd_create memfd_secret mincore mkdir mkdirat mknod mknodat mlock mlock2 mlockall
    map_shadow_stack mmap mmap2 mprotect mq_getsetattr mq_notify mq_open mq_timedreceive
    mq_timedreceive_time64 mq_timedsend mq_timedsend_time64 mq_unlink mremap mseal msgctl
    msgget msgrcv msgsnd msync munlock munlockall munmap name_to_handle_at nanosleep
    newfstatat _newselect open openat openat2 pause pidfd_open pidfd_send_signal pipe pipe2
    pkey_alloc pkey_free pkey_mprotect poll ppoll ppoll_time64 prctl pread64 preadv preadv2
    prlimit64 process_mrelease pselect6 pselect6_time64 pwrite64 pwritev pwritev2 read
    readahead readlink readlinkat readv recv recvfrom recvmmsg recvmmsg_time64 recvmsg
    remap_file_pages removexattr removexattrat rename renameat renameat2 restart_syscall
    rmdir rseq rt_sigaction rt_sigpending rt_sigprocmask rt_sigqueueinfo rt_sigreturn
    rt_sigsuspend rt_sigtimedwait rt_sigtimedwait_time64 rt_tgsigqueueinfo sched_getaffinity
    sched_getattr sched_getparam sched_get_priority_max sched_get_priority_min
    sched_getscheduler sched_rr_get_interval sched_rr_get_interval_time64 sched_setaffinity
    sched_setattr sched_setparam sched_setscheduler sched_yield seccomp select semctl semget
    semop semtimedop semtimedop_time64 send sendfile sendfile64 sendmmsg sendmsg sendto
    setfsgid setfsgid32 setfsuid setfsuid32 setgid setgid32 setgroups setgroups32 setitimer
    setpgid setpriority setregid setregid32 setresgid setresgid32 setresuid setresuid32
    setreuid setreuid32 setrlimit set_robust_list setsid setsockopt set_thread_area
    set_tid_address setuid setuid32 setxattr setxattrat shmat shmctl shmdt shmget shutdown
    sigaltstack signalfd signalfd4 sigprocmask sigreturn socketcall socketpair splice stat
    stat64 statfs statfs64 statmount statx symlink symlinkat sync sync_file_range syncfs
    sysinfo tee tgkill time timer_create timer_delete timer_getoverrun timer_gettime
    timer_gettime64 timer_settime timer_settime64 timerfd_create timerfd_gettime
    timerfd_gettime64 timerfd_settime timerfd_settime64 times tkill truncate truncate64
    ugetrlimit umask uname unlink unlinkat uretprobe utime utimensat utimensat_time64 utimes
    vfork vmsplice wait4 waitid waitpid write writev
    """.split()
)
"""containerd's unconditional allow list, in its order."""

RUNTIME_DEFAULT_ALLOWED_EXTRA: tuple[str, ...] = (
    # Allowed on kernels >= 4.8 (every supported node).
    "process_vm_readv", "process_vm_writev", "ptrace",
    # amd64 only.
    "arch_prctl", "modify_ldt",
    # arm / arm64 only.
    "arm_fadvise64_64", "arm_sync_file_range", "sync_file_range2", "breakpoint", "cacheflush",
    "set_tls",
)  # fmt: skip

AF_ALG, AF_VSOCK = 38, 40
CLONE_NAMESPACE_FLAGS = 0x7E020000
"""CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET."""
ENOSYS = 38

ADDITIONS: dict[str, str] = {
    "clone": "bubblewrap creates its namespaces with clone(2) and the CLONE_NEW* flags, "
    "which the runtime default allows only without them (its masked-equal rule on "
    "argument 0 is replaced by an unconditional allow)",
    "unshare": "bubblewrap 0.8 unshares a second user namespace to map the sandbox's "
    "uid/gid 65534 (without it: 'unshare user ns: Operation not permitted')",
    "mount": "the sandbox's file system: bind mounts, tmpfs, proc, devpts and the "
    "remounts read-only, all inside its own mount namespace",
    "umount2": "bubblewrap detaches the old root after pivot_root",
    "pivot_root": "bubblewrap switches to the sandbox's new root",
    "sethostname": "the command sandbox sets its own host name ('--hostname sandbox', in its "
    "own UTS namespace)",
}
"""Each call the gateway's profile allows on top of the runtime default, and why."""

NOT_ADDED: dict[str, str] = {
    "clone3": "stays ENOSYS as in the runtime default: glibc then falls back to clone(2), "
    "whose flags seccomp can see (clone3 passes them in memory)",
    "setns": "bubblewrap joins no existing namespace with the gateway's command lines "
    "(only its --userns/--pidns options would)",
    "mount_setattr": "the new mount API (also open_tree, move_mount, fsopen, fsconfig, "
    "fsmount) is not used by bubblewrap 0.8",
}
"""Calls one might expect bubblewrap to need that the measurement showed it does not."""


def _allow(*names: str) -> dict[str, Any]:
    return {"names": list(names), "action": "SCMP_ACT_ALLOW"}


def _allow_if(name: str, index: int, op: str, value: int) -> dict[str, Any]:
    return {
        "names": [name],
        "action": "SCMP_ACT_ALLOW",
        "args": [{"index": index, "value": value, "op": op}],
    }


def runtime_default() -> dict[str, Any]:
    """containerd's RuntimeDefault for a container without capabilities (amd64 + arm64)."""
    syscalls = [
        _allow(*RUNTIME_DEFAULT_ALLOWED, *RUNTIME_DEFAULT_ALLOWED_EXTRA),
        # socket(2) for every address family but AF_ALG and AF_VSOCK, as three
        # single-condition rules (runc turns two conditions on one argument into an OR).
        _allow_if("socket", 0, "SCMP_CMP_LT", AF_ALG),
        _allow_if("socket", 0, "SCMP_CMP_EQ", AF_ALG + 1),
        _allow_if("socket", 0, "SCMP_CMP_GT", AF_VSOCK),
        *(
            _allow_if("personality", 0, "SCMP_CMP_EQ", persona)
            for persona in (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)
        ),
        {
            "names": ["clone"],
            "action": "SCMP_ACT_ALLOW",
            "args": [
                {
                    "index": 0,
                    "value": CLONE_NAMESPACE_FLAGS,
                    "valueTwo": 0,
                    "op": "SCMP_CMP_MASKED_EQ",
                }
            ],
        },  # fmt: skip
        {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": ENOSYS},
    ]
    return {
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": list(ARCHITECTURES),
        "syscalls": syscalls,
    }


def profile() -> dict[str, Any]:
    """The gateway's profile: ``runtime_default()`` with the namespace-flag rule of ``clone``
    replaced by one unconditional rule for every name of ``ADDITIONS``."""
    base = runtime_default()
    kept = [rule for rule in base["syscalls"] if rule["names"] != ["clone"]]
    return {**base, "syscalls": [*kept, _allow(*ADDITIONS)]}


def localhost_profile() -> str:
    """``securityContext.seccompProfile.localhostProfile`` of the gateway: the file the
    operator writes, relative to the kubelet's seccomp root."""
    return f"operator/{PROFILE_NAME}.json"


def render_json() -> str:
    """The profile as the node reads it (the same content the operator writes)."""
    return json.dumps(profile(), indent=2) + "\n"


def seccomp_profile_resource() -> dict[str, Any]:
    """The Security Profiles Operator's ``SeccompProfile`` holding ``profile()``."""
    return {
        "apiVersion": SPO_API_VERSION,
        "kind": "SeccompProfile",
        "metadata": {
            "name": PROFILE_NAME,
            "annotations": {
                "description": "massgen mcp-gateway: containerd's RuntimeDefault plus the "
                "namespace and mount calls bubblewrap needs (deploy/k8s/seccomp.py)",
            },
        },
        "spec": profile(),
    }

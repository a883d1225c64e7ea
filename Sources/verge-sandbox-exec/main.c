// verge-sandbox-exec: the last step on the host's side of a worker's sandbox. It runs as root between the host's
// fork and bubblewrap, does what must happen before any code of the function can run, then executes bubblewrap:
//
//   1. joins the worker's cgroups (so every process the function starts is counted and limited from its first
//      instruction),
//   2. sets resource limits,
//   3. stages the paths the sandbox binds (bundle, runtime) inside a private mount namespace, so the unprivileged
//      bubblewrap can reach them whatever the permissions of the directories above them on the host,
//   4. drops to the worker's unprivileged uid/gid with no supplementary groups and no new privileges,
//   5. arranges to be killed if the host dies, then executes PROGRAM (bubblewrap).
//
// With --outbound, the worker gets outbound network through slirp4netns (see outbound.c): PROGRAM must be
// bubblewrap started with `--info-fd INFO_FD --block-fd BLOCK_FD`, and nothing of the function runs before the
// network is up.
//
// Before anything else, every descriptor from --keep-fds N on is closed: whatever the host had open without
// close-on-exec (listening sockets, connections) must never reach a function.
//
// Usage: verge-sandbox-exec --keep-fds N [--join FILE]... [--rlimit NAME=VALUE]... [--stage-root DIR] [--stage SRC NAME]...
//                           [--user UID:GID] [--parent PID] [--outbound SLIRP4NETNS INFO_FD BLOCK_FD]
//                           -- PROGRAM [ARG]...
//        verge-sandbox-exec --keep-fds N [--join FILE]... [--stage-root DIR] --park FD --parent PID
//
// With --park, the helper is started ahead of its worker (so joining the cgroup, which on cgroup v1 waits for an
// RCU grace period, and the helper's own start are off the worker's start path): it joins the cgroups, writes "R"
// to FD (a SOCK_SEQPACKET socket whose other end only the host holds), and waits. The host then sends one message:
// the rest of the options, NUL-separated (everything above but --keep-fds, --join and --park, plus --private-net),
// with the worker's descriptors attached (SCM_RIGHTS), which become fds 1, 2, 3, … in order (stdin stays
// /dev/null); every other descriptor, FD included, is closed, and the helper goes on as if started with those
// options. End of file on FD
// (the host closed it, or died) ends the helper with status 0 before anything of a worker happened.
//
// With --stage-root, a parked helper also prepares its private mount namespace and the staging tmpfs ahead; the
// worker's options must then name the same root.
//
// A parked helper also makes the worker's network namespace ahead (creating one costs about half a millisecond,
// most of it the kernel's per-namespace set-up): a new one with only `lo`, up. With --private-net the host has left
// --unshare-net out of bubblewrap's arguments and the worker runs in that namespace; the helper checks that it is
// not the host's before going on. A worker with --outbound goes back to the host's namespace first (slirp4netns must
// reach the outside; bubblewrap then makes the worker's own, as without a parked helper). Without either, bubblewrap
// makes a namespace inside this one.
//
// Any failure exits with status 125 and one line on stderr; nothing is executed then.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "outbound.h"

#define MAX_ITEMS 32

void fail(const char *format, ...) {
    va_list args;
    va_start(args, format);
    fputs("verge-sandbox-exec: ", stderr);
    vfprintf(stderr, format, args);
    fputc('\n', stderr);
    va_end(args);
    _exit(125);
}

unsigned long long number(const char *text, const char *what) {
    char *end = NULL;
    errno = 0;
    unsigned long long value = strtoull(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || text[0] == '-') fail("invalid %s '%s'", what, text);
    return value;
}

static int resource(const char *name) {
    if (strcmp(name, "nofile") == 0) return RLIMIT_NOFILE;
    if (strcmp(name, "fsize") == 0) return RLIMIT_FSIZE;
    if (strcmp(name, "core") == 0) return RLIMIT_CORE;
    if (strcmp(name, "as") == 0) return RLIMIT_AS;
    if (strcmp(name, "nproc") == 0) return RLIMIT_NPROC;
    if (strcmp(name, "stack") == 0) return RLIMIT_STACK;
    fail("unknown resource limit '%s'", name);
    return -1;
}

static void join_cgroup(const char *file) {
    int fd = open(file, O_WRONLY | O_CLOEXEC);
    if (fd < 0) fail("cannot open %s: %s", file, strerror(errno));
    char pid[32];
    int length = snprintf(pid, sizeof pid, "%d\n", (int)getpid());
    if (write(fd, pid, (size_t)length) != length) fail("cannot join cgroup %s: %s", file, strerror(errno));
    close(fd);
}

// A private mount namespace with an empty tmpfs at `root`, where stage() binds the paths the sandbox needs. A parked
// helper does this while it waits: none of it depends on the worker.
static void prepare_stage(const char *root) {
    if (unshare(CLONE_NEWNS) != 0) fail("cannot create a mount namespace: %s", strerror(errno));
    // Nothing mounted from here on may reach the host's namespace.
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0)
        fail("cannot make the mounts private: %s", strerror(errno));
    if (mount("verge-stage", root, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0755,size=64k") != 0)
        fail("cannot mount the staging directory %s: %s", root, strerror(errno));
}

static void stage(const char *root, char *const sources[], char *const names[], int count) {
    for (int index = 0; index < count; index++) {
        const char *name = names[index];
        if (name[0] == '\0' || strchr(name, '/') != NULL || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
            fail("invalid stage name '%s'", name);
        char target[PATH_MAX];
        if (snprintf(target, sizeof target, "%s/%s", root, name) >= (int)sizeof target) fail("stage path too long");
        if (mkdir(target, 0755) != 0) fail("cannot create %s: %s", target, strerror(errno));
        if (mount(sources[index], target, NULL, MS_BIND | MS_REC, NULL) != 0)
            fail("cannot stage %s: %s", sources[index], strerror(errno));
        if (mount(NULL, target, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) != 0)
            fail("cannot make %s read-only: %s", target, strerror(errno));
    }
    if (mount(NULL, root, NULL, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0755,size=64k") != 0)
        fail("cannot make the staging directory read-only: %s", strerror(errno));
}

struct options {
    char *joins[MAX_ITEMS];
    int join_count;
    int limit_resources[MAX_ITEMS];
    unsigned long long limit_values[MAX_ITEMS];
    int limit_count;
    const char *stage_root;
    char *stage_sources[MAX_ITEMS];
    char *stage_names[MAX_ITEMS];
    int stage_count;
    int switch_user;
    uid_t uid;
    gid_t gid;
    pid_t parent;
    const char *slirp4netns;
    int info_fd;
    int block_fd;
    int keep_fds;
    int park_fd;
    int private_net;
};

// Reads options from argv[index] on; returns the index of PROGRAM (argc when there is none). `parked`: the options
// a parked helper receives, which may not join cgroups, keep descriptors or park again.
static int parse(int argc, char *argv[], int index, struct options *o, int parked) {
    for (; index < argc; index++) {
        const char *option = argv[index];
        if (strcmp(option, "--") == 0) return index + 1;
        if (parked && (strcmp(option, "--join") == 0 || strcmp(option, "--keep-fds") == 0 ||
                       strcmp(option, "--park") == 0))
            fail("%s is not accepted by a parked helper", option);
        if (strcmp(option, "--join") == 0 && index + 1 < argc) {
            if (o->join_count == MAX_ITEMS) fail("too many --join");
            o->joins[o->join_count++] = argv[++index];
        } else if (strcmp(option, "--rlimit") == 0 && index + 1 < argc) {
            if (o->limit_count == MAX_ITEMS) fail("too many --rlimit");
            char *spec = argv[++index];
            char *equals = strchr(spec, '=');
            if (equals == NULL) fail("--rlimit takes NAME=VALUE, not '%s'", spec);
            *equals = '\0';
            o->limit_resources[o->limit_count] = resource(spec);
            o->limit_values[o->limit_count++] = number(equals + 1, "resource limit");
        } else if (strcmp(option, "--stage-root") == 0 && index + 1 < argc) {
            o->stage_root = argv[++index];
        } else if (strcmp(option, "--stage") == 0 && index + 2 < argc) {
            if (o->stage_count == MAX_ITEMS) fail("too many --stage");
            o->stage_sources[o->stage_count] = argv[++index];
            o->stage_names[o->stage_count++] = argv[++index];
        } else if (strcmp(option, "--user") == 0 && index + 1 < argc) {
            char *spec = argv[++index];
            char *colon = strchr(spec, ':');
            if (colon == NULL) fail("--user takes UID:GID, not '%s'", spec);
            *colon = '\0';
            o->uid = (uid_t)number(spec, "uid");
            o->gid = (gid_t)number(colon + 1, "gid");
            if (o->uid == 0 || o->gid == 0) fail("refusing to run a worker as root");
            o->switch_user = 1;
        } else if (strcmp(option, "--keep-fds") == 0 && index + 1 < argc) {
            o->keep_fds = (int)number(argv[++index], "descriptor count");
            if (o->keep_fds < 3 || o->keep_fds > 64) fail("--keep-fds must be between 3 and 64");
        } else if (strcmp(option, "--park") == 0 && index + 1 < argc) {
            o->park_fd = (int)number(argv[++index], "park descriptor");
            if (o->park_fd < 3 || o->park_fd > 64) fail("--park takes a descriptor between 3 and 64");
        } else if (strcmp(option, "--private-net") == 0) {
            if (!parked) fail("--private-net is for a parked helper's worker");
            o->private_net = 1;
        } else if (strcmp(option, "--parent") == 0 && index + 1 < argc) {
            o->parent = (pid_t)number(argv[++index], "parent pid");
        } else if (strcmp(option, "--outbound") == 0 && index + 3 < argc) {
            o->slirp4netns = argv[++index];
            o->info_fd = (int)number(argv[++index], "info descriptor");
            o->block_fd = (int)number(argv[++index], "block descriptor");
            if (o->slirp4netns[0] != '/') fail("slirp4netns must be an absolute path, not '%s'", o->slirp4netns);
            if (o->info_fd < 3 || o->block_fd < 3 || o->info_fd == o->block_fd || o->info_fd > 255 || o->block_fd > 255)
                fail("invalid --outbound descriptors %d and %d", o->info_fd, o->block_fd);
        } else {
            fail("unknown or incomplete option '%s'", option);
        }
    }
    return index;
}

// A new network namespace for the worker, with `lo` up (the kernel gives it 127.0.0.1 and ::1).
static void make_network_namespace(void) {
    if (unshare(CLONE_NEWNET) != 0) fail("cannot create a network namespace: %s", strerror(errno));
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) fail("cannot open a socket in the new network namespace: %s", strerror(errno));
    struct ifreq request;
    memset(&request, 0, sizeof request);
    strcpy(request.ifr_name, "lo");
    if (ioctl(fd, SIOCGIFFLAGS, &request) != 0) fail("cannot read the flags of lo: %s", strerror(errno));
    request.ifr_flags |= IFF_UP;
    if (ioctl(fd, SIOCSIFFLAGS, &request) != 0) fail("cannot bring lo up: %s", strerror(errno));
    close(fd);
}

// A process's network namespace ("self" or a pid), identified by st_dev and st_ino.
static void network_namespace(const char *process, struct stat *info) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%s/ns/net", process);
    if (stat(path, info) != 0) fail("cannot read %s: %s", path, strerror(errno));
}

// Back to the host's network namespace (the parent's: the host's own, checked to be our parent by the caller).
static void leave_network_namespace(pid_t parent) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/ns/net", (int)parent);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail("cannot open %s: %s", path, strerror(errno));
    if (setns(fd, CLONE_NEWNET) != 0) fail("cannot return to the host's network namespace: %s", strerror(errno));
    close(fd);
}

#define PARK_MESSAGE_MAX 65536
#define PARK_FDS_MAX 8

// Parked: says so on `fd`, waits for the worker's options and descriptors, installs the descriptors at 1, 2, …
// and closes everything else. Returns the worker's argv (static storage), its count in *count.
static char **park(int fd, int *count) {
    // The host may die while we wait: then so do we (we are still root, so the signal stays set).
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0) fail("cannot set the parent-death signal: %s", strerror(errno));
    static char message[PARK_MESSAGE_MAX + 1];
    // Every byte could end a word: room for them all, the program name and the terminating NULL.
    static char *words[PARK_MESSAGE_MAX + 2];
    if (write(fd, "R", 1) != 1) fail("cannot report being parked: %s", strerror(errno));
    union {
        struct cmsghdr header;
        char space[CMSG_SPACE(sizeof(int) * PARK_FDS_MAX)];
    } control;
    struct iovec vector = {.iov_base = message, .iov_len = PARK_MESSAGE_MAX};
    struct msghdr header = {
        .msg_iov = &vector, .msg_iovlen = 1, .msg_control = control.space, .msg_controllen = sizeof control.space};
    ssize_t length;
    do {
        length = recvmsg(fd, &header, MSG_CMSG_CLOEXEC);
    } while (length < 0 && errno == EINTR);
    if (length == 0) _exit(0);  // the host let us go: nothing of a worker happened here
    if (length < 0) fail("cannot receive the worker's options: %s", strerror(errno));
    if (header.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) fail("the worker's options or descriptors were truncated");
    int received[PARK_FDS_MAX];
    int received_count = 0;
    for (struct cmsghdr *item = CMSG_FIRSTHDR(&header); item != NULL; item = CMSG_NXTHDR(&header, item)) {
        if (item->cmsg_level != SOL_SOCKET || item->cmsg_type != SCM_RIGHTS) continue;
        int n = (int)((item->cmsg_len - CMSG_LEN(0)) / sizeof(int));
        for (int i = 0; i < n && received_count < PARK_FDS_MAX; i++)
            memcpy(&received[received_count++], CMSG_DATA(item) + i * sizeof(int), sizeof(int));
    }
    if (received_count < 3) fail("a parked helper needs at least stdout, stderr and the worker's channel");
    // Out of the way of the targets first, then into place (dup2 clears close-on-exec).
    for (int i = 0; i < received_count; i++) {
        int high = fcntl(received[i], F_DUPFD_CLOEXEC, 100);
        if (high < 0) fail("cannot move a received descriptor: %s", strerror(errno));
        close(received[i]);
        received[i] = high;
    }
    close(fd);
    for (int i = 0; i < received_count; i++)
        if (dup2(received[i], i + 1) < 0) fail("cannot install a received descriptor: %s", strerror(errno));
    if (close_range((unsigned)received_count + 1, ~0U, 0) != 0)
        fail("cannot close inherited descriptors: %s", strerror(errno));
    // The message: NUL-separated words, the last one NUL-terminated too.
    message[length] = '\0';
    if (message[length - 1] != '\0') fail("the worker's options do not end with NUL");
    int n = 0;
    words[n++] = "verge-sandbox-exec";
    for (ssize_t start = 0; start < length;) {
        words[n++] = &message[start];
        start += (ssize_t)strlen(&message[start]) + 1;
    }
    words[n] = NULL;
    *count = n;
    return words;
}

int main(int argc, char *argv[]) {
    struct options o = {.info_fd = -1, .block_fd = -1, .keep_fds = -1, .park_fd = -1};
    int index = parse(argc, argv, 1, &o, 0);
    int stage_prepared = 0;
    if (o.keep_fds < 0) fail("--keep-fds is required");
    // First: nothing of the host beyond the descriptors the worker is given.
    if (close_range((unsigned)o.keep_fds, ~0U, 0) != 0) fail("cannot close inherited descriptors: %s", strerror(errno));
    if (o.park_fd >= 0) {
        if (o.park_fd >= o.keep_fds) fail("--park %d is not among the kept descriptors", o.park_fd);
        if (index < argc) fail("a parked helper takes its program from the host");
        if (o.parent == 0) fail("--park needs --parent");
        if (getppid() != o.parent) fail("the host exited before the helper parked");
    }
    for (int i = 0; i < o.join_count; i++) join_cgroup(o.joins[i]);
    if (o.park_fd >= 0) {
        make_network_namespace();
        struct stat own_network;
        network_namespace("self", &own_network);
        const char *prepared_root = o.stage_root;
        if (prepared_root != NULL) prepare_stage(prepared_root);
        o.stage_root = NULL;
        int count = 0;
        char **words = park(o.park_fd, &count);
        o.park_fd = -1;
        argc = count;
        argv = words;
        index = parse(argc, argv, 1, &o, 1);
        if (getppid() != o.parent) fail("the host exited before the worker started");
        if (o.stage_root != NULL) {
            if (prepared_root == NULL || strcmp(prepared_root, o.stage_root) != 0)
                fail("the worker's --stage-root is not the one this helper prepared while parked");
            stage_prepared = 1;
        }
        if (o.slirp4netns != NULL) {
            if (o.private_net) fail("--private-net and --outbound exclude each other");
            leave_network_namespace(o.parent);
        }
        // Fail closed: a worker told it has a network namespace of its own runs in the one made above, never in the
        // host's.
        if (o.private_net) {
            char parent[32];
            snprintf(parent, sizeof parent, "%d", (int)o.parent);
            struct stat now, host;
            network_namespace("self", &now);
            network_namespace(parent, &host);
            if (now.st_dev != own_network.st_dev || now.st_ino != own_network.st_ino)
                fail("the worker's network namespace is not the one made for it");
            if (now.st_dev == host.st_dev && now.st_ino == host.st_ino)
                fail("the worker's network namespace is the host's");
        }
    }
    if (index >= argc) fail("no program to execute");
    if (argv[index][0] != '/') fail("the program must be an absolute path, not '%s'", argv[index]);
    if (o.stage_count > 0 && o.stage_root == NULL) fail("--stage needs --stage-root");

    for (int i = 0; i < o.limit_count; i++) {
        struct rlimit limit = {.rlim_cur = (rlim_t)o.limit_values[i], .rlim_max = (rlim_t)o.limit_values[i]};
        if (setrlimit(o.limit_resources[i], &limit) != 0) fail("cannot set a resource limit: %s", strerror(errno));
    }
    if (o.stage_root != NULL) {
        if (!stage_prepared) prepare_stage(o.stage_root);
        stage(o.stage_root, o.stage_sources, o.stage_names, o.stage_count);
    }
    // Still root: give the tenant's slirp4netns a usable /dev/net/tun in this private mount namespace.
    if (o.slirp4netns != NULL) outbound_prepare_tun(o.stage_root != NULL);

    if (o.switch_user) {
        if (setgroups(0, NULL) != 0) fail("cannot drop supplementary groups: %s", strerror(errno));
        if (setresgid(o.gid, o.gid, o.gid) != 0) fail("cannot switch to gid %u: %s", (unsigned)o.gid, strerror(errno));
        if (setresuid(o.uid, o.uid, o.uid) != 0) fail("cannot switch to uid %u: %s", (unsigned)o.uid, strerror(errno));
        if (getuid() != o.uid || geteuid() != o.uid || getgid() != o.gid || getegid() != o.gid)
            fail("the switch to %u:%u did not take", (unsigned)o.uid, (unsigned)o.gid);
        if (setuid(0) == 0) fail("could regain root after dropping it");
    }
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) fail("cannot set no_new_privs: %s", strerror(errno));
    // Set after the user switch (which clears it): if the host dies, so does the sandbox.
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0) fail("cannot set the parent-death signal: %s", strerror(errno));
    if (o.parent != 0 && getppid() != o.parent) fail("the host exited before the worker started");
    // As the tenant's user, before bubblewrap: a child that attaches slirp4netns to the sandbox's network namespace
    // and only then lets the sandbox run.
    if (o.slirp4netns != NULL) outbound_start(o.slirp4netns, o.info_fd, o.block_fd);

    execv(argv[index], &argv[index]);
    fail("cannot execute %s: %s", argv[index], strerror(errno));
    return 125;
}

// Outbound network for a worker, opted into by its manifest (`"network": "outbound"`).
//
// bubblewrap creates the worker's network namespace (only `lo`). Before it executes bubblewrap, the helper forks an
// attacher, which runs as the tenant's unprivileged user in the worker's cgroup and:
//
//   1. reads the sandbox's pid from bubblewrap's --info-fd,
//   2. opens that process's network namespace and the user namespace owning it (bubblewrap runs the worker in a
//      nested user namespace, so the pid's own one would not do),
//   3. starts slirp4netns on them (`--disable-host-loopback --enable-seccomp`), which creates `tap0` and forwards
//      the namespace's traffic through sockets of its own on the host; the host's firewall rejects those sockets'
//      packets to the host's own addresses,
//   4. when slirp4netns reports `tap0` made, configures it (10.0.2.100/24, default route via 10.0.2.2) from a child
//      that joins the namespaces — not slirp4netns's --configure, which also brings `lo` up and so races with
//      bubblewrap's own set-up of `lo` —
//   5. writes to bubblewrap's --block-fd, and only then does the sandbox run the function.
//
// If slirp4netns fails, the attacher kills bubblewrap (the worker fails to start, with one line on stderr naming the
// cause): a function is never left waiting, nor running without what it asked for. The attacher then waits for
// slirp4netns; both die with bubblewrap (parent-death signals) and with the worker's cgroup.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/nsfs.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "outbound.h"

void outbound_prepare_tun(int already_private) {
    struct stat status;
    if (stat("/dev/net/tun", &status) != 0 || !S_ISCHR(status.st_mode))
        fail("no /dev/net/tun for outbound network: load the tun kernel module");
    if (!already_private) {
        if (unshare(CLONE_NEWNS) != 0) fail("cannot create a mount namespace: %s", strerror(errno));
        if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0)
            fail("cannot make the mounts private: %s", strerror(errno));
    }
    if (mount("verge-tun", "/dev/net", "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755,size=4k") != 0)
        fail("cannot mount a tmpfs over /dev/net: %s", strerror(errno));
    if (mknod("/dev/net/tun", S_IFCHR | 0666, status.st_rdev) != 0 || chmod("/dev/net/tun", 0666) != 0)
        fail("cannot create /dev/net/tun: %s", strerror(errno));
}

// A close-on-exec copy of `fd` at 10 or above (clear of the descriptors bubblewrap is given); `fd` is closed.
static int moved_high(int fd) {
    int moved = fcntl(fd, F_DUPFD_CLOEXEC, 10);
    if (moved < 0) fail("cannot move a descriptor: %s", strerror(errno));
    close(fd);
    return moved;
}

static pid_t sandbox_launcher;
// The sandbox's own first process (bubblewrap's child), once bubblewrap has reported it: it waits on the block
// descriptor before it sets up its own death with its parent, so killing the launcher alone could leave it behind.
static pid_t sandbox_child;

// Fails in the attacher: the sandbox must not run without the network it was promised.
__attribute__((noreturn, format(printf, 1, 2))) static void attach_fail(const char *format, ...) {
    va_list args;
    va_start(args, format);
    fputs("verge-sandbox-exec: outbound network: ", stderr);
    vfprintf(stderr, format, args);
    fputc('\n', stderr);
    va_end(args);
    if (sandbox_child > 1) kill(sandbox_child, SIGKILL);
    kill(sandbox_launcher, SIGKILL);
    _exit(125);
}

// Reads bubblewrap's info (`{"child-pid": N, …}`) to its end. Returns 0 when bubblewrap exited without writing
// it (it reports its own error).
static pid_t read_child_pid(int fd) {
    char info[4096];
    size_t length = 0;
    for (;;) {
        ssize_t count = read(fd, info + length, sizeof info - 1 - length);
        if (count < 0 && errno == EINTR) continue;
        if (count <= 0) break;
        length += (size_t)count;
        if (length == sizeof info - 1) break;
    }
    info[length] = '\0';
    const char *key = strstr(info, "\"child-pid\":");
    if (key == NULL) return 0;
    char *end = NULL;
    long pid = strtol(key + strlen("\"child-pid\":"), &end, 10);
    if (end == key || pid <= 1) attach_fail("bubblewrap reported no valid child pid");
    return (pid_t)pid;
}

#define TAP_NAME "tap0"
#define TAP_MTU 65520

static void set_address(struct ifreq *request, const char *address) {
    struct sockaddr_in *in = (struct sockaddr_in *)&request->ifr_addr;
    memset(in, 0, sizeof *in);
    in->sin_family = AF_INET;
    inet_pton(AF_INET, address, &in->sin_addr);
}

// In a child that joins the sandbox's user and network namespaces: tap0 at 10.0.2.100/24, up, default route via
// slirp4netns's gateway 10.0.2.2. Returns 0, or an errno.
static int configure_tap(int userns, int netns) {
    pid_t child = fork();
    if (child < 0) return errno;
    if (child == 0) {
        if (setns(userns, CLONE_NEWUSER) != 0 || setns(netns, CLONE_NEWNET) != 0) _exit(errno);
        int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (sock < 0) _exit(errno);
        struct ifreq request;
        memset(&request, 0, sizeof request);
        strncpy(request.ifr_name, TAP_NAME, IFNAMSIZ - 1);
        request.ifr_mtu = TAP_MTU;
        if (ioctl(sock, SIOCSIFMTU, &request) != 0) _exit(errno);
        set_address(&request, "10.0.2.100");
        if (ioctl(sock, SIOCSIFADDR, &request) != 0) _exit(errno);
        set_address(&request, "255.255.255.0");
        if (ioctl(sock, SIOCSIFNETMASK, &request) != 0) _exit(errno);
        if (ioctl(sock, SIOCGIFFLAGS, &request) != 0) _exit(errno);
        request.ifr_flags |= IFF_UP | IFF_RUNNING;
        if (ioctl(sock, SIOCSIFFLAGS, &request) != 0) _exit(errno);
        struct rtentry route;
        memset(&route, 0, sizeof route);
        struct sockaddr_in *gateway = (struct sockaddr_in *)&route.rt_gateway;
        gateway->sin_family = AF_INET;
        inet_pton(AF_INET, "10.0.2.2", &gateway->sin_addr);
        ((struct sockaddr_in *)&route.rt_dst)->sin_family = AF_INET;
        ((struct sockaddr_in *)&route.rt_genmask)->sin_family = AF_INET;
        route.rt_flags = RTF_UP | RTF_GATEWAY;
        route.rt_dev = TAP_NAME;
        if (ioctl(sock, SIOCADDRT, &route) != 0) _exit(errno);
        _exit(0);
    }
    int status = 0;
    while (waitpid(child, &status, 0) < 0) {
        if (errno != EINTR) return errno;
    }
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    return EINTR;
}

__attribute__((noreturn)) static void attach(const char *slirp4netns, int info, int block) {
    pid_t pid = read_child_pid(info);
    close(info);
    if (pid == 0) _exit(0);
    sandbox_child = pid;

    char path[64];
    snprintf(path, sizeof path, "/proc/%d/ns/net", (int)pid);
    int netns = open(path, O_RDONLY);
    if (netns < 0) attach_fail("cannot open %s: %s", path, strerror(errno));
    int userns = ioctl(netns, NS_GET_USERNS);
    if (userns < 0) attach_fail("cannot find the owner of the sandbox's network namespace: %s", strerror(errno));
    if (fcntl(netns, F_SETFD, 0) != 0 || fcntl(userns, F_SETFD, 0) != 0)
        attach_fail("cannot pass the namespaces on: %s", strerror(errno));
    int ready[2];
    int errors[2];
    if (pipe2(ready, O_CLOEXEC) != 0 || pipe2(errors, O_CLOEXEC) != 0)
        attach_fail("cannot create a pipe: %s", strerror(errno));

    pid_t attacher = getpid();
    pid_t slirp = fork();
    if (slirp < 0) attach_fail("cannot fork: %s", strerror(errno));
    if (slirp == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
        if (getppid() != attacher) _exit(125);
        int null = open("/dev/null", O_RDWR);
        if (null < 0 || dup2(null, 0) < 0 || dup2(null, 1) < 0 || dup2(errors[1], 2) < 0) _exit(125);
        if (fcntl(ready[1], F_SETFD, 0) != 0) _exit(125);
        char ready_option[32], userns_option[64], netns_path[32];
        snprintf(ready_option, sizeof ready_option, "--ready-fd=%d", ready[1]);
        snprintf(userns_option, sizeof userns_option, "--userns-path=/proc/self/fd/%d", userns);
        snprintf(netns_path, sizeof netns_path, "/proc/self/fd/%d", netns);
        char *arguments[] = {
            (char *)slirp4netns, "--mtu=65520", "--disable-host-loopback", "--enable-seccomp", "--netns-type=path",
            userns_option, ready_option, netns_path, TAP_NAME, NULL,
        };
        execv(slirp4netns, arguments);
        fprintf(stderr, "cannot execute %s: %s\n", slirp4netns, strerror(errno));
        _exit(125);
    }
    close(ready[1]);
    close(errors[1]);

    // Wait for "1" on the ready pipe, keeping what slirp4netns says on stderr in case it fails.
    char said[512];
    size_t said_length = 0;
    int up = 0;
    struct pollfd watched[2] = {{.fd = ready[0], .events = POLLIN}, {.fd = errors[0], .events = POLLIN}};
    while (!up) {
        if (poll(watched, 2, -1) < 0) {
            if (errno == EINTR) continue;
            attach_fail("poll: %s", strerror(errno));
        }
        if (watched[1].revents != 0) {
            char buffer[256];
            ssize_t count = read(errors[0], buffer, sizeof buffer);
            if (count > 0 && said_length < sizeof said - 1) {
                size_t room = sizeof said - 1 - said_length;
                size_t take = (size_t)count < room ? (size_t)count : room;
                memcpy(said + said_length, buffer, take);
                said_length += take;
            } else if (count == 0) {
                watched[1].fd = -1;
            }
        }
        if (watched[0].revents != 0) {
            char byte = 0;
            ssize_t count = read(ready[0], &byte, 1);
            if (count < 0 && errno == EINTR) continue;
            if (count == 1 && byte == '1') {
                up = 1;
            } else {
                int status = 0;
                waitpid(slirp, &status, 0);
                said[said_length] = '\0';
                for (char *c = said; *c; c++)
                    if (*c == '\n') *c = ' ';
                int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
                attach_fail("%s failed (status %d): %s", slirp4netns, code, said);
            }
        }
    }
    close(ready[0]);
    int problem = configure_tap(userns, netns);
    if (problem != 0) attach_fail("cannot configure %s: %s", TAP_NAME, strerror(problem));
    close(netns);
    close(userns);
    char go = '1';
    if (write(block, &go, 1) != 1) attach_fail("cannot release the sandbox: %s", strerror(errno));
    close(block);
    // slirp4netns must not get SIGPIPE on stderr: read and drop what it says until it exits.
    char buffer[256];
    for (;;) {
        ssize_t count = read(errors[0], buffer, sizeof buffer);
        if (count > 0 || (count < 0 && errno == EINTR)) continue;
        break;
    }
    int status = 0;
    while (waitpid(slirp, &status, 0) < 0 && errno == EINTR) {}
    _exit(0);
}

void outbound_start(const char *slirp4netns, int info_fd, int block_fd) {
    int info[2];
    int block[2];
    if (pipe2(info, O_CLOEXEC) != 0 || pipe2(block, O_CLOEXEC) != 0)
        fail("cannot create a pipe: %s", strerror(errno));
    for (int i = 0; i < 2; i++) {
        info[i] = moved_high(info[i]);
        block[i] = moved_high(block[i]);
    }
    sandbox_launcher = getpid();
    pid_t child = fork();
    if (child < 0) fail("cannot fork: %s", strerror(errno));
    if (child == 0) {
        // Dies with bubblewrap (this process, once it executes it).
        if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0 || getppid() != sandbox_launcher) _exit(125);
        // Keep only stderr (for a failure) and the two pipe ends: not the worker's channel, not its stdout.
        int null = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (null < 0 || dup2(null, 0) < 0 || dup2(null, 1) < 0) attach_fail("cannot open /dev/null");
        if (dup3(info[0], 3, O_CLOEXEC) < 0 || dup3(block[1], 4, O_CLOEXEC) < 0)
            attach_fail("cannot arrange descriptors: %s", strerror(errno));
        close_range(5, ~0U, 0);
        attach(slirp4netns, 3, 4);
    }
    close(info[0]);
    close(block[1]);
    if (dup2(info[1], info_fd) < 0 || dup2(block[0], block_fd) < 0)
        fail("cannot arrange descriptors: %s", strerror(errno));
    close(info[1]);
    close(block[0]);
}

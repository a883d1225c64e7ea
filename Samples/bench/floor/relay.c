// relay: the floor of Verge's warm path, for Samples/bench/warm.sh. NOT part of the product.
//
// It does what a Verge host must do for every warm call and nothing else, as cheaply as C on one thread can: accept
// HTTP/1.1 keep-alive connections, read a GET, hand it to an idle worker process as `request_head` + `request_end`
// frames of the worker protocol (Runtime/PROTOCOL.md) over the worker's socket pair, read the worker's response
// frames, and write one HTTP response. The workers are the product's own runtimes (the same `verge_worker.py` and
// function), unsandboxed. What a Verge host does on top is left out on purpose: no usage record, no sandbox or cgroup
// accounting, no deadlines, no header validation or translation (the response is 200 with the worker's body), no
// request bodies, no invocation ids worth the name. So its requests/s is an upper bound for any host built this way
// (a process per worker, a host process in between) on this machine, and its CPU per request a lower bound.
//
// Usage: relay PORT WORKERS FUNCTION HOST_NAME -- COMMAND [ARG]...
//   Starts WORKERS copies of COMMAND with the channel at fd 3 (the environment is the relay's own: set VERGE_* as the
//   host would), waits for each one's `ready` frame, prints "ready PORT" and serves until killed.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNECTIONS 4096
#define MAX_WORKERS 64
#define BUFFER 65536

struct connection {
    int fd;
    size_t used;
    int waiting;  // a request is parsed and waits for (or is at) a worker
    char in[BUFFER];
};

struct worker {
    int fd;
    int client;  // connection index, or -1 when idle
    size_t used;
    size_t body_start, body_length;
    char in[BUFFER];
};

static struct connection *connections[MAX_CONNECTIONS];
static struct worker workers[MAX_WORKERS];
static int worker_count;
static int queue[MAX_CONNECTIONS];
static int queue_head, queue_length;
static const char *function_name, *host_name;
static unsigned long long invocations;

static void die(const char *what) {
    perror(what);
    exit(1);
}

static void put32(unsigned char *p, uint32_t v) {
    p[0] = v >> 24;
    p[1] = v >> 16;
    p[2] = v >> 8;
    p[3] = v;
}

static uint32_t get32(const char *p) {
    const unsigned char *u = (const unsigned char *)p;
    return ((uint32_t)u[0] << 24) | ((uint32_t)u[1] << 16) | ((uint32_t)u[2] << 8) | u[3];
}

static void dispatch(int w, int c) {
    struct worker *worker = &workers[w];
    worker->client = c;
    worker->used = 0;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    long long deadline = (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000 + 5000;
    char head[1024];
    int n = snprintf(head + 5, sizeof head - 5,
        "{\"deadline_ms\":%lld,\"function\":{\"name\":\"%s\",\"tenant\":\"default\",\"version\":\"floor\"},"
        "\"headers\":[[\"host\",\"127.0.0.1\"]],\"host\":{\"latitude\":50.11,\"longitude\":8.68,\"name\":\"%s\"},"
        "\"invocation_id\":\"floor-%llu\",\"method\":\"GET\",\"path\":\"/%s\",\"query\":\"\"}",
        deadline, function_name, host_name, ++invocations, function_name);
    put32((unsigned char *)head, (uint32_t)n + 1);
    head[4] = 0x10;
    static const char end[5] = {0, 0, 0, 1, 0x12};
    struct iovec iov[2] = {{head, (size_t)n + 5}, {(void *)end, 5}};
    if (writev(worker->fd, iov, 2) != n + 10) die("writev to a worker");
}

// Reads the worker's frames; on response_end answers the client and frees the worker.
static void worker_readable(int w) {
    struct worker *worker = &workers[w];
    ssize_t n = read(worker->fd, worker->in + worker->used, BUFFER - worker->used);
    if (n <= 0) {
        if (n < 0 && errno == EAGAIN) return;
        fprintf(stderr, "relay: a worker exited\n");
        exit(1);
    }
    worker->used += n;
    size_t offset = 0;
    int ended = 0;
    while (worker->used - offset >= 4) {
        uint32_t length = get32(worker->in + offset);
        if (length == 0 || length > BUFFER - 4) {
            fprintf(stderr, "relay: a worker sent a frame of %u bytes\n", length);
            exit(1);
        }
        if (worker->used - offset < 4 + length) break;
        unsigned char type = worker->in[offset + 4];
        if (type == 0x21) {
            worker->body_start = offset + 5;
            worker->body_length = length - 1;
        } else if (type == 0x22) {
            ended = 1;
        } else if (type != 0x20) {
            fprintf(stderr, "relay: a worker sent frame type 0x%02x\n", type);
            exit(1);
        }
        offset += 4 + length;
    }
    if (!ended) return;
    struct connection *client = connections[worker->client];
    char head[128];
    int h = snprintf(head, sizeof head,
        "HTTP/1.1 200 OK\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: %zu\r\n\r\n",
        worker->body_length);
    struct iovec iov[2] = {{head, (size_t)h}, {worker->in + worker->body_start, worker->body_length}};
    if (client) {
        if (writev(client->fd, iov, 2) < 0 && errno != EPIPE && errno != ECONNRESET) die("writev to a client");
        client->waiting = 0;
    }
    worker->client = -1;
    worker->used = 0;
    while (queue_length > 0) {
        int next = queue[queue_head];
        queue_head = (queue_head + 1) % MAX_CONNECTIONS;
        queue_length--;
        if (connections[next]) {
            dispatch(w, next);
            break;
        }
    }
}

static void request_ready(int c) {
    for (int w = 0; w < worker_count; w++) {
        if (workers[w].client < 0) {
            dispatch(w, c);
            return;
        }
    }
    queue[(queue_head + queue_length) % MAX_CONNECTIONS] = c;
    queue_length++;
}

static void client_readable(int epoll, int c) {
    struct connection *client = connections[c];
    ssize_t n = read(client->fd, client->in + client->used, BUFFER - client->used);
    if (n <= 0) {
        if (n < 0 && errno == EAGAIN) return;
        epoll_ctl(epoll, EPOLL_CTL_DEL, client->fd, NULL);
        close(client->fd);
        // A worker still serving it finds no client and drops the answer; a queued request is skipped.
        for (int w = 0; w < worker_count; w++)
            if (workers[w].client == c) workers[w].client = MAX_CONNECTIONS - 1;
        free(client);
        connections[c] = NULL;
        return;
    }
    client->used += n;
    char *end = memmem(client->in, client->used, "\r\n\r\n", 4);
    if (!end || client->waiting) return;
    size_t consumed = (size_t)(end - client->in) + 4;
    memmove(client->in, client->in + consumed, client->used - consumed);
    client->used -= consumed;
    client->waiting = 1;
    request_ready(c);
}

int main(int argc, char *argv[]) {
    if (argc < 7 || strcmp(argv[5], "--") != 0) {
        fprintf(stderr, "usage: relay PORT WORKERS FUNCTION HOST_NAME -- COMMAND [ARG]...\n");
        return 2;
    }
    int port = atoi(argv[1]);
    worker_count = atoi(argv[2]);
    function_name = argv[3];
    host_name = argv[4];
    if (worker_count < 1 || worker_count > MAX_WORKERS) {
        fprintf(stderr, "relay: WORKERS must be 1...%d\n", MAX_WORKERS);
        return 2;
    }
    int epoll = epoll_create1(EPOLL_CLOEXEC);
    if (epoll < 0) die("epoll_create1");
    for (int w = 0; w < worker_count; w++) {
        int pair[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) < 0) die("socketpair");
        pid_t pid = fork();
        if (pid < 0) die("fork");
        if (pid == 0) {
            if (dup2(pair[1], 3) < 0) die("dup2");
            execvp(argv[6], argv + 6);
            die("execvp");
        }
        close(pair[1]);
        workers[w].fd = pair[0];
        workers[w].client = -1;
        // The ready frame, read whole before serving.
        char frame[4096];
        size_t got = 0;
        while (got < 4 || got < 4 + get32(frame)) {
            ssize_t n = read(pair[0], frame + got, sizeof frame - got);
            if (n <= 0) {
                fprintf(stderr, "relay: worker %d exited before it was ready\n", w);
                return 1;
            }
            got += n;
        }
        if (frame[4] != 0x01) {
            fprintf(stderr, "relay: worker %d sent frame type 0x%02x instead of ready\n", w, frame[4]);
            return 1;
        }
        fcntl(pair[0], F_SETFL, O_NONBLOCK);
        struct epoll_event event = {.events = EPOLLIN, .data.u64 = (uint64_t)w << 32 | 2};
        if (epoll_ctl(epoll, EPOLL_CTL_ADD, pair[0], &event) < 0) die("epoll_ctl");
    }
    int listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(0x7f000001)};
    if (bind(listener, (struct sockaddr *)&address, sizeof address) < 0) die("bind");
    if (listen(listener, 1024) < 0) die("listen");
    struct epoll_event event = {.events = EPOLLIN, .data.u64 = 1};
    epoll_ctl(epoll, EPOLL_CTL_ADD, listener, &event);
    printf("ready %d\n", port);
    fflush(stdout);

    struct epoll_event events[256];
    for (;;) {
        int ready = epoll_wait(epoll, events, 256, -1);
        if (ready < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait");
        }
        for (int i = 0; i < ready; i++) {
            uint64_t data = events[i].data.u64;
            if (data == 1) {
                int fd;
                while ((fd = accept4(listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
                    int c = 0;
                    while (c < MAX_CONNECTIONS - 1 && connections[c]) c++;
                    if (c == MAX_CONNECTIONS - 1) {
                        close(fd);
                        continue;
                    }
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    connections[c] = calloc(1, sizeof(struct connection));
                    connections[c]->fd = fd;
                    struct epoll_event client = {.events = EPOLLIN, .data.u64 = (uint64_t)c << 32 | 3};
                    epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &client);
                }
            } else if ((data & 0xffffffff) == 2) {
                worker_readable((int)(data >> 32));
            } else {
                client_readable(epoll, (int)(data >> 32));
            }
        }
    }
}

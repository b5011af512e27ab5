/* proxy.c -- the fault proxy: a TCP relay per link that adds latency, partitions and resets.
 *
 * Threads. One event-loop thread (epoll, level-triggered) owns every connection. Control calls
 * from other threads take the proxy mutex, change the link's settings, mark it dirty and wake the
 * loop through an eventfd; the loop holds the same mutex while it handles a batch of events, so
 * everything it touches is ordered with the control calls, and it signals a condition variable
 * once the change is applied. A control call therefore returns with its fault in force. The mutex
 * is not on a hot path: only control calls and the loop take it.
 *
 * A connection is two pipes: up (client -> target) and down (target -> client). Each pipe is a
 * FIFO of chunks, one per read, each with the time it is due for delivery:
 *
 *     due = max(due of the previous chunk of this pipe, read time + latency + uniform(-j, +j))
 *
 * The max is what keeps bytes in order under jitter: a chunk can be late but never overtakes the
 * one read before it. The EOF of a side travels as an empty chunk in the same FIFO, so a FIN is
 * delayed like data and is passed on (shutdown(SHUT_WR)) only after every byte before it. With
 * no latency the due time is the read time, and a read goes straight out with one send(): no
 * queueing and no allocation unless the destination is full.
 *
 * Timing. Pipes whose head chunk could be written are kept in a min-heap by the head's due time;
 * a timerfd armed at the earliest due time (microsecond resolution, where an epoll_wait timeout
 * would round to milliseconds) wakes the loop. Blocked pipes (destination full, still connecting,
 * link partitioned) leave the heap, so nothing spins on them.
 *
 * Partition holds, it does not drop. The proxy relays a byte stream, not packets: dropping bytes
 * in the middle would hand Redis or the client a corrupt stream, which no real network does to a
 * TCP connection. A link dropping every packet only delays the stream (retransmissions), which is
 * what holding gives: the loop stops reading both sides (the kernel buffers fill and the senders
 * see a silent peer), keeps what it already read, and stops accepting new connections (they wait
 * in the listen backlog; the client's connect succeeds but nothing answers). On heal the held
 * chunks are due at once and relaying resumes.
 *
 * Backpressure. A pipe buffers at most LB_PROXY_BUFFER_CAP bytes; beyond that the loop stops
 * reading its source, so a slow or partitioned peer cannot make the proxy grow without bound.
 *
 * Closing. A connection closes when both directions have passed their EOF, or at once on an error
 * (the client then gets a reset, as it would from a broken path). Connections closed during a
 * batch of events are freed only after the batch, since later events may still point at them. */
#include "monotonic.h"
#include "proxy.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define LB_PROXY_READ_MAX       (64 * 1024)     /* one chunk at most */
#define LB_PROXY_BUFFER_CAP     (1024 * 1024)   /* held bytes per pipe before reading stops */
#define LB_PROXY_EVENTS         64
#define LB_PROXY_ACCEPT_BATCH   32              /* accepts per readiness, so one link cannot starve others */
#define LB_PROXY_DRAIN_MAX      4096            /* backlog entries reset by lb_proxy_reset */
#define LB_PROXY_FLUSH_MAX      4096            /* due pipes served per iteration; the rest next time */
#define LB_PROXY_CTL_TIMEOUT_MS 5000

enum { LB_H_WAKE, LB_H_TIMER, LB_H_LISTEN, LB_H_CLIENT, LB_H_UPSTREAM };

/* What epoll reports: the fd, its kind and owner, and the interest registered for it. */
typedef struct {
    int kind;
    int fd;
    uint32_t events;    /* registered interest; 0 = not in the epoll set */
    void *owner;        /* lb_proxy__link for LISTEN, lb_proxy__conn for CLIENT/UPSTREAM */
} lb_proxy__handle;

typedef struct lb_proxy__chunk {
    struct lb_proxy__chunk *next;
    int64_t due_us;
    size_t len, off;
    bool eof;
    char data[];
} lb_proxy__chunk;

typedef struct lb_proxy__conn lb_proxy__conn;

typedef struct {
    lb_proxy__chunk *head, *tail;
    size_t bytes;           /* held, not yet written */
    int64_t last_due_us;    /* due time of the last chunk queued: the floor for the next one */
    bool eof_read;          /* the source sent EOF; its marker is queued */
    bool eof_sent;          /* shutdown(SHUT_WR) done on the destination */
    bool want_out;          /* the destination was full; wait for EPOLLOUT */
    int heap_idx;           /* position in the timer heap, -1 if absent */
    int64_t heap_key;       /* due time the heap sorted it by */
    lb_proxy__conn *conn;
} lb_proxy__pipe;

typedef struct lb_proxy__link lb_proxy__link;

struct lb_proxy__conn {
    lb_proxy__conn *prev, *next;    /* the link's connections */
    lb_proxy__conn *dead_next;
    lb_proxy__link *link;
    lb_proxy__handle client, upstream;
    lb_proxy__pipe up;              /* client -> target */
    lb_proxy__pipe down;            /* target -> client */
    bool connecting;
    bool dead;
};

struct lb_proxy__link {
    int id;
    lb_proxy__handle listen;
    struct sockaddr_storage target;
    socklen_t target_len;
    int64_t latency_us, jitter_us;
    uint64_t rng;
    bool partitioned;
    bool reset_pending;
    bool dirty;                     /* changed by a control call, not yet applied */
    lb_proxy__conn *conns;
    lb_proxy_stats stats;
};

struct lb_proxy {
    pthread_t thread;
    int epfd;
    lb_proxy__handle wake, timer;
    pthread_mutex_t mu;
    pthread_cond_t applied_cv;
    uint64_t ctl_seq, applied_seq;  /* control changes made / applied by the loop */
    bool stopping;
    uint64_t seed;
    lb_proxy__link **links;
    int nlinks, links_cap;
    lb_proxy__pipe **heap;          /* writable pipes by due time of their head chunk */
    int heap_len, heap_cap;
    int64_t timer_us;               /* what the timerfd is armed for; 0 = disarmed */
    lb_proxy__conn *dead;           /* closed in this batch, freed at its end */
};

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Uniform in [-j, +j]; the modulo bias is below 2^-40 for any jitter we can express. */
static int64_t jitter_draw(uint64_t *rng, int64_t j)
{
    return (int64_t)(splitmix64(rng) % (uint64_t)(2 * j + 1)) - j;
}

/* ---- epoll interest --------------------------------------------------------------------- */

/* Registers exactly `events`. A handle with no interest leaves the set entirely: level-triggered
 * epoll reports EPOLLHUP/EPOLLERR even for an empty mask, which would spin the loop on a closed
 * peer held during a partition. */
static void handle_watch(lb_proxy *p, lb_proxy__handle *h, uint32_t events)
{
    if (events == h->events)
        return;
    struct epoll_event ev = { .events = events, .data.ptr = h };
    int op = h->events == 0 ? EPOLL_CTL_ADD : events == 0 ? EPOLL_CTL_DEL : EPOLL_CTL_MOD;
    if (epoll_ctl(p->epfd, op, h->fd, &ev) == 0)
        h->events = events;
}

/* ---- timer heap ------------------------------------------------------------------------- */

static void heap_set(lb_proxy *p, int i, lb_proxy__pipe *q)
{
    p->heap[i] = q;
    q->heap_idx = i;
}

static void heap_up(lb_proxy *p, int i)
{
    lb_proxy__pipe *q = p->heap[i];
    while (i > 0 && p->heap[(i - 1) / 2]->heap_key > q->heap_key) {
        heap_set(p, i, p->heap[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    heap_set(p, i, q);
}

static void heap_down(lb_proxy *p, int i)
{
    lb_proxy__pipe *q = p->heap[i];
    for (;;) {
        int c = 2 * i + 1;
        if (c >= p->heap_len)
            break;
        if (c + 1 < p->heap_len && p->heap[c + 1]->heap_key < p->heap[c]->heap_key)
            c++;
        if (p->heap[c]->heap_key >= q->heap_key)
            break;
        heap_set(p, i, p->heap[c]);
        i = c;
    }
    heap_set(p, i, q);
}

static void heap_remove(lb_proxy *p, lb_proxy__pipe *q)
{
    int i = q->heap_idx;
    if (i < 0)
        return;
    q->heap_idx = -1;
    lb_proxy__pipe *last = p->heap[--p->heap_len];
    if (i == p->heap_len)
        return;
    heap_set(p, i, last);
    heap_up(p, i);
    heap_down(p, last->heap_idx);
}

static int heap_insert(lb_proxy *p, lb_proxy__pipe *q)
{
    if (p->heap_len == p->heap_cap) {
        int cap = p->heap_cap ? 2 * p->heap_cap : 64;
        lb_proxy__pipe **h = realloc(p->heap, (size_t)cap * sizeof *h);
        if (h == NULL)
            return -1;
        p->heap = h;
        p->heap_cap = cap;
    }
    q->heap_key = q->head->due_us;
    heap_set(p, p->heap_len++, q);
    heap_up(p, q->heap_idx);
    return 0;
}

/* ---- pipes ------------------------------------------------------------------------------ */

static lb_proxy__handle *pipe_dst(lb_proxy__conn *c, lb_proxy__pipe *q)
{
    return q == &c->up ? &c->upstream : &c->client;
}

static lb_proxy__handle *pipe_src(lb_proxy__conn *c, lb_proxy__pipe *q)
{
    return q == &c->up ? &c->client : &c->upstream;
}

static bool pipe_writable(const lb_proxy__conn *c, const lb_proxy__pipe *q)
{
    return !c->link->partitioned && !q->want_out && !q->eof_sent &&
           !(q == &c->up && c->connecting);
}

static int pipe_push(lb_proxy__pipe *q, const char *data, size_t len, int64_t due, bool eof)
{
    lb_proxy__chunk *k = malloc(sizeof *k + len);
    if (k == NULL)
        return -1;
    *k = (lb_proxy__chunk){ .due_us = due, .len = len, .eof = eof };
    if (len > 0)
        memcpy(k->data, data, len);
    if (q->tail != NULL)
        q->tail->next = k;
    else
        q->head = k;
    q->tail = k;
    q->bytes += len;
    return 0;
}

static void pipe_pop(lb_proxy__pipe *q)
{
    lb_proxy__chunk *k = q->head;
    q->head = k->next;
    if (q->head == NULL)
        q->tail = NULL;
    q->bytes -= k->len - k->off;
    free(k);
}

static void pipe_clear(lb_proxy__pipe *q)
{
    while (q->head != NULL)
        pipe_pop(q);
}

static void count_sent(lb_proxy__conn *c, lb_proxy__pipe *q, size_t n)
{
    if (q == &c->up)
        c->link->stats.bytes_to_server += n;
    else
        c->link->stats.bytes_to_client += n;
}

/* The due time of a chunk read now (see the top of the file). */
static int64_t pipe_next_due(lb_proxy__link *l, lb_proxy__pipe *q, int64_t now)
{
    int64_t due = now + l->latency_us;
    if (l->jitter_us > 0)
        due += jitter_draw(&l->rng, l->jitter_us);
    if (due < now)
        due = now;
    if (due < q->last_due_us)
        due = q->last_due_us;
    q->last_due_us = due;
    return due;
}

/* Writes the chunks that are due, in order, until one is not due or the destination is full.
 * 0, or -1 when the destination failed. */
static int pipe_flush(lb_proxy__conn *c, lb_proxy__pipe *q, int64_t now)
{
    int fd = pipe_dst(c, q)->fd;
    while (q->head != NULL && q->head->due_us <= now && pipe_writable(c, q)) {
        lb_proxy__chunk *k = q->head;
        if (k->eof) {
            if (shutdown(fd, SHUT_WR) != 0 && errno != ENOTCONN)
                return -1;
            q->eof_sent = true;
            pipe_pop(q);
            continue;
        }
        ssize_t n = send(fd, k->data + k->off, k->len - k->off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            q->want_out = true;
            break;
        }
        if (n < 0)
            return -1;
        count_sent(c, q, (size_t)n);
        k->off += (size_t)n;
        q->bytes -= (size_t)n;
        if (k->off == k->len)
            pipe_pop(q);
    }
    return 0;
}

/* Passes len bytes just read on: straight to the destination when nothing is queued and they are
 * due now (the zero-latency path), the rest queued with their due time. */
static int pipe_relay(lb_proxy__conn *c, lb_proxy__pipe *q, const char *buf, size_t len,
                      int64_t due, int64_t now)
{
    size_t done = 0;
    if (q->head == NULL && due <= now && pipe_writable(c, q)) {
        ssize_t n = send(pipe_dst(c, q)->fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            q->want_out = true;
        else if (n < 0 && errno != EINTR)
            return -1;
        if (n > 0) {
            done = (size_t)n;
            count_sent(c, q, done);
        }
    }
    if (done < len)
        return pipe_push(q, buf + done, len - done, due, false);
    return 0;
}

/* One read from the pipe's source. 0, or -1 when the source failed. */
static int pipe_read(lb_proxy__conn *c, lb_proxy__pipe *q)
{
    char buf[LB_PROXY_READ_MAX];
    size_t room = LB_PROXY_BUFFER_CAP - q->bytes;
    if (q->eof_read || q->bytes >= LB_PROXY_BUFFER_CAP)
        return 0;
    ssize_t n = recv(pipe_src(c, q)->fd, buf, room < sizeof buf ? room : sizeof buf, 0);
    if (n < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -1;
    int64_t now = now_us();
    int64_t due = pipe_next_due(c->link, q, now);
    if (n == 0) {
        q->eof_read = true;
        if (pipe_push(q, NULL, 0, due, true) != 0)
            return -1;
        return pipe_flush(c, q, now);
    }
    return pipe_relay(c, q, buf, (size_t)n, due, now);
}

/* Keeps the pipe in the timer heap exactly when its head could be written; re-inserting sorts it
 * by the current head. */
static int pipe_schedule(lb_proxy *p, lb_proxy__pipe *q)
{
    heap_remove(p, q);
    if (q->head != NULL && pipe_writable(q->conn, q))
        return heap_insert(p, q);
    return 0;
}

/* ---- connections ------------------------------------------------------------------------ */

static uint32_t side_events(const lb_proxy__pipe *in, const lb_proxy__pipe *out)
{
    uint32_t ev = 0;
    if (!in->eof_read && in->bytes < LB_PROXY_BUFFER_CAP)
        ev |= EPOLLIN;
    if (out->want_out)
        ev |= EPOLLOUT;
    return ev;
}

static uint32_t client_events(const lb_proxy__conn *c)
{
    return c->link->partitioned ? 0 : side_events(&c->up, &c->down);
}

static uint32_t upstream_events(const lb_proxy__conn *c)
{
    if (c->connecting)
        return EPOLLOUT;    /* the handshake is not data: let it finish even when partitioned */
    return c->link->partitioned ? 0 : side_events(&c->down, &c->up);
}

static void conn_unlink(lb_proxy__conn *c)
{
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        c->link->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
}

/* Closes fd with a reset (SO_LINGER 0) instead of a FIN. */
static void reset_fd(int fd)
{
    struct linger lg = { .l_onoff = 1, .l_linger = 0 };
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd);
}

/* Closes both sides at once; rst sends the client a reset (SO_LINGER 0) instead of a FIN. The
 * memory stays until the end of the batch. */
static void conn_close(lb_proxy *p, lb_proxy__conn *c, bool rst)
{
    if (c->dead)
        return;
    handle_watch(p, &c->client, 0);
    handle_watch(p, &c->upstream, 0);
    if (rst)
        reset_fd(c->client.fd);
    else
        close(c->client.fd);
    close(c->upstream.fd);
    heap_remove(p, &c->up);
    heap_remove(p, &c->down);
    pipe_clear(&c->up);
    pipe_clear(&c->down);
    conn_unlink(c);
    c->link->stats.open_connections--;
    c->dead = true;
    c->dead_next = p->dead;
    p->dead = c;
}

/* Brings the epoll interest and the timer heap in line with the connection's state, and closes
 * it once both EOFs have passed. Called after anything that changes a connection. */
static void conn_sync(lb_proxy *p, lb_proxy__conn *c)
{
    if (c->dead)
        return;
    if (c->up.eof_sent && c->down.eof_sent) {
        conn_close(p, c, false);
        return;
    }
    handle_watch(p, &c->client, client_events(c));
    handle_watch(p, &c->upstream, upstream_events(c));
    if (pipe_schedule(p, &c->up) != 0 || pipe_schedule(p, &c->down) != 0)
        conn_close(p, c, true);
}

static void set_nodelay(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* Starts relaying an accepted client: opens the upstream connection (non-blocking; client bytes
 * queue until it completes). A target that cannot be reached resets the client. */
static void conn_open(lb_proxy *p, lb_proxy__link *l, int cfd)
{
    lb_proxy__conn *c = calloc(1, sizeof *c);
    int ufd = socket(l->target.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int rc = -1;
    if (c == NULL || ufd < 0)
        goto fail;
    /* Small commands and replies must not wait for Nagle: latency is ours to add. */
    set_nodelay(cfd);
    set_nodelay(ufd);
    rc = connect(ufd, (const struct sockaddr *)&l->target, l->target_len);
    if (rc != 0 && errno != EINPROGRESS)
        goto fail;
    c->link = l;
    c->connecting = rc != 0;
    c->client = (lb_proxy__handle){ .kind = LB_H_CLIENT, .fd = cfd, .owner = c };
    c->upstream = (lb_proxy__handle){ .kind = LB_H_UPSTREAM, .fd = ufd, .owner = c };
    c->up = (lb_proxy__pipe){ .heap_idx = -1, .conn = c };
    c->down = (lb_proxy__pipe){ .heap_idx = -1, .conn = c };
    c->next = l->conns;
    if (l->conns != NULL)
        l->conns->prev = c;
    l->conns = c;
    l->stats.connections++;
    l->stats.open_connections++;
    conn_sync(p, c);
    return;
fail:
    free(c);
    if (ufd >= 0)
        close(ufd);
    reset_fd(cfd);
}

static int conn_connected(lb_proxy__conn *c)
{
    int soerr = 0;
    socklen_t len = sizeof soerr;
    if (getsockopt(c->upstream.fd, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0 || soerr != 0)
        return -1;
    c->connecting = false;
    return pipe_flush(c, &c->up, now_us());
}

static void conn_event(lb_proxy *p, lb_proxy__conn *c, lb_proxy__handle *h, uint32_t ev)
{
    if (c->dead)
        return;
    /* Only act on what is still registered: an earlier event of this batch may have changed it. */
    bool out = (h->events & EPOLLOUT) && (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP));
    bool in = (h->events & EPOLLIN) && (ev & (EPOLLIN | EPOLLERR | EPOLLHUP));
    lb_proxy__pipe *to_h = h == &c->client ? &c->down : &c->up;
    lb_proxy__pipe *from_h = h == &c->client ? &c->up : &c->down;
    int rc = 0;
    if (out && h == &c->upstream && c->connecting) {
        rc = conn_connected(c);
    } else if (out) {
        to_h->want_out = false;
        rc = pipe_flush(c, to_h, now_us());
    }
    if (rc == 0 && in)
        rc = pipe_read(c, from_h);
    if (rc != 0)
        conn_close(p, c, true);
    else
        conn_sync(p, c);
}

/* ---- links ------------------------------------------------------------------------------ */

static void link_accept(lb_proxy *p, lb_proxy__link *l)
{
    for (int i = 0; i < LB_PROXY_ACCEPT_BATCH && !l->partitioned; i++) {
        int fd = accept4(l->listen.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        conn_open(p, l, fd);
    }
}

/* Resets every connection of the link, including those still waiting in the backlog. */
static void link_reset(lb_proxy *p, lb_proxy__link *l)
{
    for (int i = 0; i < LB_PROXY_DRAIN_MAX; i++) {
        int fd = accept4(l->listen.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            break;
        reset_fd(fd);
        l->stats.connections++;
        l->stats.resets++;
    }
    while (l->conns != NULL) {
        conn_close(p, l->conns, true);
        l->stats.resets++;
    }
}

/* Applies the link's settings to its listening socket and connections. On heal the pipes that
 * were waiting for room retry at once (the destination may have drained meanwhile). */
static void link_sync(lb_proxy *p, lb_proxy__link *l)
{
    handle_watch(p, &l->listen, l->partitioned ? 0 : EPOLLIN);
    lb_proxy__conn *next;
    for (lb_proxy__conn *c = l->conns; c != NULL; c = next) {
        next = c->next;
        if (!l->partitioned) {
            c->up.want_out = false;
            c->down.want_out = false;
        }
        conn_sync(p, c);
    }
}

/* ---- the loop --------------------------------------------------------------------------- */

static void apply_control(lb_proxy *p)
{
    if (p->applied_seq == p->ctl_seq)
        return;
    for (int i = 0; i < p->nlinks; i++) {
        lb_proxy__link *l = p->links[i];
        if (!l->dirty)
            continue;
        l->dirty = false;
        if (l->reset_pending) {
            l->reset_pending = false;
            link_reset(p, l);
        }
        link_sync(p, l);
    }
    p->applied_seq = p->ctl_seq;
    pthread_cond_broadcast(&p->applied_cv);
}

/* Delivers what is due, earliest first. Each pass either empties, blocks or re-keys the top pipe
 * to a later time, so the loop ends; the cap keeps one iteration short under heavy load. */
static void flush_due(lb_proxy *p)
{
    int64_t now = now_us();
    for (int i = 0; i < LB_PROXY_FLUSH_MAX && p->heap_len > 0; i++) {
        lb_proxy__pipe *q = p->heap[0];
        if (q->heap_key > now)
            break;
        lb_proxy__conn *c = q->conn;
        if (pipe_flush(c, q, now) != 0)
            conn_close(p, c, true);
        else
            conn_sync(p, c);
    }
}

static void timer_arm(lb_proxy *p)
{
    int64_t due = p->heap_len > 0 ? p->heap[0]->heap_key : 0;
    if (due == p->timer_us)
        return;
    struct itimerspec its = { .it_value = { .tv_sec = due / 1000000,
                                            .tv_nsec = (due % 1000000) * 1000 } };
    if (timerfd_settime(p->timer.fd, TFD_TIMER_ABSTIME, &its, NULL) == 0)
        p->timer_us = due;
}

static void drain_fd(int fd)
{
    uint64_t v;
    ssize_t n = read(fd, &v, sizeof v);
    (void)n;
}

static void free_dead(lb_proxy *p)
{
    while (p->dead != NULL) {
        lb_proxy__conn *c = p->dead;
        p->dead = c->dead_next;
        free(c);
    }
}

static void dispatch(lb_proxy *p, lb_proxy__handle *h, uint32_t ev)
{
    switch (h->kind) {
    case LB_H_WAKE:
        drain_fd(h->fd);
        break;
    case LB_H_TIMER:
        drain_fd(h->fd);
        p->timer_us = 0;    /* a one-shot timer that fired is disarmed: re-arm even for the same time */
        break;
    case LB_H_LISTEN:
        link_accept(p, h->owner);
        break;
    default:
        conn_event(p, h->owner, h, ev);
        break;
    }
}

static void *loop_main(void *arg)
{
    lb_proxy *p = arg;
    struct epoll_event evs[LB_PROXY_EVENTS];
    /* The default 50 us timer slack would add to every delayed chunk. */
    prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
    for (;;) {
        int n = epoll_wait(p->epfd, evs, LB_PROXY_EVENTS, -1);
        pthread_mutex_lock(&p->mu);
        if (p->stopping) {
            pthread_mutex_unlock(&p->mu);
            break;
        }
        for (int i = 0; i < n; i++)
            dispatch(p, evs[i].data.ptr, evs[i].events);
        apply_control(p);
        flush_due(p);
        timer_arm(p);
        free_dead(p);
        pthread_mutex_unlock(&p->mu);
    }
    return NULL;
}

/* ---- control ---------------------------------------------------------------------------- */

static void wake_loop(lb_proxy *p)
{
    uint64_t one = 1;
    ssize_t n = write(p->wake.fd, &one, sizeof one);
    (void)n;    /* a full counter still wakes the loop */
}

/* Locks p and returns the link, or unlocks and fails with EINVAL. */
static lb_proxy__link *ctl_lock(lb_proxy *p, int link)
{
    if (p == NULL) {
        errno = EINVAL;
        return NULL;
    }
    pthread_mutex_lock(&p->mu);
    if (link < 0 || link >= p->nlinks) {
        pthread_mutex_unlock(&p->mu);
        errno = EINVAL;
        return NULL;
    }
    return p->links[link];
}

/* Hands the change on l to the loop, waits until it is applied, unlocks. */
static int ctl_commit(lb_proxy *p, lb_proxy__link *l)
{
    l->dirty = true;
    uint64_t seq = ++p->ctl_seq;
    wake_loop(p);
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += LB_PROXY_CTL_TIMEOUT_MS / 1000;
    int rc = 0;
    while (p->applied_seq < seq && rc == 0)
        rc = pthread_cond_timedwait(&p->applied_cv, &p->mu, &deadline);
    bool ok = p->applied_seq >= seq;
    pthread_mutex_unlock(&p->mu);
    if (!ok)
        errno = ETIMEDOUT;
    return ok ? 0 : -1;
}

int lb_proxy_set_latency(lb_proxy *p, int link, int64_t latency_us, int64_t jitter_us)
{
    if (latency_us < 0 || jitter_us < 0 || latency_us > INT64_MAX / 4 || jitter_us > INT64_MAX / 4) {
        errno = EINVAL;
        return -1;
    }
    lb_proxy__link *l = ctl_lock(p, link);
    if (l == NULL)
        return -1;
    l->latency_us = latency_us;
    l->jitter_us = jitter_us;
    return ctl_commit(p, l);
}

int lb_proxy_set_partition(lb_proxy *p, int link, bool on)
{
    lb_proxy__link *l = ctl_lock(p, link);
    if (l == NULL)
        return -1;
    l->partitioned = on;
    return ctl_commit(p, l);
}

int lb_proxy_reset(lb_proxy *p, int link)
{
    lb_proxy__link *l = ctl_lock(p, link);
    if (l == NULL)
        return -1;
    l->reset_pending = true;
    return ctl_commit(p, l);
}

static int resolve(const char *host, int port, struct sockaddr_storage *ss, socklen_t *len);

int lb_proxy_set_target(lb_proxy *p, int link, const char *host, int port)
{
    struct sockaddr_storage ss;
    socklen_t len;
    if (host == NULL || port <= 0 || port > 65535 || resolve(host, port, &ss, &len) != 0) {
        errno = EINVAL;
        return -1;
    }
    lb_proxy__link *l = ctl_lock(p, link);
    if (l == NULL)
        return -1;
    l->target = ss;
    l->target_len = len;
    l->reset_pending = true;
    return ctl_commit(p, l);
}

int lb_proxy_get_stats(lb_proxy *p, int link, lb_proxy_stats *out)
{
    lb_proxy__link *l = ctl_lock(p, link);
    if (l == NULL)
        return -1;
    *out = l->stats;
    out->bytes_held = 0;
    for (const lb_proxy__conn *c = l->conns; c != NULL; c = c->next)
        out->bytes_held += c->up.bytes + c->down.bytes;
    pthread_mutex_unlock(&p->mu);
    return 0;
}

/* ---- links: creation -------------------------------------------------------------------- */

static int resolve(const char *host, int port, struct sockaddr_storage *ss, socklen_t *len)
{
    char serv[16];
    snprintf(serv, sizeof serv, "%d", port);
    /* IPv4 first: "localhost" may list ::1 first while redis-server listens on 127.0.0.1. */
    static const int families[] = { AF_INET, AF_INET6 };
    for (size_t i = 0; i < sizeof families / sizeof families[0]; i++) {
        struct addrinfo hints = { .ai_family = families[i], .ai_socktype = SOCK_STREAM,
                                  .ai_flags = AI_NUMERICSERV };
        struct addrinfo *res = NULL;
        if (getaddrinfo(host, serv, &hints, &res) != 0 || res == NULL)
            continue;
        memcpy(ss, res->ai_addr, res->ai_addrlen);
        *len = res->ai_addrlen;
        freeaddrinfo(res);
        return 0;
    }
    errno = EINVAL;
    return -1;
}

static int listen_loopback(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof sa;
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, SOMAXCONN) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    *port = ntohs(sa.sin_port);
    return fd;
}

static int links_grow(lb_proxy *p)
{
    if (p->nlinks < p->links_cap)
        return 0;
    int cap = p->links_cap ? 2 * p->links_cap : 16;
    lb_proxy__link **links = realloc(p->links, (size_t)cap * sizeof *links);
    if (links == NULL)
        return -1;
    p->links = links;
    p->links_cap = cap;
    return 0;
}

int lb_proxy_add_link(lb_proxy *p, const char *host, int port, int *listen_port)
{
    if (p == NULL || host == NULL || port <= 0 || port > 65535) {
        errno = EINVAL;
        return -1;
    }
    lb_proxy__link *l = calloc(1, sizeof *l);
    if (l == NULL)
        return -1;
    int lport = 0;
    if (resolve(host, port, &l->target, &l->target_len) != 0 ||
        (l->listen.fd = listen_loopback(&lport)) < 0) {
        free(l);
        return -1;
    }
    l->listen.kind = LB_H_LISTEN;
    l->listen.owner = l;
    pthread_mutex_lock(&p->mu);
    if (links_grow(p) != 0) {
        pthread_mutex_unlock(&p->mu);
        close(l->listen.fd);
        free(l);
        errno = ENOMEM;
        return -1;
    }
    l->id = p->nlinks;
    l->rng = p->seed ^ (0xd1342543de82ef95ULL * (uint64_t)(l->id + 1));
    splitmix64(&l->rng);
    p->links[p->nlinks++] = l;
    handle_watch(p, &l->listen, EPOLLIN);
    pthread_mutex_unlock(&p->mu);
    if (listen_port != NULL)
        *listen_port = lport;
    return l->id;
}

/* ---- start and stop --------------------------------------------------------------------- */

static int proxy_init_fds(lb_proxy *p)
{
    p->epfd = epoll_create1(EPOLL_CLOEXEC);
    p->wake = (lb_proxy__handle){ .kind = LB_H_WAKE, .fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC) };
    p->timer = (lb_proxy__handle){ .kind = LB_H_TIMER,
                                   .fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC) };
    if (p->epfd < 0 || p->wake.fd < 0 || p->timer.fd < 0)
        return -1;
    handle_watch(p, &p->wake, EPOLLIN);
    handle_watch(p, &p->timer, EPOLLIN);
    return p->wake.events && p->timer.events ? 0 : -1;
}

static void proxy_free(lb_proxy *p)
{
    for (int i = 0; i < p->nlinks; i++) {
        lb_proxy__link *l = p->links[i];
        while (l->conns != NULL)
            conn_close(p, l->conns, false);
        close(l->listen.fd);
        free(l);
    }
    free_dead(p);
    if (p->epfd >= 0)
        close(p->epfd);
    if (p->wake.fd >= 0)
        close(p->wake.fd);
    if (p->timer.fd >= 0)
        close(p->timer.fd);
    free(p->links);
    free(p->heap);
    pthread_cond_destroy(&p->applied_cv);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

/* The loop thread blocks every signal so they reach the threads that handle them. */
static int spawn_loop(lb_proxy *p)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&p->thread, NULL, loop_main, p);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}

lb_proxy *lb_proxy_start(uint64_t seed, char *err, size_t errlen)
{
    lb_proxy *p = calloc(1, sizeof *p);
    if (p == NULL) {
        snprintf(err, errlen, "proxy: out of memory");
        return NULL;
    }
    p->seed = seed;
    pthread_mutex_init(&p->mu, NULL);
    dlock__cond_init_monotonic(&p->applied_cv);
    if (proxy_init_fds(p) != 0) {
        snprintf(err, errlen, "proxy: epoll/eventfd/timerfd: %s", strerror(errno));
        proxy_free(p);
        return NULL;
    }
    int rc = spawn_loop(p);
    if (rc != 0) {
        snprintf(err, errlen, "proxy: pthread_create: %s", strerror(rc));
        proxy_free(p);
        return NULL;
    }
    return p;
}

void lb_proxy_stop(lb_proxy *p)
{
    if (p == NULL)
        return;
    pthread_mutex_lock(&p->mu);
    p->stopping = true;
    wake_loop(p);
    pthread_mutex_unlock(&p->mu);
    pthread_join(p->thread, NULL);
    proxy_free(p);
}

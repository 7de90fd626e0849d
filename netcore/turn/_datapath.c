/*
 * The TURN relay's data path, compiled: ChannelData in both directions
 * (RFC 8656 section 12.4 and 12.5) on a thread of its own.
 *
 * The sans-IO core (netcore/turn/server.py) keeps every decision: who may
 * allocate, which channels are bound, which permissions are installed, when
 * anything expires. The asyncio adapter (netcore/turn/aio_native.py) mirrors
 * the result into this module as *routes*: "ChannelData number N from client
 * C on listener L goes to peer P from relay socket R", and back. This thread
 * owns the reading of the listener and relay sockets: a datagram that
 * matches a route is relayed here, without the interpreter; everything else
 * (STUN requests, Send indications, data from peers without a channel,
 * garbage) is handed to Python through a bounded queue in memory, with the
 * socket it came in on and the sender's address, and an eventfd that wakes
 * the event loop when the queue stops being empty. (A Unix datagram
 * socketpair held at most net.unix.max_dgram_qlen = 10 datagrams, so a burst
 * of STUN from many clients was shed.)
 *
 * Threading: one mutex guards the tables, and a second one the hand-off
 * queue alone, so that Python taking hand-offs never waits for the relay
 * thread to finish a batch of datagrams (with one mutex for both, most
 * requests met a futex wait on one side or the other). The order is tables,
 * then queue; the queue lock is held only to link or unlink. The relay
 * thread never touches a Python object and never takes the GIL; Python
 * calls take the mutexes with the GIL held, so they cannot deadlock. Sockets are named by fd and a
 * generation that changes when Python removes the fd, so an event or a
 * route that outlived its socket (fds are reused) is recognised and ignored.
 *
 * Memory: routes and allocations exist only as Python installs them, which
 * the core bounds by its quotas; nothing here grows with traffic.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define KIND_NONE 0
#define KIND_LISTENER 1
#define KIND_RELAY 2
#define KIND_SPARE 3 /* a relay socket between allocations: read, and what it reads dropped */

#define WAKE_TAG UINT64_MAX
#define BUDGET 32            /* datagrams read from one socket per wake-up, in one recvmmsg */
#define LISTENER_BATCHES 32 /* batches read from a listener per wake-up (see drain) */
#define MAX_EVENTS 64
#define BUFFER_SIZE (4 + 65536)

/* A transport address in a form that compares with memcmp. */
typedef struct {
    uint16_t family;
    uint16_t port; /* network order */
    uint8_t addr[16];
} AddrKey;

typedef struct {
    struct sockaddr_storage sa;
    socklen_t len;
    AddrKey key;
} Endpoint;

typedef struct Alloc Alloc;

typedef struct Route {
    Alloc *alloc;
    int listener_fd;
    uint32_t listener_gen;
    Endpoint client;
    int relay_fd;
    uint32_t relay_gen;
    Endpoint peer;
    uint16_t number;
    struct Route *next_in_alloc;
    struct Route *client_next; /* chain in the client-side table */
    struct Route *peer_next;   /* chain in the peer-side table */
} Route;

struct Alloc {
    uint64_t id;
    double rate;       /* bytes per second; 0: no cap */
    double tokens;
    double tokens_at;  /* seconds, CLOCK_MONOTONIC */
    uint64_t packets_to_peer, bytes_to_peer, packets_to_client, bytes_to_client, bandwidth_dropped;
    int dirty;
    Alloc *next_dirty;
    Alloc *next;       /* chain in the allocation table */
    Route *routes;
};

typedef struct {
    uint8_t kind;
    uint32_t gen;   /* bumped whenever what the socket stands for changes (hand-offs and routes carry it) */
    uint32_t watch; /* the generation its epoll registration carries: a spare keeps it, as it stays registered */
} Slot;

/* What Python reads in front of each handed-off datagram (native order). */
typedef struct {
    int32_t fd;
    uint32_t gen;   /* as add_socket returned it: tells a reused fd apart */
    uint8_t kind;
    uint8_t family; /* 4 or 6 */
    uint16_t port;  /* host order */
    uint8_t addr[16];
} Handoff;

/* One datagram waiting for Python. */
typedef struct Pending {
    struct Pending *next;
    Handoff head;
    size_t size;
    uint8_t data[];
} Pending;

#define HANDOFF_LIMIT (8u << 20) /* bytes queued for Python at most; beyond, hand-offs are shed */

typedef struct {
    PyObject_HEAD
    int ready;
    pthread_mutex_t lock;
    pthread_t thread;
    int running;
    volatile int stopping;
    int epoll_fd;
    int wake_fd;
    int handoff_fd;    /* an eventfd, written when the queue stops being empty */
    pthread_mutex_t queue_lock; /* guards the queue and its counters (handoffs, handoff_drops) */
    Pending *queue_head, *queue_tail;
    size_t queued_bytes;
    unsigned top; /* highest first byte of a channel number accepted */
    Slot *slots;  /* indexed by fd */
    int slot_count;
    Route **client_table;
    Route **peer_table;
    size_t route_buckets; /* a power of two */
    size_t route_count;
    Alloc **alloc_table;
    size_t alloc_buckets;
    Alloc *dirty;
    uint64_t send_errors, handoffs, handoff_drops;
    uint64_t spare_drops; /* datagrams read from spare relay sockets and dropped (under lock) */
    /* recvmmsg's vectors: each datagram lands 4 bytes into its buffer, room for a ChannelData header */
    struct mmsghdr messages[BUDGET];
    struct iovec vectors[BUDGET];
    struct sockaddr_storage senders[BUDGET];
    uint8_t *buffers; /* BUDGET * BUFFER_SIZE */
} DataPath;

/* -- addresses -------------------------------------------------------------- */

static void key_of(const struct sockaddr *sa, AddrKey *key) {
    memset(key, 0, sizeof(*key));
    key->family = sa->sa_family;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        key->port = in->sin_port;
        memcpy(key->addr, &in->sin_addr, 4);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        key->port = in6->sin6_port;
        memcpy(key->addr, &in6->sin6_addr, 16);
    }
}

/* (host, port) from Python into an Endpoint; 0 on success, -1 with an exception set. */
static int endpoint_from(const char *host, int port, Endpoint *out) {
    memset(out, 0, sizeof(*out));
    if (port < 0 || port > 65535) {
        PyErr_SetString(PyExc_ValueError, "port out of range");
        return -1;
    }
    if (strchr(host, ':') != NULL) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&out->sa;
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
        if (inet_pton(AF_INET6, host, &in6->sin6_addr) != 1) goto bad;
        out->len = sizeof(*in6);
    } else {
        struct sockaddr_in *in = (struct sockaddr_in *)&out->sa;
        in->sin_family = AF_INET;
        in->sin_port = htons((uint16_t)port);
        if (inet_pton(AF_INET, host, &in->sin_addr) != 1) goto bad;
        out->len = sizeof(*in);
    }
    key_of((struct sockaddr *)&out->sa, &out->key);
    return 0;
bad:
    PyErr_Format(PyExc_ValueError, "not an IP address: %s", host);
    return -1;
}

static size_t hash_bytes(const void *data, size_t size, size_t seed) {
    const uint8_t *p = data;
    uint64_t h = 1469598103934665603ULL ^ seed; /* FNV-1a */
    for (size_t i = 0; i < size; i++) {
        h ^= p[i];
        h *= 1099511628211ULL;
    }
    return (size_t)(h ^ (h >> 29));
}

static size_t client_hash(int fd, const AddrKey *client, uint16_t number) {
    return hash_bytes(client, sizeof(*client), ((size_t)fd << 16) | number);
}

static size_t peer_hash(int fd, const AddrKey *peer) {
    return hash_bytes(peer, sizeof(*peer), (size_t)fd);
}

/* -- tables ------------------------------------------------------------------- */

static int slot_valid(DataPath *dp, int fd, uint32_t gen, uint8_t kind) {
    return fd >= 0 && fd < dp->slot_count && dp->slots[fd].kind == kind && dp->slots[fd].gen == gen;
}

static Route *find_client_route(DataPath *dp, int fd, const AddrKey *client, uint16_t number) {
    Route *r = dp->client_table[client_hash(fd, client, number) & (dp->route_buckets - 1)];
    for (; r != NULL; r = r->client_next)
        if (r->listener_fd == fd && r->number == number && memcmp(&r->client.key, client, sizeof(*client)) == 0)
            return r;
    return NULL;
}

static Route *find_peer_route(DataPath *dp, int fd, const AddrKey *peer) {
    Route *r = dp->peer_table[peer_hash(fd, peer) & (dp->route_buckets - 1)];
    for (; r != NULL; r = r->peer_next)
        if (r->relay_fd == fd && memcmp(&r->peer.key, peer, sizeof(*peer)) == 0)
            return r;
    return NULL;
}

static void link_route(DataPath *dp, Route *r) {
    size_t c = client_hash(r->listener_fd, &r->client.key, r->number) & (dp->route_buckets - 1);
    size_t p = peer_hash(r->relay_fd, &r->peer.key) & (dp->route_buckets - 1);
    r->client_next = dp->client_table[c];
    dp->client_table[c] = r;
    r->peer_next = dp->peer_table[p];
    dp->peer_table[p] = r;
}

static void unlink_route(DataPath *dp, Route *r) {
    Route **at = &dp->client_table[client_hash(r->listener_fd, &r->client.key, r->number) & (dp->route_buckets - 1)];
    while (*at != r) at = &(*at)->client_next;
    *at = r->client_next;
    at = &dp->peer_table[peer_hash(r->relay_fd, &r->peer.key) & (dp->route_buckets - 1)];
    while (*at != r) at = &(*at)->peer_next;
    *at = r->peer_next;
}

/* Double the route tables when they hold more routes than buckets. */
static int grow_routes(DataPath *dp) {
    size_t buckets = dp->route_buckets * 2;
    Route **client = PyMem_RawCalloc(buckets, sizeof(Route *));
    Route **peer = PyMem_RawCalloc(buckets, sizeof(Route *));
    if (client == NULL || peer == NULL) {
        PyMem_RawFree(client);
        PyMem_RawFree(peer);
        return -1;
    }
    Route **old_client = dp->client_table;
    size_t old_buckets = dp->route_buckets;
    PyMem_RawFree(dp->peer_table);
    dp->client_table = client;
    dp->peer_table = peer;
    dp->route_buckets = buckets;
    for (size_t i = 0; i < old_buckets; i++) {
        Route *r = old_client[i];
        while (r != NULL) {
            Route *next = r->client_next;
            link_route(dp, r);
            r = next;
        }
    }
    PyMem_RawFree(old_client);
    return 0;
}

static Alloc *find_alloc(DataPath *dp, uint64_t id) {
    Alloc *a = dp->alloc_table[hash_bytes(&id, sizeof(id), 0) & (dp->alloc_buckets - 1)];
    while (a != NULL && a->id != id) a = a->next;
    return a;
}

static void drop_routes(DataPath *dp, Alloc *a) {
    Route *r = a->routes;
    while (r != NULL) {
        Route *next = r->next_in_alloc;
        unlink_route(dp, r);
        PyMem_RawFree(r);
        dp->route_count--;
        r = next;
    }
    a->routes = NULL;
}

static void mark_dirty(DataPath *dp, Alloc *a) {
    if (!a->dirty) {
        a->dirty = 1;
        a->next_dirty = dp->dirty;
        __atomic_store_n(&dp->dirty, a, __ATOMIC_RELEASE); /* harvest peeks at it without the lock */
    }
}

/* -- the relay thread ------------------------------------------------------------ */

static double monotonic(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Token bucket of `rate` bytes/s with one second of burst, as Allocation.take_tokens. */
static int take_tokens(Alloc *a, size_t size) {
    double now = monotonic();
    double tokens = a->tokens + (now - a->tokens_at) * a->rate;
    if (tokens > a->rate) tokens = a->rate;
    a->tokens_at = now;
    if (tokens < (double)size) {
        a->tokens = tokens;
        return 0;
    }
    a->tokens = tokens - (double)size;
    return 1;
}

static void hand_off(DataPath *dp, int fd, uint8_t kind, const struct sockaddr *from, const uint8_t *data, size_t size) {
    Handoff head;
    memset(&head, 0, sizeof(head));
    head.fd = fd;
    head.gen = dp->slots[fd].gen;
    head.kind = kind;
    if (from->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)from;
        head.family = 4;
        head.port = ntohs(in->sin_port);
        memcpy(head.addr, &in->sin_addr, 4);
    } else if (from->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)from;
        head.family = 6;
        head.port = ntohs(in6->sin6_port);
        memcpy(head.addr, &in6->sin6_addr, 16);
    } else {
        return;
    }
    Pending *p = PyMem_RawMalloc(sizeof(Pending) + size); /* filled outside the queue lock */
    if (p != NULL) {
        p->next = NULL;
        p->head = head;
        p->size = size;
        memcpy(p->data, data, size);
    }
    pthread_mutex_lock(&dp->queue_lock);
    if (p == NULL || dp->queued_bytes + size > HANDOFF_LIMIT) {
        dp->handoff_drops++; /* Python is behind: shed control traffic, never block the relay */
        pthread_mutex_unlock(&dp->queue_lock);
        PyMem_RawFree(p);
        return;
    }
    int was_empty = dp->queue_head == NULL;
    if (was_empty)
        dp->queue_head = p;
    else
        dp->queue_tail->next = p;
    dp->queue_tail = p;
    dp->queued_bytes += size;
    dp->handoffs++;
    pthread_mutex_unlock(&dp->queue_lock);
    if (was_empty) {
        uint64_t one = 1;
        if (write(dp->handoff_fd, &one, sizeof(one)) < 0) { /* the counter is far from full */ }
    }
}

/* Send `size` bytes of which `payload` are the application's, within the allocation's bandwidth cap.
 * Returns 1 when sent; the caller counts the packet in its direction. */
static int relay(DataPath *dp, Alloc *a, int fd, const uint8_t *data, size_t size, size_t payload,
                 const Endpoint *to) {
    mark_dirty(dp, a);
    if (a->rate > 0 && !take_tokens(a, payload)) {
        a->bandwidth_dropped++;
        return 0;
    }
    if (sendto(fd, data, size, 0, (const struct sockaddr *)&to->sa, to->len) < 0) {
        dp->send_errors++;
        return 0;
    }
    return 1;
}

/* A datagram from a client on a listener (section 12.4): ChannelData with a route goes to its peer. */
static void from_client(DataPath *dp, int fd, const struct sockaddr *from, uint8_t *data, size_t size) {
    if (size >= 4 && data[0] >= 0x40 && data[0] <= dp->top) {
        uint16_t number = (uint16_t)(data[0] << 8 | data[1]);
        size_t length = (size_t)(data[2] << 8 | data[3]);
        if (length <= size - 4) {
            AddrKey client;
            key_of(from, &client);
            Route *r = find_client_route(dp, fd, &client, number);
            if (r != NULL && slot_valid(dp, r->relay_fd, r->relay_gen, KIND_RELAY)) {
                if (relay(dp, r->alloc, r->relay_fd, data + 4, length, length, &r->peer)) {
                    r->alloc->packets_to_peer++;
                    r->alloc->bytes_to_peer += length;
                }
                return;
            }
        }
    }
    hand_off(dp, fd, KIND_LISTENER, from, data, size);
}

/* A datagram from a peer on a relay socket (section 12.5): with a route it goes to the client as ChannelData.
 * `data` is 4 bytes into the buffer, so the header is written in front without a copy. */
static void from_peer(DataPath *dp, int fd, const struct sockaddr *from, uint8_t *data, size_t size) {
    AddrKey peer;
    key_of(from, &peer);
    Route *r = find_peer_route(dp, fd, &peer);
    if (r != NULL && slot_valid(dp, r->listener_fd, r->listener_gen, KIND_LISTENER)) {
        uint8_t *head = data - 4;
        head[0] = (uint8_t)(r->number >> 8);
        head[1] = (uint8_t)r->number;
        head[2] = (uint8_t)(size >> 8);
        head[3] = (uint8_t)size;
        if (relay(dp, r->alloc, r->listener_fd, head, size + 4, size, &r->client)) {
            r->alloc->packets_to_client++;
            r->alloc->bytes_to_client += size;
        }
        return;
    }
    hand_off(dp, fd, KIND_RELAY, from, data, size);
}

/* Read what is queued on one socket in batches of up to BUDGET datagrams, one system call each (at low
 * rates that is one datagram and no second call to learn the queue is empty); level-triggered epoll
 * calls again for the rest. A relay socket carries one allocation's peers and gets one batch per
 * wake-up; a listener carries every client's traffic and gets up to LISTENER_BATCHES: with a thousand
 * relay sockets ready, epoll's round-robin reached the listener once per thousand of them, and with
 * one batch its queue grew until the kernel dropped (100 ms of latency at 50k datagrams/s). The lock
 * is held per batch, so the socket cannot go away in the middle of one. */
static void drain(DataPath *dp, int fd, uint32_t gen) {
    for (int batch = 0; batch < LISTENER_BATCHES; batch++) {
        pthread_mutex_lock(&dp->lock);
        if (fd >= dp->slot_count || dp->slots[fd].watch != gen || dp->slots[fd].kind == KIND_NONE) {
            pthread_mutex_unlock(&dp->lock); /* removed since epoll_wait returned */
            return;
        }
        for (int i = 0; i < BUDGET; i++) {
            dp->messages[i].msg_hdr.msg_namelen = sizeof(struct sockaddr_storage);
            dp->messages[i].msg_hdr.msg_flags = 0;
        }
        int count = recvmmsg(fd, dp->messages, BUDGET, MSG_DONTWAIT, NULL);
        int listener = dp->slots[fd].kind == KIND_LISTENER;
        if (dp->slots[fd].kind == KIND_SPARE) { /* sent to an allocation that ended: nobody's */
            if (count > 0) dp->spare_drops += (uint64_t)count;
            pthread_mutex_unlock(&dp->lock);
            return;
        }
        for (int i = 0; i < count; i++) {
            struct sockaddr *from = (struct sockaddr *)&dp->senders[i];
            uint8_t *data = dp->vectors[i].iov_base;
            if (listener)
                from_client(dp, fd, from, data, dp->messages[i].msg_len);
            else
                from_peer(dp, fd, from, data, dp->messages[i].msg_len);
        }
        pthread_mutex_unlock(&dp->lock);
        /* count < BUDGET: the queue is empty (or an error is queued); a relay socket had its turn */
        if (count < BUDGET || !listener) return;
    }
}

static void *relay_thread(void *arg) {
    DataPath *dp = arg;
    struct epoll_event events[MAX_EVENTS];
    while (!dp->stopping) {
        int n = epoll_wait(dp->epoll_fd, events, MAX_EVENTS, -1);
        if (n < 0) {
            if (errno == EINTR) continue;
            break;
        }
        for (int i = 0; i < n && !dp->stopping; i++) {
            uint64_t tag = events[i].data.u64;
            if (tag == WAKE_TAG) continue;
            drain(dp, (int)(tag & 0xFFFFFFFFu), (uint32_t)(tag >> 32));
        }
    }
    return NULL;
}

/* -- the Python type ----------------------------------------------------------------- */

static int DataPath_init(DataPath *dp, PyObject *args, PyObject *kwds) {
    static char *names[] = {"handoff_fd", "channel_max", NULL};
    int handoff_fd;
    unsigned channel_max = 0x4FFF;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "i|I", names, &handoff_fd, &channel_max)) return -1;
    if (dp->ready) {
        PyErr_SetString(PyExc_RuntimeError, "DataPath is already initialised");
        return -1;
    }
    dp->ready = 1;
    dp->epoll_fd = dp->wake_fd = -1;
    pthread_mutex_init(&dp->lock, NULL);
    pthread_mutex_init(&dp->queue_lock, NULL);
    dp->handoff_fd = handoff_fd;
    dp->top = channel_max >> 8;
    dp->route_buckets = 256;
    dp->alloc_buckets = 1024;
    dp->client_table = PyMem_RawCalloc(dp->route_buckets, sizeof(Route *));
    dp->peer_table = PyMem_RawCalloc(dp->route_buckets, sizeof(Route *));
    dp->alloc_table = PyMem_RawCalloc(dp->alloc_buckets, sizeof(Alloc *));
    if (dp->client_table == NULL || dp->peer_table == NULL || dp->alloc_table == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    dp->buffers = PyMem_RawMalloc((size_t)BUDGET * BUFFER_SIZE);
    if (dp->buffers == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (int i = 0; i < BUDGET; i++) {
        dp->vectors[i].iov_base = dp->buffers + (size_t)i * BUFFER_SIZE + 4;
        dp->vectors[i].iov_len = BUFFER_SIZE - 4;
        memset(&dp->messages[i], 0, sizeof(dp->messages[i]));
        dp->messages[i].msg_hdr.msg_name = &dp->senders[i];
        dp->messages[i].msg_hdr.msg_iov = &dp->vectors[i];
        dp->messages[i].msg_hdr.msg_iovlen = 1;
    }
    dp->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    dp->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (dp->epoll_fd < 0 || dp->wake_fd < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = WAKE_TAG};
    if (epoll_ctl(dp->epoll_fd, EPOLL_CTL_ADD, dp->wake_fd, &ev) < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    return 0;
}

static void stop_thread(DataPath *dp) {
    if (!dp->running) return;
    dp->stopping = 1;
    uint64_t one = 1;
    if (write(dp->wake_fd, &one, sizeof(one)) < 0) { /* the eventfd cannot be full here */ }
    Py_BEGIN_ALLOW_THREADS
    pthread_join(dp->thread, NULL);
    Py_END_ALLOW_THREADS
    dp->running = 0;
}

static void free_tables(DataPath *dp) {
    if (dp->alloc_table != NULL) {
        for (size_t i = 0; i < dp->alloc_buckets; i++) {
            Alloc *a = dp->alloc_table[i];
            while (a != NULL) {
                Alloc *next = a->next;
                drop_routes(dp, a);
                PyMem_RawFree(a);
                a = next;
            }
        }
    }
    while (dp->queue_head != NULL) {
        Pending *next = dp->queue_head->next;
        PyMem_RawFree(dp->queue_head);
        dp->queue_head = next;
    }
    dp->queue_tail = NULL;
    dp->queued_bytes = 0;
    PyMem_RawFree(dp->alloc_table);
    PyMem_RawFree(dp->client_table);
    PyMem_RawFree(dp->peer_table);
    PyMem_RawFree(dp->slots);
    PyMem_RawFree(dp->buffers);
    dp->buffers = NULL;
    dp->alloc_table = NULL;
    dp->client_table = dp->peer_table = NULL;
    dp->slots = NULL;
}

static void DataPath_dealloc(DataPath *dp) {
    stop_thread(dp);
    if (dp->ready) {
        if (dp->epoll_fd >= 0) close(dp->epoll_fd);
        if (dp->wake_fd >= 0) close(dp->wake_fd);
        pthread_mutex_destroy(&dp->lock);
        pthread_mutex_destroy(&dp->queue_lock);
    }
    free_tables(dp);
    Py_TYPE(dp)->tp_free((PyObject *)dp);
}

static PyObject *DataPath_start(DataPath *dp, PyObject *unused) {
    if (dp->running) Py_RETURN_NONE;
    dp->stopping = 0;
    int err = pthread_create(&dp->thread, NULL, relay_thread, dp);
    if (err != 0) {
        errno = err;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    dp->running = 1;
    Py_RETURN_NONE;
}

static PyObject *DataPath_stop(DataPath *dp, PyObject *unused) {
    stop_thread(dp);
    Py_RETURN_NONE;
}

static PyObject *DataPath_add_socket(DataPath *dp, PyObject *args) {
    int fd, kind;
    if (!PyArg_ParseTuple(args, "ii", &fd, &kind)) return NULL;
    if (fd < 0 || (kind != KIND_LISTENER && kind != KIND_RELAY)) {
        PyErr_SetString(PyExc_ValueError, "a socket fd and kind 1 (listener) or 2 (relay)");
        return NULL;
    }
    pthread_mutex_lock(&dp->lock);
    if (fd >= dp->slot_count) {
        int count = fd + 1 > 2 * dp->slot_count ? fd + 1 : 2 * dp->slot_count;
        Slot *slots = PyMem_RawRealloc(dp->slots, (size_t)count * sizeof(Slot));
        if (slots == NULL) {
            pthread_mutex_unlock(&dp->lock);
            return PyErr_NoMemory();
        }
        memset(slots + dp->slot_count, 0, (size_t)(count - dp->slot_count) * sizeof(Slot));
        dp->slots = slots;
        dp->slot_count = count;
    }
    Slot *slot = &dp->slots[fd];
    if (slot->kind == KIND_SPARE && kind == KIND_RELAY) {
        /* A spare serving a new allocation: already in the epoll set. What is still queued was sent to the
         * allocation before; it is read and dropped here, before a hand-off could carry the new generation. */
        int count;
        do {
            for (int i = 0; i < BUDGET; i++) {
                dp->messages[i].msg_hdr.msg_namelen = sizeof(struct sockaddr_storage);
                dp->messages[i].msg_hdr.msg_flags = 0;
            }
            count = recvmmsg(fd, dp->messages, BUDGET, MSG_DONTWAIT, NULL);
            if (count > 0) dp->spare_drops += (uint64_t)count;
        } while (count == BUDGET);
        slot->gen++;
        slot->kind = KIND_RELAY;
        uint32_t gen = slot->gen;
        pthread_mutex_unlock(&dp->lock);
        return PyLong_FromUnsignedLong(gen);
    }
    if (slot->kind != KIND_NONE) {
        pthread_mutex_unlock(&dp->lock);
        PyErr_Format(PyExc_ValueError, "fd %d is already served", fd);
        return NULL;
    }
    slot->gen++;
    slot->watch = slot->gen;
    slot->kind = (uint8_t)kind;
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = ((uint64_t)slot->gen << 32) | (uint32_t)fd};
    int failed = epoll_ctl(dp->epoll_fd, EPOLL_CTL_ADD, fd, &ev) < 0;
    if (failed) slot->kind = KIND_NONE;
    uint32_t gen = slot->gen;
    pthread_mutex_unlock(&dp->lock);
    if (failed) return PyErr_SetFromErrno(PyExc_OSError);
    return PyLong_FromUnsignedLong(gen);
}

/* Forget a socket before Python closes it; routes through it stop matching at once. */
static PyObject *DataPath_remove_socket(DataPath *dp, PyObject *args) {
    int fd;
    if (!PyArg_ParseTuple(args, "i", &fd)) return NULL;
    pthread_mutex_lock(&dp->lock);
    if (fd >= 0 && fd < dp->slot_count && dp->slots[fd].kind != KIND_NONE) {
        epoll_ctl(dp->epoll_fd, EPOLL_CTL_DEL, fd, NULL);
        dp->slots[fd].kind = KIND_NONE;
        dp->slots[fd].gen++;
    }
    pthread_mutex_unlock(&dp->lock);
    Py_RETURN_NONE;
}

/* spare_socket(fd): a relay socket whose allocation ended, kept for the next one. The thread goes on reading
 * it and drops what it reads (its queue stays empty without a syscall from Python); routes through it stop
 * matching and pending hand-offs from it carry an old generation. add_socket(fd, RELAY) takes it back. */
static PyObject *DataPath_spare_socket(DataPath *dp, PyObject *args) {
    int fd;
    if (!PyArg_ParseTuple(args, "i", &fd)) return NULL;
    pthread_mutex_lock(&dp->lock);
    int spared = fd >= 0 && fd < dp->slot_count && dp->slots[fd].kind == KIND_RELAY;
    if (spared) {
        dp->slots[fd].kind = KIND_SPARE;
        dp->slots[fd].gen++;
    }
    pthread_mutex_unlock(&dp->lock);
    return PyBool_FromLong(spared);
}

/* pause_socket(fd): stop reading a socket but keep it known, so that routes through it still send from it
 * (a graceful upgrade hands the listeners to a new daemon, which reads them from then on). */
static PyObject *DataPath_pause_socket(DataPath *dp, PyObject *args) {
    int fd;
    if (!PyArg_ParseTuple(args, "i", &fd)) return NULL;
    pthread_mutex_lock(&dp->lock);
    if (fd >= 0 && fd < dp->slot_count && dp->slots[fd].kind != KIND_NONE)
        epoll_ctl(dp->epoll_fd, EPOLL_CTL_DEL, fd, NULL);
    pthread_mutex_unlock(&dp->lock);
    Py_RETURN_NONE;
}

/* An int of a route tuple; 0 when it is not one that fits (the format-string parse then says why). */
static int route_int(PyObject *value, int *out) {
    if (!PyLong_CheckExact(value)) return 0;
    int overflow;
    long v = PyLong_AsLongAndOverflow(value, &overflow);
    if (overflow || v < INT_MIN || v > INT_MAX) return 0;
    *out = (int)v;
    return 1;
}

/* The fields of one route tuple as the endpoint builds them (exact ints and strs), read directly: a
 * ChannelBind installs one, and PyArg_ParseTuple's format string cost a third of set_allocation. Returns 0
 * for anything else, with no exception set, and the caller parses it with PyArg_ParseTuple (same values, or
 * its error). */
static int route_fields(PyObject *item, int *listener_fd, const char **client_host, int *client_port, int *number,
                        int *relay_fd, const char **peer_host, int *peer_port) {
    if (!PyTuple_CheckExact(item) || PyTuple_GET_SIZE(item) != 7) return 0;
    PyObject *client = PyTuple_GET_ITEM(item, 1), *peer = PyTuple_GET_ITEM(item, 5);
    if (!PyUnicode_CheckExact(client) || !PyUnicode_CheckExact(peer) || !PyUnicode_IS_ASCII(client) ||
        !PyUnicode_IS_ASCII(peer))
        return 0;
    if (!route_int(PyTuple_GET_ITEM(item, 0), listener_fd) || !route_int(PyTuple_GET_ITEM(item, 2), client_port) ||
        !route_int(PyTuple_GET_ITEM(item, 3), number) || !route_int(PyTuple_GET_ITEM(item, 4), relay_fd) ||
        !route_int(PyTuple_GET_ITEM(item, 6), peer_port))
        return 0;
    Py_ssize_t client_size, peer_size;
    *client_host = PyUnicode_AsUTF8AndSize(client, &client_size);
    *peer_host = PyUnicode_AsUTF8AndSize(peer, &peer_size);
    /* an embedded NUL is refused by the "s" format: leave those to it */
    return (Py_ssize_t)strlen(*client_host) == client_size && (Py_ssize_t)strlen(*peer_host) == peer_size;
}

/* set_allocation(id, rate, routes): replace the routes of one allocation.
 * routes: iterable of (listener_fd, client_host, client_port, number, relay_fd, peer_host, peer_port). */
static PyObject *DataPath_set_allocation(DataPath *dp, PyObject *args) {
    unsigned long long id;
    double rate;
    PyObject *iterable;
    if (!PyArg_ParseTuple(args, "KdO", &id, &rate, &iterable)) return NULL;
    PyObject *items = PySequence_Fast(iterable, "routes must be a sequence");
    if (items == NULL) return NULL;
    Py_ssize_t count = PySequence_Fast_GET_SIZE(items);
    Route *built = NULL; /* parsed outside the lock, linked inside it */
    for (Py_ssize_t i = 0; i < count; i++) {
        int listener_fd, client_port, number, relay_fd, peer_port;
        const char *client_host, *peer_host;
        PyObject *item = PySequence_Fast_GET_ITEM(items, i);
        if (!route_fields(item, &listener_fd, &client_host, &client_port, &number, &relay_fd, &peer_host, &peer_port)
            && !PyArg_ParseTuple(item, "isiiisi;a route is (listener_fd, client_host, client_port, number, relay_fd, "
                                 "peer_host, peer_port)", &listener_fd, &client_host, &client_port, &number, &relay_fd,
                                 &peer_host, &peer_port))
            goto fail;
        Route *r = PyMem_RawCalloc(1, sizeof(Route));
        if (r == NULL) {
            PyErr_NoMemory();
            goto fail;
        }
        r->next_in_alloc = built;
        built = r;
        if (endpoint_from(client_host, client_port, &r->client) < 0 || endpoint_from(peer_host, peer_port, &r->peer) < 0)
            goto fail;
        if (number < 0 || number > 0xFFFF) {
            PyErr_SetString(PyExc_ValueError, "channel number out of range");
            goto fail;
        }
        r->listener_fd = listener_fd;
        r->relay_fd = relay_fd;
        r->number = (uint16_t)number;
    }
    Py_DECREF(items);
    pthread_mutex_lock(&dp->lock);
    Alloc *a = find_alloc(dp, id);
    if (a == NULL) {
        a = PyMem_RawCalloc(1, sizeof(Alloc));
        if (a == NULL) {
            pthread_mutex_unlock(&dp->lock);
            items = NULL;
            PyErr_NoMemory();
            goto fail;
        }
        a->id = id;
        a->tokens = rate;
        a->tokens_at = monotonic();
        size_t at = hash_bytes(&id, sizeof(id), 0) & (dp->alloc_buckets - 1);
        a->next = dp->alloc_table[at];
        dp->alloc_table[at] = a;
    }
    if (a->rate <= 0 && rate > 0) {
        /* A cap set on an allocation that had none (a reload): its bucket starts full, as a new one does.
         * Refilled from tokens_at at the new rate, it would start as empty as the allocation is young. */
        a->tokens = rate;
        a->tokens_at = monotonic();
    }
    a->rate = rate;
    drop_routes(dp, a);
    while (built != NULL) {
        Route *r = built;
        built = r->next_in_alloc;
        /* Routes name sockets by generation too: a route to an fd removed before it was installed never matches. */
        r->listener_gen = r->listener_fd < dp->slot_count ? dp->slots[r->listener_fd].gen : 0;
        r->relay_gen = r->relay_fd < dp->slot_count ? dp->slots[r->relay_fd].gen : 0;
        r->alloc = a;
        r->next_in_alloc = a->routes;
        a->routes = r;
        link_route(dp, r);
        dp->route_count++;
    }
    if (dp->route_count > dp->route_buckets) grow_routes(dp); /* on failure the tables just stay denser */
    pthread_mutex_unlock(&dp->lock);
    Py_RETURN_NONE;
fail:
    Py_XDECREF(items);
    while (built != NULL) {
        Route *next = built->next_in_alloc;
        PyMem_RawFree(built);
        built = next;
    }
    return NULL;
}

/* take_tokens(id, size, debit=False): draw on an allocation's bucket from Python (Send indications,
 * stream data), so that the allocation has one cap for all it relays. Without debit: True if the
 * tokens were there (False: drop). With debit: the tokens are taken even into debt (a byte stream
 * cannot drop) and the answer is the seconds until the debt is repaid. None for an unknown id. */
static PyObject *DataPath_take_tokens(DataPath *dp, PyObject *args) {
    unsigned long long id;
    Py_ssize_t size;
    int debit = 0;
    if (!PyArg_ParseTuple(args, "Kn|p", &id, &size, &debit)) return NULL;
    if (size < 0) {
        PyErr_SetString(PyExc_ValueError, "size must not be negative");
        return NULL;
    }
    pthread_mutex_lock(&dp->lock);
    Alloc *a = find_alloc(dp, id);
    if (a == NULL) {
        pthread_mutex_unlock(&dp->lock);
        Py_RETURN_NONE;
    }
    if (a->rate <= 0) {
        pthread_mutex_unlock(&dp->lock);
        if (debit) return PyFloat_FromDouble(0.0);
        Py_RETURN_TRUE;
    }
    if (!debit) {
        int taken = take_tokens(a, (size_t)size);
        pthread_mutex_unlock(&dp->lock);
        return PyBool_FromLong(taken);
    }
    double now = monotonic();
    double tokens = a->tokens + (now - a->tokens_at) * a->rate;
    if (tokens > a->rate) tokens = a->rate;
    a->tokens_at = now;
    a->tokens = tokens - (double)size;
    double wait = a->tokens < 0 ? -a->tokens / a->rate : 0.0;
    pthread_mutex_unlock(&dp->lock);
    return PyFloat_FromDouble(wait);
}

static PyObject *counters_of(Alloc *a) {
    PyObject *row = Py_BuildValue("(KKKKKK)", (unsigned long long)a->id, (unsigned long long)a->packets_to_peer,
                                  (unsigned long long)a->bytes_to_peer, (unsigned long long)a->packets_to_client,
                                  (unsigned long long)a->bytes_to_client, (unsigned long long)a->bandwidth_dropped);
    a->packets_to_peer = a->bytes_to_peer = a->packets_to_client = a->bytes_to_client = a->bandwidth_dropped = 0;
    return row;
}

/* Unlink allocation `id` from the table and the dirty list, drop its routes; a copy of it in `last` (its
 * counters not yet harvested). 0 if the thread does not know it. Under the lock. */
static int forget_allocation(DataPath *dp, unsigned long long id, Alloc *last) {
    Alloc **at = &dp->alloc_table[hash_bytes(&id, sizeof(id), 0) & (dp->alloc_buckets - 1)];
    while (*at != NULL && (*at)->id != id) at = &(*at)->next;
    Alloc *a = *at;
    if (a == NULL) return 0;
    *at = a->next;
    drop_routes(dp, a);
    if (a->dirty) {
        Alloc **d = &dp->dirty;
        while (*d != a) d = &(*d)->next_dirty;
        __atomic_store_n(d, a->next_dirty, __ATOMIC_RELAXED); /* d may be &dp->dirty, which harvest peeks at */
    }
    *last = *a;
    PyMem_RawFree(a);
    return 1;
}

/* remove_allocation(id) -> (id, counters...) not yet harvested, or None. */
static PyObject *DataPath_remove_allocation(DataPath *dp, PyObject *args) {
    unsigned long long id;
    if (!PyArg_ParseTuple(args, "K", &id)) return NULL;
    Alloc last;
    pthread_mutex_lock(&dp->lock);
    int found = forget_allocation(dp, id, &last);
    pthread_mutex_unlock(&dp->lock);
    if (!found) Py_RETURN_NONE;
    return counters_of(&last);
}

/* retire(fds, ids) -> [(id, counters...)]: the teardown of a batch of deleted allocations in one call and
 * one hold of the lock. Each relay socket in `fds` becomes a spare (as spare_socket; one that is not a relay
 * socket is left alone) and each allocation in `ids` is forgotten (as remove_allocation). The rows are those
 * of the forgotten allocations with a counter not yet harvested (packets, bytes or bandwidth drops); the
 * others counted nothing since the last harvest. Before a delete's answer is sent, so that, as before, no
 * ChannelData follows it to the client. */
static PyObject *DataPath_retire(DataPath *dp, PyObject *args) {
    PyObject *fds, *ids;
    if (!PyArg_ParseTuple(args, "OO", &fds, &ids)) return NULL;
    PyObject *fd_seq = PySequence_Fast(fds, "fds must be a sequence of ints");
    if (fd_seq == NULL) return NULL;
    PyObject *id_seq = PySequence_Fast(ids, "ids must be a sequence of ints");
    if (id_seq == NULL) {
        Py_DECREF(fd_seq);
        return NULL;
    }
    Py_ssize_t fd_count = PySequence_Fast_GET_SIZE(fd_seq), id_count = PySequence_Fast_GET_SIZE(id_seq);
    PyObject *rows = NULL;
    int *fd_values = PyMem_Malloc(sizeof(int) * (size_t)(fd_count + 1));
    unsigned long long *id_values = PyMem_Malloc(sizeof(unsigned long long) * (size_t)(id_count + 1));
    Alloc *gone = PyMem_Malloc(sizeof(Alloc) * (size_t)(id_count + 1));
    if (fd_values == NULL || id_values == NULL || gone == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < fd_count; i++) {
        long fd = PyLong_AsLong(PySequence_Fast_GET_ITEM(fd_seq, i));
        if (fd == -1 && PyErr_Occurred()) goto done;
        fd_values[i] = fd < 0 || fd > INT_MAX ? -1 : (int)fd; /* not a socket of ours either way */
    }
    for (Py_ssize_t i = 0; i < id_count; i++) {
        id_values[i] = PyLong_AsUnsignedLongLong(PySequence_Fast_GET_ITEM(id_seq, i));
        if (id_values[i] == (unsigned long long)-1 && PyErr_Occurred()) goto done;
    }
    Py_ssize_t forgotten = 0;
    pthread_mutex_lock(&dp->lock);
    for (Py_ssize_t i = 0; i < fd_count; i++) {
        int fd = fd_values[i];
        if (fd >= 0 && fd < dp->slot_count && dp->slots[fd].kind == KIND_RELAY) {
            dp->slots[fd].kind = KIND_SPARE;
            dp->slots[fd].gen++;
        }
    }
    for (Py_ssize_t i = 0; i < id_count; i++) {
        Alloc *last = &gone[forgotten];
        if (forget_allocation(dp, id_values[i], last) && (last->packets_to_peer || last->bytes_to_peer
                || last->packets_to_client || last->bytes_to_client || last->bandwidth_dropped))
            forgotten++;
    }
    pthread_mutex_unlock(&dp->lock);
    rows = PyList_New(forgotten);
    if (rows == NULL) goto done;
    for (Py_ssize_t i = 0; i < forgotten; i++) {
        PyObject *row = counters_of(&gone[i]);
        if (row == NULL) {
            Py_CLEAR(rows);
            goto done;
        }
        PyList_SET_ITEM(rows, i, row);
    }
done:
    PyMem_Free(fd_values);
    PyMem_Free(id_values);
    PyMem_Free(gone);
    Py_DECREF(fd_seq);
    Py_DECREF(id_seq);
    return rows;
}

/* harvest() -> [(id, packets_to_peer, bytes_to_peer, packets_to_client, bytes_to_client, bandwidth_dropped)]:
 * what each allocation relayed since the last harvest; only allocations that saw traffic. */
static PyObject *DataPath_harvest(DataPath *dp, PyObject *unused) {
    PyObject *rows = PyList_New(0);
    if (rows == NULL) return NULL;
    /* Nothing relayed since the last harvest (every hand-off while no ChannelData flows): no lock, so
     * no wait for the relay thread's batch. What it relays after this peek is in the next harvest. */
    if (__atomic_load_n(&dp->dirty, __ATOMIC_ACQUIRE) == NULL) return rows;
    pthread_mutex_lock(&dp->lock);
    Alloc *a = dp->dirty;
    __atomic_store_n(&dp->dirty, NULL, __ATOMIC_RELAXED);
    while (a != NULL) {
        Alloc *next = a->next_dirty;
        a->dirty = 0;
        a->next_dirty = NULL;
        PyObject *row = counters_of(a);
        if (row == NULL || PyList_Append(rows, row) < 0) {
            Py_XDECREF(row); /* counters of the rest stay for the next harvest */
            while (next != NULL) {
                Alloc *n = next->next_dirty;
                next->next_dirty = NULL;
                next->dirty = 0;
                mark_dirty(dp, next);
                next = n;
            }
            pthread_mutex_unlock(&dp->lock);
            Py_DECREF(rows);
            return NULL;
        }
        Py_DECREF(row);
        a = next;
    }
    pthread_mutex_unlock(&dp->lock);
    return rows;
}

/* The dotted-quad text of an IPv4 address, as inet_ntop writes it, without its sprintf; the length. */
static int ipv4_text(const uint8_t *addr, char *out) {
    int at = 0;
    for (int i = 0; i < 4; i++) {
        unsigned v = addr[i];
        if (v >= 100) out[at++] = (char)('0' + v / 100);
        if (v >= 10) out[at++] = (char)('0' + v / 10 % 10);
        out[at++] = (char)('0' + v % 10);
        if (i < 3) out[at++] = '.';
    }
    out[at] = '\0';
    return at;
}

/* (fd, gen, kind, (host, port), data) of one hand-off, built directly (every request pays it). */
static PyObject *handoff_row(const Pending *p) {
    char host[INET6_ADDRSTRLEN];
    Py_ssize_t length;
    if (p->head.family == 4) {
        length = ipv4_text(p->head.addr, host);
    } else {
        if (inet_ntop(AF_INET6, p->head.addr, host, sizeof(host)) == NULL) host[0] = '\0'; /* cannot happen */
        length = (Py_ssize_t)strlen(host);
    }
    PyObject *row = PyTuple_New(5);
    if (row == NULL) return NULL;
    PyObject *sender = PyTuple_New(2);
    if (sender != NULL) {
        PyTuple_SET_ITEM(sender, 0, PyUnicode_DecodeASCII(host, length, NULL));
        PyTuple_SET_ITEM(sender, 1, PyLong_FromLong(p->head.port));
    }
    PyTuple_SET_ITEM(row, 0, PyLong_FromLong(p->head.fd));
    PyTuple_SET_ITEM(row, 1, PyLong_FromUnsignedLong(p->head.gen));
    PyTuple_SET_ITEM(row, 2, PyLong_FromLong(p->head.kind));
    PyTuple_SET_ITEM(row, 3, sender);
    PyTuple_SET_ITEM(row, 4, PyBytes_FromStringAndSize((const char *)p->data, (Py_ssize_t)p->size));
    for (int i = 0; i < 5; i++) {
        PyObject *item = PyTuple_GET_ITEM(row, i);
        if (item == NULL || (i == 3 && (PyTuple_GET_ITEM(item, 0) == NULL || PyTuple_GET_ITEM(item, 1) == NULL))) {
            Py_DECREF(row); /* out of memory: the items made are released with it */
            return NULL;
        }
    }
    return row;
}

/* take_handoffs(limit) -> [(fd, gen, kind, (host, port), data)]: up to `limit` datagrams handed to Python,
 * oldest first, the sender's host in text as the core keys addresses. Read the eventfd before calling:
 * when some stay queued it is written again. */
static PyObject *DataPath_take_handoffs(DataPath *dp, PyObject *args) {
    Py_ssize_t limit;
    if (!PyArg_ParseTuple(args, "n", &limit)) return NULL;
    pthread_mutex_lock(&dp->queue_lock); /* not the tables: never waits for a batch */
    Pending *taken = dp->queue_head;
    Pending *last = NULL;
    Py_ssize_t count = 0;
    for (Pending *p = taken; p != NULL && count < limit; p = p->next) {
        last = p;
        count++;
        dp->queued_bytes -= p->size;
    }
    if (last != NULL) {
        dp->queue_head = last->next;
        if (dp->queue_head == NULL)
            dp->queue_tail = NULL;
        else {
            uint64_t one = 1;
            if (write(dp->handoff_fd, &one, sizeof(one)) < 0) { /* the counter is far from full */ }
        }
        last->next = NULL;
    } else {
        taken = NULL;
    }
    pthread_mutex_unlock(&dp->queue_lock);
    PyObject *rows = PyList_New(count);
    Py_ssize_t i = 0;
    while (taken != NULL) {
        Pending *next = taken->next;
        if (rows != NULL) {
            PyObject *row = handoff_row(taken);
            if (row == NULL) {
                Py_CLEAR(rows);
            } else {
                PyList_SET_ITEM(rows, i++, row);
            }
        }
        PyMem_RawFree(taken);
        taken = next;
    }
    return rows;
}

#define SEND_BATCH 64 /* datagrams per sendmmsg */

static int note_failure(PyObject *failed, Py_ssize_t index, int error) {
    PyObject *row = Py_BuildValue("(ni)", index, error);
    if (row == NULL || PyList_Append(failed, row) < 0) {
        Py_XDECREF(row);
        return -1;
    }
    Py_DECREF(row);
    return 0;
}

/* Send items[first..first+count) (all on fd) with sendmmsg; a failure goes to `failed` as (index, errno), errno 0
 * for a host this cannot parse (a scoped IPv6 address: the caller sends it), and the rest are sent on.
 * 0, or -1 with an exception set. */
static int send_run(PyObject *items, Py_ssize_t first, Py_ssize_t count, int fd, PyObject *failed) {
    struct mmsghdr msgs[SEND_BATCH];
    struct iovec vecs[SEND_BATCH];
    Endpoint ends[SEND_BATCH];
    Py_ssize_t index_of[SEND_BATCH];
    int slots = 0;
    memset(msgs, 0, sizeof(msgs[0]) * (size_t)count);
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *item = PyList_GET_ITEM(items, first + i);
        PyObject *data = PyTuple_GET_ITEM(item, 1);
        const char *host = PyUnicode_AsUTF8(PyTuple_GET_ITEM(item, 2));
        if (host == NULL) return -1;
        long port = PyLong_AsLong(PyTuple_GET_ITEM(item, 3));
        if (port == -1 && PyErr_Occurred()) return -1;
        if (endpoint_from(host, (int)port, &ends[slots]) < 0) {
            PyErr_Clear();
            if (note_failure(failed, first + i, 0) < 0) return -1;
            continue;
        }
        vecs[slots].iov_base = PyBytes_AS_STRING(data);
        vecs[slots].iov_len = (size_t)PyBytes_GET_SIZE(data);
        msgs[slots].msg_hdr.msg_name = &ends[slots].sa;
        msgs[slots].msg_hdr.msg_namelen = ends[slots].len;
        msgs[slots].msg_hdr.msg_iov = &vecs[slots];
        msgs[slots].msg_hdr.msg_iovlen = 1;
        index_of[slots++] = first + i;
    }
    int done = 0;
    while (done < slots) {
        int sent = sendmmsg(fd, msgs + done, (unsigned)(slots - done), MSG_DONTWAIT);
        if (sent < 0) { /* the one at `done` failed: note it, go on with the next */
            if (note_failure(failed, index_of[done], errno ? errno : EIO) < 0) return -1;
            done++;
        } else {
            done += sent;
        }
    }
    return 0;
}

/* send_many(items) -> [(index, errno)]: each (fd, data, host, port, ...) of the list sent (more fields ignored), runs on one fd in one
 * sendmmsg; the items that failed (errno 0: not sent, a host only the caller can parse). The event loop's
 * answers go out this way, one system call per run of answers from one socket. */
static PyObject *DataPath_send_many(DataPath *dp, PyObject *items) {
    if (!PyList_Check(items)) {
        PyErr_SetString(PyExc_TypeError, "send_many takes a list");
        return NULL;
    }
    Py_ssize_t total = PyList_GET_SIZE(items);
    for (Py_ssize_t i = 0; i < total; i++) {
        PyObject *item = PyList_GET_ITEM(items, i);
        if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) < 4 || !PyLong_Check(PyTuple_GET_ITEM(item, 0))
            || !PyBytes_Check(PyTuple_GET_ITEM(item, 1)) || !PyUnicode_Check(PyTuple_GET_ITEM(item, 2))
            || !PyLong_Check(PyTuple_GET_ITEM(item, 3))) {
            PyErr_SetString(PyExc_TypeError, "items are (fd, bytes, host, port, ...)");
            return NULL;
        }
    }
    PyObject *failed = PyList_New(0);
    if (failed == NULL) return NULL;
    Py_ssize_t start = 0;
    while (start < total) {
        int fd = (int)PyLong_AsLong(PyTuple_GET_ITEM(PyList_GET_ITEM(items, start), 0));
        Py_ssize_t end = start + 1;
        while (end < total && end - start < SEND_BATCH
               && PyLong_AsLong(PyTuple_GET_ITEM(PyList_GET_ITEM(items, end), 0)) == fd)
            end++;
        if (send_run(items, start, end - start, fd, failed) < 0) {
            Py_DECREF(failed);
            return NULL;
        }
        start = end;
    }
    return failed;
}

static PyObject *DataPath_stats(DataPath *dp, PyObject *unused) {
    pthread_mutex_lock(&dp->lock);
    pthread_mutex_lock(&dp->queue_lock);
    unsigned long long handoffs = dp->handoffs, handoff_drops = dp->handoff_drops;
    pthread_mutex_unlock(&dp->queue_lock);
    PyObject *out = Py_BuildValue("{sKsKsKsnsK}", "send_errors", (unsigned long long)dp->send_errors, "handoffs",
                                  handoffs, "handoff_drops", handoff_drops, "routes", (Py_ssize_t)dp->route_count,
                                  "spare_drops", (unsigned long long)dp->spare_drops);
    pthread_mutex_unlock(&dp->lock);
    return out;
}

static PyMethodDef DataPath_methods[] = {
    {"start", (PyCFunction)DataPath_start, METH_NOARGS, "Start the relay thread."},
    {"stop", (PyCFunction)DataPath_stop, METH_NOARGS, "Stop the relay thread and wait for it."},
    {"add_socket", (PyCFunction)DataPath_add_socket, METH_VARARGS,
     "add_socket(fd, kind) -> generation: read this socket on the relay thread; kind 1 is a listener, 2 a relay "
     "socket. Hand-offs from it carry the generation."},
    {"remove_socket", (PyCFunction)DataPath_remove_socket, METH_VARARGS,
     "remove_socket(fd): stop reading it; call before closing the socket."},
    {"spare_socket", (PyCFunction)DataPath_spare_socket, METH_VARARGS,
     "spare_socket(fd) -> bool: a relay socket between allocations; read and dropped until add_socket(fd, 2)."},
    {"pause_socket", (PyCFunction)DataPath_pause_socket, METH_VARARGS,
     "pause_socket(fd): stop reading it; routes keep sending from it."},
    {"set_allocation", (PyCFunction)DataPath_set_allocation, METH_VARARGS,
     "set_allocation(id, rate, routes): replace the routes of an allocation; rate in bytes/s, 0 for none."},
    {"remove_allocation", (PyCFunction)DataPath_remove_allocation, METH_VARARGS,
     "remove_allocation(id): forget it; returns its counters not yet harvested, or None."},
    {"retire", (PyCFunction)DataPath_retire, METH_VARARGS,
     "retire(fds, ids) -> [(id, counters...)]: relay sockets made spares and allocations forgotten in one call; "
     "the counters not yet harvested of those forgotten allocations that have some."},
    {"harvest", (PyCFunction)DataPath_harvest, METH_NOARGS,
     "harvest(): counters of allocations that relayed since the last harvest, as deltas."},
    {"take_tokens", (PyCFunction)DataPath_take_tokens, METH_VARARGS,
     "take_tokens(id, size, debit=False): draw on the allocation's bandwidth bucket; True/False, with debit the "
     "seconds until the debt is repaid; None for an unknown id."},
    {"take_handoffs", (PyCFunction)DataPath_take_handoffs, METH_VARARGS,
     "take_handoffs(limit): up to limit datagrams for Python as (fd, gen, kind, (host, port), data); read the "
     "eventfd first."},
    {"send_many", (PyCFunction)DataPath_send_many, METH_O,
     "send_many(items) -> [(index, errno)]: each (fd, data, host, port) sent, consecutive ones on one fd in one "
     "sendmmsg; the items that failed (errno 0: a host it cannot parse, not sent)."},
    {"stats", (PyCFunction)DataPath_stats, METH_NOARGS, "stats(): send errors, hand-offs, dropped hand-offs, routes."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject DataPathType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "netcore.turn._datapath.DataPath",
    .tp_basicsize = sizeof(DataPath),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "ChannelData relay on a thread of its own; see the module source for the design.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)DataPath_init,
    .tp_dealloc = (destructor)DataPath_dealloc,
    .tp_methods = DataPath_methods,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "netcore.turn._datapath",
    "The TURN relay's ChannelData data path, compiled, on a thread of its own.", -1, NULL,
};

PyMODINIT_FUNC PyInit__datapath(void) {
    if (PyType_Ready(&DataPathType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    Py_INCREF(&DataPathType);
    if (PyModule_AddObject(m, "DataPath", (PyObject *)&DataPathType) < 0) {
        Py_DECREF(&DataPathType);
        Py_DECREF(m);
        return NULL;
    }
    PyModule_AddIntConstant(m, "LISTENER", KIND_LISTENER);
    PyModule_AddIntConstant(m, "RELAY", KIND_RELAY);
    PyModule_AddIntConstant(m, "HANDOFF_HEADER", (long)sizeof(Handoff));
    return m;
}

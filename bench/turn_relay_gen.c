/* Load generator for bench/turn_relay.py, built on the fly with cc -O2.
 *
 * usage: turn_relay_gen FD CHANNEL SIZE RATE SECONDS
 *   FD       a UDP socket already connected to the TURN server (or to the
 *            echo peer directly when CHANNEL is 0), inherited from Python,
 *            which did the Allocate and ChannelBind exchanges on it;
 *   CHANNEL  the bound channel number, or 0 for raw datagrams (the floor);
 *   SIZE     application payload bytes per packet (ChannelData adds 4);
 *   RATE     packets per second to send, paced on CLOCK_MONOTONIC;
 *   SECONDS  how long to send; echoes are awaited 300 ms more.
 *
 * Each payload carries a sequence number and its send time; the echo peer
 * sends it back through the relay. Prints one line:
 *   sent received p50_us p99_us
 * where the percentiles are of the round-trip time of received packets.
 * ppoll() waits until the next send time or an arriving echo, so the
 * round-trip times are not inflated by sleeping.
 *
 * usage: turn_relay_gen -m FDS CHANNEL SIZE RATE SECONDS
 *   many flows: FDS is a comma-separated list of such sockets, one per
 *   allocation (each with CHANNEL bound); RATE is packets per second per
 *   flow, sent round-robin over the flows, paced as a whole. Echoes are
 *   read with epoll; each carries its global sequence number, so an echo
 *   that comes back on another flow's socket is counted as a stray. Prints
 *   sent received p50_us p99_us strays
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* The ChannelData header (RFC 8656 section 12.4) when CHANNEL is bound, and the filler. */
static void fill_packet(unsigned char *out, size_t len, int channel, int size) {
    memset(out, 0xAB, len);
    if (channel) {
        out[0] = channel >> 8; out[1] = channel & 0xFF;
        out[2] = size >> 8; out[3] = size & 0xFF;
    }
}

/* How many packets should have left by now, at most TOTAL. */
static uint64_t due_by(uint64_t t, uint64_t start, double interval, uint64_t sent, uint64_t total) {
    uint64_t due = sent < total ? (uint64_t)((t - start) / interval) + 1 : sent;
    return due > total ? total : due;
}

/* Stamp packet SEQ with its sequence number and send time, after HEAD bytes of header. */
static void stamp_packet(unsigned char *out, int head, uint32_t seq) {
    uint64_t stamp = now_ns();
    memcpy(out + head, &seq, 4);
    memcpy(out + head + 4, &stamp, 8);
}

/* The sequence number and send time of an echo of N bytes; 0 if it is too short to carry them. */
static int read_echo(const unsigned char *in, ssize_t n, int head, uint32_t *seq, uint64_t *stamp) {
    if (n < head + 12) return 0;
    memcpy(seq, in + head, 4);
    memcpy(stamp, in + head + 4, 8);
    return 1;
}

/* Note the round-trip time of SEQ on its first echo; 1 if it was the first. */
static int record_rtt(uint32_t *rtts, uint32_t seq, uint64_t stamp) {
    if (rtts[seq]) return 0;
    uint64_t rtt = (now_ns() - stamp) / 1000;
    rtts[seq] = rtt ? (uint32_t)rtt : 1;
    return 1;
}

/* Sleep in ppoll() until NEXT (CLOCK_MONOTONIC ns) or until PFD is readable. */
static void wait_until(struct pollfd *pfd, uint64_t next) {
    uint64_t t = now_ns();
    if (next <= t) return;
    uint64_t wait = next - t;
    struct timespec ts = {(time_t)(wait / 1000000000ull), (long)(wait % 1000000000ull)};
    ppoll(pfd, 1, &ts, NULL);
}

/* The median and 99th percentile of the RECEIVED round-trip times noted in RTTS[0..TOTAL). */
static void percentiles(const uint32_t *rtts, uint64_t total, uint64_t received, uint32_t *p50, uint32_t *p99) {
    uint32_t *got = malloc((received + 1) * sizeof(uint32_t));
    uint64_t k = 0;
    for (uint64_t i = 0; i < total; i++) if (rtts[i]) got[k++] = rtts[i];
    qsort(got, k, sizeof(uint32_t), cmp_u32);
    *p50 = k ? got[k / 2] : 0;
    *p99 = k ? got[(k * 99) / 100] : 0;
    free(got);
}

static int many_flows(int argc, char **argv) {
    if (argc != 7) {
        fprintf(stderr, "usage: %s -m FDS CHANNEL SIZE RATE SECONDS\n", argv[0]);
        return 2;
    }
    int count = 1;
    for (const char *c = argv[2]; *c; c++) count += *c == ',';
    int *fds = calloc(count, sizeof(int));
    char *list = strdup(argv[2]);
    int n = 0;
    for (char *tok = strtok(list, ","); tok && n < count; tok = strtok(NULL, ",")) fds[n++] = atoi(tok);
    count = n;
    int channel = atoi(argv[3]);
    int size = atoi(argv[4]);
    double rate = atof(argv[5]) * count; /* packets per second, all flows */
    double seconds = atof(argv[6]);
    if (size < 12) size = 12;
    int head = channel ? 4 : 0;
    uint64_t total = (uint64_t)(rate * seconds);
    uint32_t *rtts = calloc(total + 1, sizeof(uint32_t));
    int ep = epoll_create1(0);
    for (int i = 0; i < count; i++) {
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev);
    }
    unsigned char out[70000], in[70000];
    fill_packet(out, sizeof out, channel, size);
    uint64_t start = now_ns(), sent = 0, received = 0, strays = 0;
    uint64_t stop = start + (uint64_t)(seconds * 1e9), linger = stop + 300000000ull;
    double interval = 1e9 / rate;
    struct pollfd pfd = {ep, POLLIN, 0};
    struct epoll_event events[256];
    for (;;) {
        uint64_t t = now_ns();
        if (t >= linger || (sent >= total && received >= sent)) break;
        uint64_t due = due_by(t, start, interval, sent, total);
        int burst = 0;
        while (sent < due && burst < 256) {
            stamp_packet(out, head, (uint32_t)sent);
            send(fds[sent % count], out, head + size, 0); /* a full buffer is a loss, as on the wire */
            sent++;
            burst++;
        }
        int ready = epoll_wait(ep, events, 256, 0);
        for (int e = 0; e < ready; e++) {
            int flow = (int)events[e].data.u32;
            for (;;) {
                ssize_t got = recv(fds[flow], in, sizeof in, MSG_DONTWAIT);
                if (got < 0) break;
                uint32_t seq;
                uint64_t stamp;
                if (!read_echo(in, got, head, &seq, &stamp) || seq >= total) continue;
                if ((int)(seq % count) != flow) {
                    strays++;
                    continue;
                }
                received += record_rtt(rtts, seq, stamp);
            }
        }
        uint64_t next = sent < total ? start + (uint64_t)((sent + 1) * interval) : linger;
        if (ready < 256) wait_until(&pfd, next);
    }
    uint32_t p50, p99;
    percentiles(rtts, total, received, &p50, &p99);
    printf("%llu %llu %u %u %llu\n", (unsigned long long)sent, (unsigned long long)received, p50, p99,
           (unsigned long long)strays);
    return 0;
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "-m") == 0) return many_flows(argc, argv);
    if (argc != 6) {
        fprintf(stderr, "usage: %s FD CHANNEL SIZE RATE SECONDS\n", argv[0]);
        return 2;
    }
    int fd = atoi(argv[1]);
    int channel = atoi(argv[2]);
    int size = atoi(argv[3]);
    double rate = atof(argv[4]);
    double seconds = atof(argv[5]);
    if (size < 12) size = 12;
    int head = channel ? 4 : 0;
    uint64_t total = (uint64_t)(rate * seconds);
    uint32_t *rtts = calloc(total + 1, sizeof(uint32_t));
    unsigned char out[70000], in[70000];
    fill_packet(out, sizeof out, channel, size);
    uint64_t start = now_ns(), sent = 0, received = 0;
    uint64_t stop = start + (uint64_t)(seconds * 1e9), linger = stop + 300000000ull;
    double interval = 1e9 / rate;
    struct pollfd pfd = {fd, POLLIN, 0};
    for (;;) {
        uint64_t t = now_ns();
        if (t >= linger || (sent >= total && received >= sent)) break;
        uint64_t due = due_by(t, start, interval, sent, total);
        int burst = 0;
        while (sent < due && burst < 256) {
            stamp_packet(out, head, (uint32_t)sent);
            if (send(fd, out, head + size, 0) < 0) {
                if (errno == EAGAIN || errno == ENOBUFS) break;
            }
            sent++;
            burst++;
        }
        for (;;) {
            ssize_t n = recv(fd, in, sizeof in, MSG_DONTWAIT);
            if (n < 0) break;
            uint32_t seq;
            uint64_t stamp;
            if (read_echo(in, n, head, &seq, &stamp) && seq < total) received += record_rtt(rtts, seq, stamp);
        }
        wait_until(&pfd, sent < total ? start + (uint64_t)((sent + 1) * interval) : linger);
    }
    uint32_t p50, p99;
    percentiles(rtts, total, received, &p50, &p99);
    printf("%llu %llu %u %u\n", (unsigned long long)sent, (unsigned long long)received, p50, p99);
    return 0;
}

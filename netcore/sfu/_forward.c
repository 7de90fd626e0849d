/*
 * The call server's forwarding path, compiled: the steady state of
 * netcore.sfu.rewrite.DownTrack.forward followed by the subscriber
 * transport's send path (MID and transport-wide sequence number stamping,
 * SRTP protection, the datagram out), for every subscriber of one source
 * in one call.
 *
 * The sans-IO core (netcore/sfu/core.py) keeps every decision. It installs
 * a Track for a subscriber's slot only when the slot is steady (forwarding
 * one source, no switch pending, nothing paused), handing over the
 * rewriter's state (sequence and timestamp offsets of every offset range,
 * the unwrapper, the VP8 picture id map, TL0PICIDX and KEYIDX offsets, the
 * temporal layer forwarded now and the latest frame's decision); from then
 * on each packet of that source is rewritten here, the same bytes
 * netcore.sfu.rewrite would make. A VP8 frame above the slot's temporal
 * cap (max_temporal, the core's choice, written into the track when it
 * changes) is left out here as DownTrack leaves it out: the numbers after
 * it close up. A packet this code would have to decide about (older than
 * the oldest offset range kept, a payload type not mapped, a malformed
 * descriptor) is not touched: the track is *ejected* and given back to the
 * core, which takes its state back and handles the packet in Python.
 *
 * What the Python transport needs to know of what was sent here is kept
 * for it to take when it needs it (netcore/sfu/fastpath.py): the
 * transport-wide numbers with their sizes and send times (its bandwidth
 * estimator), per outgoing SSRC the counts of its sender reports, and a
 * history from which a NACKed packet is rebuilt (each entry holds a
 * reference to the received packet and the values written over it, so the
 * history costs no copy per subscriber).
 *
 * One SRTP context per subscriber: the Python transport protects its own
 * RTP (retransmissions, padding) through Subscriber.protect, so the
 * rollover counter of each SSRC is kept in one place. The AEAD profiles
 * (RFC 7714, what our DTLS prefers and browsers agree to) are done here on
 * OpenSSL's AES-GCM; the others through libsrtp. (The distribution's
 * libsrtp2 is built on NSS, which creates a cipher context per packet: 4-5
 * us per 1,000-byte packet against well under one here.)
 *
 * No clock and no socket of its own: the time comes with each call, and
 * datagrams either go out with sendmmsg on the adapter's socket (an Output
 * with a file descriptor) or are collected for the caller (an Output
 * without one, the sans-IO mode the simulated network and tests use).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <structmember.h>

#include <openssl/evp.h>
#include <srtp2/srtp.h>

#define MAX_PACKET 1500                         /* what libsrtp and the MTU allow */
#define BUFFER_SIZE (MAX_PACKET + SRTP_MAX_TRAILER_LEN + 64)
#define BATCH 64                                /* datagrams per sendmmsg */
#define HISTORY 1024                            /* per outgoing SSRC, as the Python sender's */
#define MAX_OFFSETS 256                         /* netcore.rtp.forward.MAX_OFFSETS */
#define PICTURE_MAP 128                         /* netcore.sfu.rewrite.PICTURE_MAP */

/* ------------------------------------------------------------------ helpers */

static int srtp_ready = 0;

static int ensure_srtp(void) {
    if (!srtp_ready) {
        if (srtp_init() != srtp_err_status_ok) {
            PyErr_SetString(PyExc_RuntimeError, "srtp_init failed");
            return -1;
        }
        srtp_ready = 1;
    }
    return 0;
}

static int parse_address(PyObject *address, struct sockaddr_storage *sa, socklen_t *len) {
    const char *host;
    int port;
    if (!PyArg_ParseTuple(address, "si", &host, &port))
        return -1;
    memset(sa, 0, sizeof(*sa));
    struct sockaddr_in *v4 = (struct sockaddr_in *)sa;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)sa;
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        *len = sizeof(*v4);
        return 0;
    }
    if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        *len = sizeof(*v6);
        return 0;
    }
    PyErr_Format(PyExc_ValueError, "not an IP address: %s", host);
    return -1;
}

/* ------------------------------------------------------------------- Output */

typedef struct {
    PyObject_HEAD
    int fd;                 /* -1: collect */
    PyObject *collected;    /* list of (bytes, address) */
    struct mmsghdr msgs[BATCH];
    struct iovec iovs[BATCH];
    uint8_t bufs[BATCH][BUFFER_SIZE];
    int pending;
    unsigned long long sent, send_errors;
} Output;

static void Output_dealloc(Output *self) {
    Py_XDECREF(self->collected);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int Output_init(Output *self, PyObject *args, PyObject *kw) {
    int fd = -1;
    if (!PyArg_ParseTuple(args, "|i", &fd))
        return -1;
    self->fd = fd;
    Py_XSETREF(self->collected, PyList_New(0));
    return self->collected ? 0 : -1;
}

static void output_flush(Output *self) {
    int n = self->pending, done = 0;
    while (done < n) {
        int r = sendmmsg(self->fd, self->msgs + done, (unsigned)(n - done), 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            self->send_errors += (unsigned long long)(n - done);
            break;
        }
        if (r == 0)
            break;
        done += r;
        self->sent += (unsigned long long)r;
    }
    self->pending = 0;
}

static PyObject *Output_take(Output *self, PyObject *unused) {
    PyObject *out = self->collected;
    self->collected = PyList_New(0);
    if (!self->collected) {
        self->collected = out;
        return NULL;
    }
    return out;
}

static PyObject *Output_stats(Output *self, PyObject *unused) {
    return Py_BuildValue("KK", self->sent, self->send_errors);
}

static PyMethodDef Output_methods[] = {
    {"take", (PyCFunction)Output_take, METH_NOARGS, "The datagrams collected so far: [(bytes, address)]."},
    {"stats", (PyCFunction)Output_stats, METH_NOARGS, "(datagrams sent, datagrams the socket refused)."},
    {NULL},
};

static PyTypeObject OutputType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "netcore.sfu._forward.Output",
    .tp_basicsize = sizeof(Output),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Output_init,
    .tp_dealloc = (destructor)Output_dealloc,
    .tp_methods = Output_methods,
    .tp_doc = "Where forwarded datagrams go: Output(fd) sends with sendmmsg, Output() collects them.",
};

/* ------------------------------------------------------ SRTP, AEAD profiles */

/* RFC 7714 for RTP, as libsrtp does it (its KDF and its sender-side index estimate). */
#define PROFILE_AEAD_AES_128_GCM 7
#define PROFILE_AEAD_AES_256_GCM 8
#define GCM_TAG 16
#define REPLAY_WINDOW 1024

typedef struct {
    uint32_t ssrc;
    uint64_t index; /* the highest packet index sent: ROC << 16 | SEQ */
} SsrcIndex;

typedef struct {
    EVP_CIPHER_CTX *ctx;
    uint8_t salt[12];
    SsrcIndex *ssrcs;
    int count, cap;
} Gcm;

/* RFC 3711 section 4.3 with the AES-CM PRF (RFC 7714 section 11), as libsrtp: the 96-bit master salt padded
 * with zeros to 112 bits, the label in octet 7, the index (key derivation rate 0) zero. */
static int kdf(const uint8_t *master_key, int key_len, const uint8_t *master_salt, int label, uint8_t *out,
               int len) {
    uint8_t iv[16] = {0}, zeros[64] = {0};
    memcpy(iv, master_salt, 12);
    iv[7] ^= (uint8_t)label;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int outl = 0, ok = ctx && EVP_EncryptInit_ex(ctx, key_len == 32 ? EVP_aes_256_ctr() : EVP_aes_128_ctr(), NULL,
                                                  master_key, iv) == 1 &&
                       EVP_EncryptUpdate(ctx, out, &outl, zeros, len) == 1;
    EVP_CIPHER_CTX_free(ctx);
    return ok ? 0 : -1;
}

/* The SRTP (or with ``rtcp`` the SRTCP) session key and salt of RFC 3711 section 4.3.1's labels. */
static int gcm_init(Gcm *g, int profile, const uint8_t *master, Py_ssize_t master_len, int decrypt, int rtcp) {
    int key_len = profile == PROFILE_AEAD_AES_256_GCM ? 32 : 16;
    uint8_t key[32];
    if (master_len != key_len + 12)
        return -1;
    if (kdf(master, key_len, master + key_len, rtcp ? 0x03 : 0x00, key, key_len) < 0 ||
        kdf(master, key_len, master + key_len, rtcp ? 0x05 : 0x02, g->salt, 12) < 0)
        return -1;
    g->ctx = EVP_CIPHER_CTX_new();
    const EVP_CIPHER *cipher = key_len == 32 ? EVP_aes_256_gcm() : EVP_aes_128_gcm();
    if (!g->ctx || (decrypt ? EVP_DecryptInit_ex(g->ctx, cipher, NULL, key, NULL)
                            : EVP_EncryptInit_ex(g->ctx, cipher, NULL, key, NULL)) != 1)
        return -1;
    return 0;
}

static void gcm_free(Gcm *g) {
    if (g->ctx)
        EVP_CIPHER_CTX_free(g->ctx);
    PyMem_Free(g->ssrcs);
}

/* libsrtp's srtp_rdbx_estimate_index: the index of SEQ ``s`` next to the highest sent. */
static uint64_t estimate_index(uint64_t local, uint16_t s, int64_t *delta) {
    if (local <= 0x8000) {
        *delta = (int64_t)s - (int64_t)local;
        return s;
    }
    uint32_t roc = (uint32_t)(local >> 16), guess_roc;
    uint16_t seq = (uint16_t)local;
    if (seq < 0x8000) {
        if ((int)s - (int)seq > 0x8000) {
            guess_roc = roc - 1;
            *delta = (int)s - (int)seq - 0x10000;
        } else {
            guess_roc = roc;
            *delta = (int)s - (int)seq;
        }
    } else {
        if ((int)seq - 0x8000 > (int)s) {
            guess_roc = roc + 1;
            *delta = (int)s - (int)seq + 0x10000;
        } else {
            guess_roc = roc;
            *delta = (int)s - (int)seq;
        }
    }
    return ((uint64_t)guess_roc << 16) | s;
}

/* Protect the RTP packet in ``buf`` in place (RFC 7714 section 8.1); -1 if it cannot be. */
static int gcm_protect(Gcm *g, uint8_t *buf, int *len) {
    int n = *len;
    if (n < 12)
        return -1;
    Py_ssize_t header = 12 + 4 * (buf[0] & 0x0F);
    if (buf[0] & 0x10) {
        if (header + 4 > n)
            return -1;
        header += 4 + 4 * (buf[header + 2] << 8 | buf[header + 3]);
    }
    if (header > n)
        return -1;
    uint32_t ssrc = (uint32_t)buf[8] << 24 | (uint32_t)buf[9] << 16 | (uint32_t)buf[10] << 8 | buf[11];
    uint16_t seq = (uint16_t)(buf[2] << 8 | buf[3]);
    SsrcIndex *entry = NULL;
    for (int i = 0; i < g->count; i++)
        if (g->ssrcs[i].ssrc == ssrc) {
            entry = &g->ssrcs[i];
            break;
        }
    if (!entry) {
        if (g->count == g->cap) {
            int cap = g->cap ? 2 * g->cap : 8;
            SsrcIndex *grown = PyMem_Realloc(g->ssrcs, (size_t)cap * sizeof(SsrcIndex));
            if (!grown)
                return -1;
            g->ssrcs = grown;
            g->cap = cap;
        }
        entry = &g->ssrcs[g->count++];
        entry->ssrc = ssrc;
        entry->index = 0;
    }
    int64_t delta;
    uint64_t index = estimate_index(entry->index, seq, &delta);
    if (delta <= 0 && REPLAY_WINDOW - 1 + delta < 0)
        return -1; /* older than the window: libsrtp refuses it too */
    if (delta > 0)
        entry->index += (uint64_t)delta;
    uint32_t roc = (uint32_t)(index >> 16);
    uint8_t iv[12] = {0, 0, buf[8], buf[9], buf[10], buf[11], (uint8_t)(roc >> 24), (uint8_t)(roc >> 16),
                      (uint8_t)(roc >> 8), (uint8_t)roc, buf[2], buf[3]};
    for (int i = 0; i < 12; i++)
        iv[i] ^= g->salt[i];
    int outl = 0, last = 0;
    if (EVP_EncryptInit_ex(g->ctx, NULL, NULL, NULL, iv) != 1 ||
        EVP_EncryptUpdate(g->ctx, NULL, &outl, buf, (int)header) != 1 ||
        EVP_EncryptUpdate(g->ctx, buf + header, &outl, buf + header, (int)(n - header)) != 1 ||
        EVP_EncryptFinal_ex(g->ctx, buf + header + outl, &last) != 1 ||
        EVP_CIPHER_CTX_ctrl(g->ctx, EVP_CTRL_GCM_GET_TAG, GCM_TAG, buf + n) != 1)
        return -1;
    *len = n + GCM_TAG;
    return 0;
}

/* A libsrtp context for ``profile`` keyed with ``master`` (key||salt): every outbound SSRC (retransmissions
 * allowed) or every inbound one; -1 with ValueError set. */
static int srtp_context(srtp_t *out, int profile, const Py_buffer *master, int inbound) {
    srtp_policy_t policy;
    memset(&policy, 0, sizeof(policy));
    if (srtp_crypto_policy_set_from_profile_for_rtp(&policy.rtp, (srtp_profile_t)profile) != srtp_err_status_ok ||
        srtp_crypto_policy_set_from_profile_for_rtcp(&policy.rtcp, (srtp_profile_t)profile) !=
            srtp_err_status_ok) {
        PyErr_Format(PyExc_ValueError, "unsupported SRTP profile %d", profile);
        return -1;
    }
    policy.ssrc.type = inbound ? ssrc_any_inbound : ssrc_any_outbound;
    policy.key = (unsigned char *)master->buf;
    policy.window_size = REPLAY_WINDOW;
    policy.allow_repeat_tx = !inbound;
    policy.next = NULL;
    srtp_err_status_t status = srtp_create(out, &policy);
    if (status != srtp_err_status_ok) {
        *out = NULL;
        PyErr_Format(PyExc_ValueError, "srtp_create failed (%d)", (int)status);
        return -1;
    }
    return 0;
}

/* --------------------------------------------------------------- Subscriber */

typedef struct {
    uint16_t seq;
    uint32_t size;
    double at;
} Sent;

typedef struct {
    PyObject_HEAD
    srtp_t srtp;   /* libsrtp, for the profiles not done here */
    Gcm gcm;       /* the AEAD profiles (gcm.ctx set) */
    Output *output;
    PyObject *address;
    struct sockaddr_storage sa;
    socklen_t salen;
    int mid_id, twcc_id;
    uint16_t twcc_seq;
    Sent *log;
    Py_ssize_t log_len, log_cap;
} Subscriber;

static void Subscriber_dealloc(Subscriber *self) {
    if (self->srtp)
        srtp_dealloc(self->srtp);
    gcm_free(&self->gcm);
    Py_XDECREF(self->output);
    Py_XDECREF(self->address);
    PyMem_Free(self->log);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int Subscriber_init(Subscriber *self, PyObject *args, PyObject *kw) {
    static char *names[] = {"output", "profile", "master", "address", "mid_id", "twcc_id", "twcc_seq", NULL};
    Output *output;
    int profile, mid_id, twcc_id, twcc_seq;
    Py_buffer master;
    PyObject *address;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O!iy*Oiii", names, &OutputType, &output, &profile, &master,
                                     &address, &mid_id, &twcc_id, &twcc_seq))
        return -1;
    if (ensure_srtp() < 0 || parse_address(address, &self->sa, &self->salen) < 0) {
        PyBuffer_Release(&master);
        return -1;
    }
    if (profile == PROFILE_AEAD_AES_128_GCM || profile == PROFILE_AEAD_AES_256_GCM) {
        int failed = gcm_init(&self->gcm, profile, (const uint8_t *)master.buf, master.len, 0, 0) < 0;
        PyBuffer_Release(&master);
        if (failed) {
            PyErr_SetString(PyExc_ValueError, "AES-GCM keying failed (master key||salt length?)");
            return -1;
        }
        goto keyed;
    }
    int failed = srtp_context(&self->srtp, profile, &master, 0) < 0;
    PyBuffer_Release(&master);
    if (failed)
        return -1;
keyed:
    Py_INCREF(output);
    Py_XSETREF(self->output, output);
    Py_INCREF(address);
    Py_XSETREF(self->address, address);
    self->mid_id = mid_id;
    self->twcc_id = twcc_id;
    self->twcc_seq = (uint16_t)twcc_seq;
    return 0;
}

/* Protect ``buf`` (``*len`` plain bytes, room for the trailer) in place; -1 on a libsrtp error. */
static int subscriber_protect(Subscriber *self, uint8_t *buf, int *len) {
    if (self->gcm.ctx)
        return gcm_protect(&self->gcm, buf, len);
    return srtp_protect(self->srtp, buf, len) == srtp_err_status_ok ? 0 : -1;
}

static PyObject *Subscriber_protect(Subscriber *self, PyObject *arg) {
    Py_buffer in;
    uint8_t buf[BUFFER_SIZE];
    if (PyObject_GetBuffer(arg, &in, PyBUF_SIMPLE) < 0)
        return NULL;
    if (in.len < 12 || in.len > MAX_PACKET) {
        PyBuffer_Release(&in);
        PyErr_SetString(PyExc_ValueError, "RTP packet too short or too long to protect");
        return NULL;
    }
    int len = (int)in.len;
    memcpy(buf, in.buf, in.len);
    PyBuffer_Release(&in);
    if (subscriber_protect(self, buf, &len) < 0) {
        PyErr_SetString(PyExc_ValueError, "srtp_protect failed");
        return NULL;
    }
    return PyBytes_FromStringAndSize((const char *)buf, len);
}

static int subscriber_log(Subscriber *self, uint16_t seq, uint32_t size, double at) {
    if (self->log_len == self->log_cap) {
        Py_ssize_t cap = self->log_cap ? self->log_cap * 2 : 256;
        Sent *log = PyMem_Realloc(self->log, (size_t)cap * sizeof(Sent));
        if (!log)
            return -1;
        self->log = log;
        self->log_cap = cap;
    }
    self->log[self->log_len++] = (Sent){seq, size, at};
    return 0;
}

static PyObject *Subscriber_take_sent(Subscriber *self, PyObject *unused) {
    PyObject *out = PyList_New(self->log_len);
    if (!out)
        return NULL;
    for (Py_ssize_t i = 0; i < self->log_len; i++) {
        Sent *s = &self->log[i];
        PyObject *item = Py_BuildValue("(Hkd)", s->seq, (unsigned long)s->size, s->at);
        if (!item) {
            Py_DECREF(out);
            return NULL;
        }
        PyList_SET_ITEM(out, i, item);
    }
    self->log_len = 0;
    return out;
}

static PyObject *Subscriber_get_twcc_seq(Subscriber *self, void *c) { return PyLong_FromLong(self->twcc_seq); }

static int Subscriber_set_twcc_seq(Subscriber *self, PyObject *value, void *c) {
    long v = PyLong_AsLong(value);
    if (v == -1 && PyErr_Occurred())
        return -1;
    self->twcc_seq = (uint16_t)v;
    return 0;
}

static PyObject *Subscriber_get_pending(Subscriber *self, void *c) { return PyLong_FromSsize_t(self->log_len); }

static PyObject *Subscriber_get_address(Subscriber *self, void *c) {
    Py_INCREF(self->address);
    return self->address;
}

static int Subscriber_set_address(Subscriber *self, PyObject *value, void *c) {
    struct sockaddr_storage sa;
    socklen_t len;
    if (!value || parse_address(value, &sa, &len) < 0)
        return -1;
    self->sa = sa;
    self->salen = len;
    Py_INCREF(value);
    Py_XSETREF(self->address, value);
    return 0;
}

static PyMethodDef Subscriber_methods[] = {
    {"protect", (PyCFunction)Subscriber_protect, METH_O, "SRTP-protect one RTP packet of this subscriber's."},
    {"take_sent", (PyCFunction)Subscriber_take_sent, METH_NOARGS,
     "[(transport-wide number, size, send time)] of the packets sent here since the last call, in order."},
    {NULL},
};

static PyGetSetDef Subscriber_getset[] = {
    {"twcc_seq", (getter)Subscriber_get_twcc_seq, (setter)Subscriber_set_twcc_seq,
     "The next transport-wide sequence number.", NULL},
    {"pending", (getter)Subscriber_get_pending, NULL, "Packets sent here and not yet taken.", NULL},
    {"address", (getter)Subscriber_get_address, (setter)Subscriber_set_address, "Where its datagrams go.", NULL},
    {NULL},
};

static PyTypeObject SubscriberType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "netcore.sfu._forward.Subscriber",
    .tp_basicsize = sizeof(Subscriber),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Subscriber_init,
    .tp_dealloc = (destructor)Subscriber_dealloc,
    .tp_methods = Subscriber_methods,
    .tp_getset = Subscriber_getset,
    .tp_doc = "One subscriber's transport: its SRTP context, address and transport-wide numbers.",
};

/* -------------------------------------------------------------- the packet */

/* A received packet, parsed once per forward() for every track. */
typedef struct {
    const uint8_t *data;
    Py_ssize_t len;
    int marker, pt;
    uint16_t seq;
    uint32_t ts;
    uint32_t ssrc;
    Py_ssize_t payload, payload_end;
    const uint8_t *level; /* the audio level element's value, or NULL */
    int level_len;
    int ext_profile;
    Py_ssize_t ext_pos, ext_end;
    /* VP8 descriptor (vp8: it parsed) */
    int vp8;
    int s, part, n, has_pid, has_tl0, has_tid, has_key, y;
    int pid, tl0, tid, key;
    Py_ssize_t vp8_data; /* offset of the VP8 data after the descriptor */
} Packet;

static int parse_rtp(Packet *p, const uint8_t *d, Py_ssize_t len) {
    if (len < 12 || (d[0] >> 6) != 2)
        return -1;
    int cc = d[0] & 0x0F;
    Py_ssize_t pos = 12 + 4 * cc;
    p->data = d;
    p->len = len;
    p->marker = d[1] >> 7;
    p->pt = d[1] & 0x7F;
    p->seq = (uint16_t)(d[2] << 8 | d[3]);
    p->ts = (uint32_t)d[4] << 24 | (uint32_t)d[5] << 16 | (uint32_t)d[6] << 8 | d[7];
    p->ssrc = (uint32_t)d[8] << 24 | (uint32_t)d[9] << 16 | (uint32_t)d[10] << 8 | d[11];
    p->level = NULL;
    p->level_len = 0;
    Py_ssize_t ext = 0, ext_end = 0;
    int profile = 0;
    if (d[0] & 0x10) {
        if (pos + 4 > len)
            return -1;
        profile = d[pos] << 8 | d[pos + 1];
        ext = pos + 4;
        ext_end = ext + 4 * (d[pos + 2] << 8 | d[pos + 3]);
        pos = ext_end;
    }
    Py_ssize_t end = len;
    if (d[0] & 0x20) {
        int padding = d[len - 1];
        if (padding == 0 || end - padding < pos)
            return -1;
        end -= padding;
    }
    if (pos > end)
        return -1;
    p->payload = pos;
    p->payload_end = end;
    p->vp8 = 0;
    p->ext_profile = profile;
    p->ext_pos = ext;
    p->ext_end = ext_end;
    return 0;
}

/* The first element with ``id`` (RFC 8285, either form) into p->level; 0 none, 1 found, -1 malformed. */
static int find_extension(Packet *p, int id) {
    const uint8_t *d = p->data;
    int profile = p->ext_profile;
    Py_ssize_t pos = p->ext_pos, end = p->ext_end;
    if (profile == 0xBEDE) {
        while (pos < end) {
            int b = d[pos];
            if (b == 0) {
                pos++;
                continue;
            }
            int i = b >> 4, n = (b & 0x0F) + 1;
            if (i == 15)
                return 0;
            if (pos + 1 + n > end)
                return -1;
            if (i == id) {
                p->level = d + pos + 1;
                p->level_len = n;
                return 1;
            }
            pos += 1 + n;
        }
        return 0;
    }
    if ((profile & 0xFFF0) == 0x1000) {
        while (pos < end) {
            int i = d[pos];
            if (i == 0) {
                pos++;
                continue;
            }
            if (pos + 2 > end)
                return -1;
            int n = d[pos + 1];
            if (pos + 2 + n > end)
                return -1;
            if (i == id) {
                p->level = d + pos + 2;
                p->level_len = n;
                return 1;
            }
            pos += 2 + n;
        }
    }
    return 0;
}

/* The VP8 payload descriptor (RFC 7741 section 4.2), as netcore.rtp.vp8.Vp8Descriptor.parse reads it. */
static int parse_vp8(Packet *p) {
    const uint8_t *d = p->data + p->payload;
    Py_ssize_t n = p->payload_end - p->payload, pos = 1;
    if (n < 1)
        return -1;
    int b0 = d[0];
    p->s = (b0 & 0x10) != 0;
    p->part = b0 & 0x07;
    p->n = (b0 & 0x20) != 0;
    p->has_pid = p->has_tl0 = p->has_tid = p->has_key = p->y = 0;
    p->pid = p->tl0 = p->tid = p->key = 0;
    if (b0 & 0x80) {
        if (n < 2)
            return -1;
        int x = d[1];
        pos = 2;
        if (x & 0x80) {
            if (pos >= n)
                return -1;
            if (d[pos] & 0x80) {
                if (pos + 2 > n)
                    return -1;
                p->pid = (d[pos] & 0x7F) << 8 | d[pos + 1];
                pos += 2;
            } else {
                p->pid = d[pos];
                pos += 1;
            }
            p->has_pid = 1;
        }
        if (x & 0x40) {
            if (pos >= n)
                return -1;
            p->tl0 = d[pos++];
            p->has_tl0 = 1;
        }
        if (x & 0x30) {
            if (pos >= n)
                return -1;
            int tk = d[pos];
            if (x & 0x20) {
                p->tid = tk >> 6;
                p->y = (tk & 0x20) != 0;
                p->has_tid = 1;
            }
            if (x & 0x10) {
                p->key = tk & 0x1F;
                p->has_key = 1;
            }
            pos += 1;
        }
    }
    p->vp8_data = p->payload + pos;
    p->vp8 = 1;
    return 0;
}

/* -------------------------------------------------------------------- Track */

/* What a history entry needs to rebuild the packet as first sent. */
typedef struct {
    PyObject *input; /* the received packet (bytes), or NULL */
    uint16_t seq;
    uint32_t ts;
    int pid, tl0, key;
} Entry;

typedef struct {
    PyObject_HEAD
    Subscriber *sub;
    uint32_t ssrc;
    uint8_t pt_map[128];  /* incoming PT -> ours; 0xFF: not agreed */
    uint8_t vp8[128];     /* incoming PT is VP8 */
    int level_id;         /* ours for the audio level, 0: not agreed */
    int source_level_id;  /* the publisher's, 0: not agreed */
    uint8_t mid[16];
    int mid_len;
    int max_temporal;     /* DownTrack.max_temporal: the core's cap, set by it */
    int temporal;         /* DownTrack.temporal: the highest TID forwarded now */
    int frame_pid, frame_fwd; /* DownTrack._frame: (picture id, forwarded) of the latest frame; -1: none */
    int ejected;
    /* netcore.rtp.forward.StreamRewriter, no switch pending: from incoming number starts[i] on, offsets[i] */
    int has_unwrap;
    long long unwrap_last, highest;
    int ranges;
    long long starts[MAX_OFFSETS], offsets[MAX_OFFSETS];
    uint32_t ts_offset;
    int has_last;
    uint16_t last_seq;
    uint32_t last_ts;
    double last_at;
    /* netcore.sfu.rewrite.Vp8Rewriter, steady; -1: none yet */
    int pid_offset, tl0_offset, key_offset, last_pid, last_tl0, last_key, newest_pid;
    /* Vp8Rewriter._pids: incoming picture id -> the one sent, the latest PICTURE_MAP in insertion order */
    int pids_head, pids_count;
    uint16_t pids_in[PICTURE_MAP], pids_out[PICTURE_MAP];
    uint8_t pids_seen[0x8000 / 8];  /* which incoming ids are in the map */
    /* left out here since the last take_drops: temporal layer skips, and those that left a gap */
    unsigned long long skipped, gaps;
    /* what the Python side takes: counts for its sender reports and the slot's metrics */
    unsigned long long packets, bytes, report_packets, report_octets;
    uint32_t sent_ts;
    double sent_at;
    Entry history[HISTORY];
} Track;

static void Track_clear_history(Track *self) {
    for (int i = 0; i < HISTORY; i++)
        Py_CLEAR(self->history[i].input);
}

static void Track_dealloc(Track *self) {
    Track_clear_history(self);
    Py_XDECREF(self->sub);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int fill_map(PyObject *map, uint8_t *out, int is_set) {
    PyObject *k, *v;
    Py_ssize_t pos = 0;
    while (PyDict_Next(map, &pos, &k, &v)) {
        long key = PyLong_AsLong(k);
        long value = is_set ? PyObject_IsTrue(v) : PyLong_AsLong(v);
        if (PyErr_Occurred())
            return -1;
        if (key < 0 || key > 127 || value < 0 || value > 127) {
            PyErr_SetString(PyExc_ValueError, "payload type outside 0-127");
            return -1;
        }
        out[key] = (uint8_t)value;
    }
    return 0;
}

static int Track_init(Track *self, PyObject *args, PyObject *kw) {
    static char *names[] = {"subscriber", "ssrc", "payload_types", "vp8", "level_id", "source_level_id", "mid",
                            "max_temporal", NULL};
    Subscriber *sub;
    unsigned long ssrc;
    PyObject *pts, *vp8;
    int level_id, source_level_id, max_temporal;
    Py_buffer mid;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O!kO!O!iiy*i", names, &SubscriberType, &sub, &ssrc, &PyDict_Type,
                                     &pts, &PyDict_Type, &vp8, &level_id, &source_level_id, &mid, &max_temporal))
        return -1;
    if (mid.len > 16) {
        PyBuffer_Release(&mid);
        PyErr_SetString(PyExc_ValueError, "a MID longer than 16 bytes");
        return -1;
    }
    memcpy(self->mid, mid.buf, mid.len);
    self->mid_len = (int)mid.len;
    PyBuffer_Release(&mid);
    memset(self->pt_map, 0xFF, sizeof(self->pt_map));
    memset(self->vp8, 0, sizeof(self->vp8));
    if (fill_map(pts, self->pt_map, 0) < 0 || fill_map(vp8, self->vp8, 1) < 0)
        return -1;
    Py_INCREF(sub);
    Py_XSETREF(self->sub, sub);
    self->ssrc = (uint32_t)ssrc;
    self->level_id = level_id;
    self->source_level_id = source_level_id;
    self->max_temporal = self->temporal = max_temporal;
    self->last_pid = self->last_tl0 = self->last_key = self->newest_pid = self->frame_pid = -1;
    self->ranges = 1;
    return 0;
}

/* Vp8Rewriter._pids: the id sent for ``incoming`` into ``*out``; 0 if not in the map. */
static int pids_get(const Track *t, int incoming, int *out) {
    if (!(t->pids_seen[incoming >> 3] & (1 << (incoming & 7))))
        return 0;
    for (int i = t->pids_count - 1; i >= 0; i--) {  /* the newest first: mostly the frame being sent */
        int k = (t->pids_head + i) % PICTURE_MAP;
        if (t->pids_in[k] == incoming) {
            *out = t->pids_out[k];
            return 1;
        }
    }
    return 0;
}

/* Vp8Rewriter._pids[incoming] = sent, the oldest entry forgotten past PICTURE_MAP (``incoming`` not in it). */
static void pids_put(Track *t, int incoming, int sent) {
    if (t->pids_count == PICTURE_MAP) {
        int old = t->pids_in[t->pids_head];
        t->pids_seen[old >> 3] &= (uint8_t)~(1 << (old & 7));
        t->pids_head = (t->pids_head + 1) % PICTURE_MAP;
        t->pids_count--;
    }
    int k = (t->pids_head + t->pids_count++) % PICTURE_MAP;
    t->pids_in[k] = (uint16_t)incoming;
    t->pids_out[k] = (uint16_t)sent;
    t->pids_seen[incoming >> 3] |= (uint8_t)(1 << (incoming & 7));
}

static int opt_long(PyObject *o, int none) {
    return o == Py_None ? none : (int)PyLong_AsLong(o);
}

/* The rewriter's state, handed over by the core (see netcore/sfu/fastpath.py for the fields). */
static PyObject *Track_load(Track *self, PyObject *args) {
    PyObject *unwrap_last, *starts, *offsets, *last_seq, *last_pid, *last_tl0, *last_key, *newest_pid, *pids;
    PyObject *frame_pid;
    long long highest;
    unsigned long ts_offset, last_ts;
    double last_at;
    int pid_offset, tl0_offset, key_offset, temporal, frame_fwd;
    if (!PyArg_ParseTuple(args, "OLO!O!kOkdiiiOOOOO!iOp", &unwrap_last, &highest, &PyList_Type, &starts,
                          &PyList_Type, &offsets, &ts_offset, &last_seq, &last_ts, &last_at, &pid_offset,
                          &tl0_offset, &key_offset, &last_pid, &last_tl0, &last_key, &newest_pid, &PyList_Type,
                          &pids, &temporal, &frame_pid, &frame_fwd))
        return NULL;
    Py_ssize_t ranges = PyList_GET_SIZE(starts);
    if (ranges < 1 || ranges > MAX_OFFSETS || PyList_GET_SIZE(offsets) != ranges) {
        PyErr_SetString(PyExc_ValueError, "1 to MAX_OFFSETS offset ranges, as many starts as offsets");
        return NULL;
    }
    for (Py_ssize_t i = 0; i < ranges; i++) {
        self->starts[i] = PyLong_AsLongLong(PyList_GET_ITEM(starts, i));
        self->offsets[i] = PyLong_AsLongLong(PyList_GET_ITEM(offsets, i));
    }
    self->ranges = (int)ranges;
    memset(self->pids_seen, 0, sizeof(self->pids_seen));
    self->pids_head = self->pids_count = 0;
    Py_ssize_t n = PyList_GET_SIZE(pids);
    for (Py_ssize_t i = n > PICTURE_MAP ? n - PICTURE_MAP : 0; i < n; i++) {
        int incoming, sent;
        if (!PyArg_ParseTuple(PyList_GET_ITEM(pids, i), "ii", &incoming, &sent))
            return NULL;
        pids_put(self, incoming & 0x7FFF, sent & 0x7FFF);
    }
    self->has_unwrap = unwrap_last != Py_None;
    self->unwrap_last = self->has_unwrap ? PyLong_AsLongLong(unwrap_last) : 0;
    self->has_last = last_seq != Py_None;
    self->last_seq = self->has_last ? (uint16_t)PyLong_AsLong(last_seq) : 0;
    self->last_pid = opt_long(last_pid, -1);
    self->last_tl0 = opt_long(last_tl0, -1);
    self->last_key = opt_long(last_key, -1);
    self->newest_pid = opt_long(newest_pid, -1);
    self->frame_pid = opt_long(frame_pid, -1);
    if (PyErr_Occurred())
        return NULL;
    self->frame_fwd = frame_fwd;
    self->temporal = temporal;
    self->highest = highest;
    self->ts_offset = (uint32_t)ts_offset;
    self->last_ts = (uint32_t)last_ts;
    self->last_at = last_at;
    self->pid_offset = pid_offset;
    self->tl0_offset = tl0_offset;
    self->key_offset = key_offset;
    self->ejected = 0;
    Py_RETURN_NONE;
}

static PyObject *opt_int(int has, long long v) {
    if (!has)
        Py_RETURN_NONE;
    return PyLong_FromLongLong(v);
}

/* The state to hand back: (unwrap_last, highest, last_seq, last_ts, last_at, last_pid, last_tl0, last_key,
 * newest_pid, starts, offsets, pid_offset, pids, temporal, frame pid, frame forwarded). */
static PyObject *Track_state(Track *self, PyObject *unused) {
    PyObject *starts = PyList_New(self->ranges), *offsets = PyList_New(self->ranges);
    PyObject *pids = PyList_New(self->pids_count);
    if (!starts || !offsets || !pids)
        goto failed;
    for (int i = 0; i < self->ranges; i++) {
        PyObject *a = PyLong_FromLongLong(self->starts[i]), *b = PyLong_FromLongLong(self->offsets[i]);
        if (a)
            PyList_SET_ITEM(starts, i, a);
        if (b)
            PyList_SET_ITEM(offsets, i, b);
        if (!a || !b)
            goto failed;
    }
    for (int i = 0; i < self->pids_count; i++) {
        int k = (self->pids_head + i) % PICTURE_MAP;
        PyObject *pair = Py_BuildValue("(ii)", self->pids_in[k], self->pids_out[k]);
        if (!pair)
            goto failed;
        PyList_SET_ITEM(pids, i, pair);
    }
    return Py_BuildValue("(NLNkdNNNNNNiNiNO)", opt_int(self->has_unwrap, self->unwrap_last), self->highest,
                         opt_int(self->has_last, self->last_seq), (unsigned long)self->last_ts, self->last_at,
                         opt_int(self->last_pid >= 0, self->last_pid), opt_int(self->last_tl0 >= 0, self->last_tl0),
                         opt_int(self->last_key >= 0, self->last_key),
                         opt_int(self->newest_pid >= 0, self->newest_pid), starts, offsets, self->pid_offset, pids,
                         self->temporal, opt_int(self->frame_pid >= 0, self->frame_pid),
                         self->frame_fwd ? Py_True : Py_False);
failed:
    Py_XDECREF(starts);
    Py_XDECREF(offsets);
    Py_XDECREF(pids);
    return NULL;
}

/* (packets left out for their temporal layer, those of them that left a gap) since the last call. */
static PyObject *Track_take_drops(Track *self, PyObject *unused) {
    PyObject *out = Py_BuildValue("(KK)", self->skipped, self->gaps);
    self->skipped = self->gaps = 0;
    return out;
}

/* (packets, payload octets, last RTP timestamp, its send time) since the last call, for the sender reports. */
static PyObject *Track_take_reports(Track *self, PyObject *unused) {
    PyObject *out = Py_BuildValue("(KKkd)", self->report_packets, self->report_octets, (unsigned long)self->sent_ts,
                                  self->sent_at);
    self->report_packets = self->report_octets = 0;
    return out;
}

/* Write the VP8 descriptor as Vp8Descriptor.serialize does (15-bit picture id); returns its length. */
static int write_vp8(uint8_t *o, const Packet *p, int pid, int tl0, int key) {
    int b0 = (p->n ? 0x20 : 0) | (p->s ? 0x10 : 0) | (p->part & 0x07);
    if (!(p->has_pid || p->has_tl0 || p->has_tid || p->has_key)) {
        o[0] = (uint8_t)b0;
        return 1;
    }
    int pos = 0;
    o[pos++] = (uint8_t)(b0 | 0x80);
    o[pos++] = (uint8_t)(p->has_pid << 7 | p->has_tl0 << 6 | p->has_tid << 5 | p->has_key << 4);
    if (p->has_pid) {
        o[pos++] = (uint8_t)(0x80 | ((pid >> 8) & 0x7F));
        o[pos++] = (uint8_t)(pid & 0xFF);
    }
    if (p->has_tl0)
        o[pos++] = (uint8_t)tl0;
    if (p->has_tid || p->has_key)
        o[pos++] = (uint8_t)(((p->has_tid ? p->tid : 0) & 3) << 6 | (p->has_tid && p->y ? 0x20 : 0) |
                             ((p->has_key ? key : 0) & 0x1F));
    return pos;
}

/* The packet as the subscriber gets it, into ``o``; ``stamp``: with the transport's MID and transport-wide
 * number elements (the wire form), else as the send history keeps it. Returns its length, -1 if too long. */
static int write_packet(uint8_t *o, Track *t, const Packet *p, uint16_t seq, uint32_t ts, int pid, int tl0, int key,
                        int stamp, uint16_t twcc) {
    Subscriber *sub = t->sub;
    int out_pt = t->pt_map[p->pt];
    uint8_t elements[64];
    int ids[3], lens[3], count = 0, one_byte = 1;
    const uint8_t *values[3];
    uint8_t twcc_value[2] = {(uint8_t)(twcc >> 8), (uint8_t)twcc};
    if (p->level && t->level_id) {
        ids[count] = t->level_id;
        lens[count] = p->level_len;
        values[count++] = p->level;
    }
    if (stamp && sub->mid_id) {
        ids[count] = sub->mid_id;
        lens[count] = t->mid_len;
        values[count++] = t->mid;
    }
    if (stamp && sub->twcc_id) {
        ids[count] = sub->twcc_id;
        lens[count] = 2;
        values[count++] = twcc_value;
    }
    int ext_len = 0;
    for (int i = 0; i < count; i++)
        if (ids[i] > 14 || lens[i] < 1 || lens[i] > 16)
            one_byte = 0;
    for (int i = 0; i < count; i++) {
        if (one_byte) {
            elements[ext_len++] = (uint8_t)(ids[i] << 4 | (lens[i] - 1));
        } else {
            elements[ext_len++] = (uint8_t)ids[i];
            elements[ext_len++] = (uint8_t)lens[i];
        }
        memcpy(elements + ext_len, values[i], lens[i]);
        ext_len += lens[i];
    }
    while (ext_len % 4)
        elements[ext_len++] = 0;
    uint8_t descriptor[8];
    int desc_len = 0;
    Py_ssize_t rest = p->payload;
    if (p->vp8) {
        desc_len = write_vp8(descriptor, p, pid, tl0, key);
        rest = p->vp8_data;
    }
    Py_ssize_t total = 12 + (count ? 4 + ext_len : 0) + desc_len + (p->payload_end - rest);
    if (total > MAX_PACKET)
        return -1;
    o[0] = (uint8_t)(0x80 | (count ? 0x10 : 0));
    o[1] = (uint8_t)((p->marker ? 0x80 : 0) | out_pt);
    o[2] = (uint8_t)(seq >> 8);
    o[3] = (uint8_t)seq;
    o[4] = (uint8_t)(ts >> 24);
    o[5] = (uint8_t)(ts >> 16);
    o[6] = (uint8_t)(ts >> 8);
    o[7] = (uint8_t)ts;
    o[8] = (uint8_t)(t->ssrc >> 24);
    o[9] = (uint8_t)(t->ssrc >> 16);
    o[10] = (uint8_t)(t->ssrc >> 8);
    o[11] = (uint8_t)t->ssrc;
    int pos = 12;
    if (count) {
        o[pos++] = one_byte ? 0xBE : 0x10;
        o[pos++] = one_byte ? 0xDE : 0x00;
        o[pos++] = (uint8_t)((ext_len / 4) >> 8);
        o[pos++] = (uint8_t)(ext_len / 4);
        memcpy(o + pos, elements, ext_len);
        pos += ext_len;
    }
    memcpy(o + pos, descriptor, desc_len);
    pos += desc_len;
    memcpy(o + pos, p->data + rest, p->payload_end - rest);
    return (int)(pos + (p->payload_end - rest));
}

/* The plain packet sent with ``seq`` (as the Python send history would hold it), or None. */
static PyObject *Track_history(Track *self, PyObject *arg) {
    long seq = PyLong_AsLong(arg);
    if (seq == -1 && PyErr_Occurred())
        return NULL;
    Entry *e = &self->history[(seq & 0xFFFF) % HISTORY];
    if (!e->input || e->seq != (uint16_t)seq)
        Py_RETURN_NONE;
    Packet p;
    uint8_t buf[BUFFER_SIZE];
    memset(&p, 0, sizeof(p));
    if (parse_rtp(&p, (const uint8_t *)PyBytes_AS_STRING(e->input), PyBytes_GET_SIZE(e->input)) < 0)
        Py_RETURN_NONE;
    if (self->level_id && self->source_level_id)
        find_extension(&p, self->source_level_id);
    if (self->vp8[p.pt] && parse_vp8(&p) < 0)
        Py_RETURN_NONE;
    int len = write_packet(buf, self, &p, e->seq, e->ts, e->pid, e->tl0, e->key, 0, 0);
    if (len < 0)
        Py_RETURN_NONE;
    return PyBytes_FromStringAndSize((const char *)buf, len);
}

static PyMethodDef Track_methods[] = {
    {"load", (PyCFunction)Track_load, METH_VARARGS, "Take the rewriter's state over from the core."},
    {"state", (PyCFunction)Track_state, METH_NOARGS, "The rewriter's state, to hand back to the core."},
    {"take_reports", (PyCFunction)Track_take_reports, METH_NOARGS,
     "(packets, payload octets, last timestamp, its time) sent since the last call."},
    {"take_drops", (PyCFunction)Track_take_drops, METH_NOARGS,
     "(packets left out for their temporal layer, those that left a gap) since the last call."},
    {"history", (PyCFunction)Track_history, METH_O, "The plain packet sent with this sequence number, or None."},
    {NULL},
};

static PyMemberDef Track_members[] = {
    {"packets", T_ULONGLONG, offsetof(Track, packets), READONLY, "Packets forwarded here."},
    {"bytes", T_ULONGLONG, offsetof(Track, bytes), READONLY, "Their bytes before stamping and SRTP."},
    {"ejected", T_INT, offsetof(Track, ejected), READONLY, "Handed back to the core."},
    {"ssrc", T_UINT, offsetof(Track, ssrc), READONLY, "The outgoing SSRC."},
    {"max_temporal", T_INT, offsetof(Track, max_temporal), 0, "The highest TID wanted (the core's cap)."},
    {"temporal", T_INT, offsetof(Track, temporal), READONLY, "The highest TID forwarded now."},
    {NULL},
};

static PyTypeObject TrackType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "netcore.sfu._forward.Track",
    .tp_basicsize = sizeof(Track),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Track_init,
    .tp_dealloc = (destructor)Track_dealloc,
    .tp_methods = Track_methods,
    .tp_members = Track_members,
    .tp_doc = "One subscriber slot's outgoing stream while the compiled path forwards it.",
};

/* -------------------------------------------------------------------- Group */

typedef struct {
    PyObject_HEAD
    PyObject *tracks; /* list of Track */
    int level_id;     /* the publisher's audio level id, 0: none */
} Group;

static void Group_dealloc(Group *self) {
    Py_XDECREF(self->tracks);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int Group_init(Group *self, PyObject *args, PyObject *kw) {
    int level_id = 0;
    if (!PyArg_ParseTuple(args, "|i", &level_id))
        return -1;
    self->level_id = level_id;
    Py_XSETREF(self->tracks, PyList_New(0));
    return self->tracks ? 0 : -1;
}

static PyObject *Group_add(Group *self, PyObject *track) {
    if (!PyObject_TypeCheck(track, &TrackType)) {
        PyErr_SetString(PyExc_TypeError, "a Track");
        return NULL;
    }
    if (PyList_Append(self->tracks, track) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *Group_remove(Group *self, PyObject *track) {
    Py_ssize_t n = PyList_GET_SIZE(self->tracks);
    for (Py_ssize_t i = 0; i < n; i++)
        if (PyList_GET_ITEM(self->tracks, i) == track)
            return PySequence_DelItem(self->tracks, i) < 0 ? NULL : (Py_INCREF(Py_None), Py_None);
    Py_RETURN_NONE;
}

static Py_ssize_t Group_len(Group *self) { return PyList_GET_SIZE(self->tracks); }

/* Whether ``t`` can take ``p`` without a decision of the core's (see the file's comment). */
static int steady(const Track *t, const Packet *p, const Packet *vp8, int vp8_ok, long long *n) {
    if (t->pt_map[p->pt] == 0xFF)
        return 0;
    if (t->vp8[p->pt] && !vp8_ok)
        return 0;
    if (p->level && t->level_id && (p->level_len < 1 || p->level_len > 16))
        return 0;
    long long u = p->seq;
    if (t->has_unwrap) {
        long long delta = (p->seq - t->unwrap_last) & 0xFFFF;
        if (delta >= 0x8000)
            delta -= 0x10000;
        u = t->unwrap_last + delta;
    }
    if (u < t->starts[0])
        return 0;  /* older than the ranges kept: dropped as late or a gap, the core counts it */
    *n = u;
    return 1;
}

/* DownTrack._temporal_forwarded: whether the frame of ``q`` (a VP8 packet with a TID) is forwarded. */
static int temporal_forwarded(Track *t, const Packet *q) {
    if (t->frame_pid >= 0 && q->has_pid && t->frame_pid == q->pid)
        return t->frame_fwd;  /* one decision per frame */
    if (q->s && q->part == 0) {  /* RFC 7741 4.1: a frame starts */
        int target = t->max_temporal, current = t->temporal;
        if (q->vp8_data < q->payload_end && !(q->data[q->vp8_data] & 0x01))
            current = target;  /* a key frame: every layer decodes from here */
        else if (target < current)
            current = target;
        else if (current < q->tid && q->tid <= target && q->y)
            current = q->tid;
        t->temporal = current;
    }
    int forwarded = q->tid <= t->temporal;
    if (q->has_pid) {
        t->frame_pid = q->pid;
        t->frame_fwd = forwarded;
    }
    return forwarded;
}

/* StreamRewriter.skip and Vp8Rewriter.skip: ``q`` (incoming number ``u``) is left out on purpose, the
 * numbers after it close up (a gap when it is older than one already seen). */
static void track_skip(Track *t, const Packet *q, long long u) {
    t->has_unwrap = 1;
    t->unwrap_last = u;
    t->skipped++;
    if (u <= t->highest || u < t->starts[0]) {
        t->gaps++;
    } else {
        int last = t->ranges - 1;
        long long offset = t->offsets[last] - 1;
        if (t->starts[last] == u) {  /* the packet after the last skipped one: extend that range */
            t->starts[last] = u + 1;
            t->offsets[last] = offset;
        } else {
            if (t->ranges == MAX_OFFSETS) {
                memmove(t->starts, t->starts + 1, (MAX_OFFSETS - 1) * sizeof(long long));
                memmove(t->offsets, t->offsets + 1, (MAX_OFFSETS - 1) * sizeof(long long));
                t->ranges--;
            }
            t->starts[t->ranges] = u + 1;
            t->offsets[t->ranges++] = offset;
        }
        t->highest = u;
    }
    int sent;
    if (!q->has_pid || pids_get(t, q->pid, &sent))
        return;
    int ahead = (q->pid - t->newest_pid) & 0x7FFF;
    if (t->newest_pid < 0 || (ahead > 0 && ahead < 0x4000)) {
        t->newest_pid = q->pid;
        t->pid_offset = (t->pid_offset - 1) & 0x7FFF;
    }
}

/* StreamRewriter._offset_of, for ``u`` at or after the first range (steady checked it). */
static long long offset_of(Track *t, long long u) {
    if (u > t->highest)
        t->highest = u;
    int i = t->ranges - 1;
    while (i > 0 && t->starts[i] > u)  /* mostly the latest range: a repair goes back a few at most */
        i--;
    return t->offsets[i];
}

/* Forward ``input`` (a received RTP packet, plain bytes) to every track: the packets and bytes sent into
 * ``*count`` and ``*total``, the tracks given back into ``*ejected`` (a new list, or left NULL); -1 with an
 * exception set on an error of memory. */
static int group_send(Group *self, PyObject *input, double now, long *count_out, long long *total_out,
                      PyObject **ejected_out) {
    *count_out = 0;
    *total_out = 0;
    Packet p;
    memset(&p, 0, sizeof(p));
    if (parse_rtp(&p, (const uint8_t *)PyBytes_AS_STRING(input), PyBytes_GET_SIZE(input)) < 0) {
        *ejected_out = PyList_GetSlice(self->tracks, 0, PyList_GET_SIZE(self->tracks));
        return *ejected_out ? 0 : -1;  /* every track decides in Python */
    }
    if (self->level_id && find_extension(&p, self->level_id) < 0)
        p.level = NULL;
    Packet vp8 = p;
    int vp8_ok = parse_vp8(&vp8) == 0;
    PyObject *ejected = NULL;
    long count = 0;
    long long total = 0;
    Py_ssize_t n = PyList_GET_SIZE(self->tracks);
    Output *batch_output = NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        Track *t = (Track *)PyList_GET_ITEM(self->tracks, i);
        if (t->ejected)
            continue;
        long long u;
        if (!steady(t, &p, &vp8, vp8_ok, &u)) {
            t->ejected = 1;
            if (!ejected && !(ejected = PyList_New(0)))
                return -1;
            if (PyList_Append(ejected, (PyObject *)t) < 0) {
                Py_DECREF(ejected);
                return -1;
            }
            continue;
        }
        const Packet *q = t->vp8[p.pt] ? &vp8 : &p;
        if (q->vp8 && q->has_tid && !temporal_forwarded(t, q)) {
            track_skip(t, q, u);
            continue;
        }
        /* StreamRewriter.rewrite */
        t->has_unwrap = 1;
        t->unwrap_last = u;
        uint16_t seq = (uint16_t)((long long)p.seq + offset_of(t, u));
        uint32_t ts = p.ts + t->ts_offset;
        uint16_t ahead = (uint16_t)(seq - t->last_seq);
        if (!t->has_last || (ahead > 0 && ahead < 0x8000)) {
            t->has_last = 1;
            t->last_seq = seq;
            t->last_ts = ts;
            t->last_at = now;
        }
        /* Vp8Rewriter.rewrite, steady */
        int pid = 0, tl0 = 0, key = 0;
        if (q->vp8) {
            if (q->has_pid) {
                int incoming = q->pid;
                if (!pids_get(t, incoming, &pid)) {
                    pid = (incoming + t->pid_offset) & 0x7FFF;
                    pids_put(t, incoming, pid);
                    int ahead = (incoming - t->newest_pid) & 0x7FFF;
                    if (t->newest_pid < 0 || (ahead > 0 && ahead < 0x4000))
                        t->newest_pid = incoming;
                }
                if (t->last_pid < 0 || ((pid - t->last_pid) & 0x7FFF) < 0x4000)
                    t->last_pid = pid;
            }
            if (q->has_tl0) {
                tl0 = (q->tl0 + t->tl0_offset) & 0xFF;
                if (t->last_tl0 < 0 || ((tl0 - t->last_tl0) & 0xFF) < 0x80)
                    t->last_tl0 = tl0;
            }
            if (q->has_key) {
                key = (q->key + t->key_offset) & 0x1F;
                t->last_key = key;
            }
        }
        Subscriber *sub = t->sub;
        Output *out = sub->output;
        if (batch_output && (batch_output != out || batch_output->pending == BATCH)) {
            output_flush(batch_output);
            batch_output = NULL;
        }
        uint8_t *buf = out->fd >= 0 ? out->bufs[out->pending] : out->bufs[0];
        uint16_t twcc = sub->twcc_seq;
        int len = write_packet(buf, t, q, seq, ts, pid, tl0, key, 1, twcc);
        if (len < 0)
            continue;  /* cannot grow past the MTU: counted nowhere, as the Python path would raise */
        int plain;
        {   /* the plain packet's extension block is padded on its own */
            int wire_ext = (int)((buf[0] & 0x10) ? 4 + 4 * (buf[14] << 8 | buf[15]) : 0);
            int level = (q->level && t->level_id) ? q->level_len : 0;
            int head = t->level_id <= 14 ? 1 : 2;  /* one-byte or two-byte form (RFC 8285 section 4) */
            int plain_ext = level ? 4 + ((head + level + 3) / 4) * 4 : 0;
            plain = len - wire_ext + plain_ext;
        }
        if (sub->twcc_id) {
            sub->twcc_seq = (uint16_t)(twcc + 1);
            if (subscriber_log(sub, twcc, (uint32_t)len, now) < 0) {
                Py_XDECREF(ejected);
                PyErr_NoMemory();
                return -1;
            }
        }
        /* the history: the received packet and what was written over it */
        Entry *e = &t->history[seq % HISTORY];
        Py_INCREF(input);
        Py_XSETREF(e->input, input);
        e->seq = seq;
        e->ts = ts;
        e->pid = pid;
        e->tl0 = tl0;
        e->key = key;
        int payload = (int)(q->payload_end - q->payload);
        if (q->vp8) {
            uint8_t d[8];
            payload = write_vp8(d, q, pid, tl0, key) + (int)(q->payload_end - q->vp8_data);
        }
        t->report_packets++;
        t->report_octets += (unsigned long long)payload;
        t->sent_ts = ts;
        t->sent_at = now;
        t->packets++;
        t->bytes += (unsigned long long)plain;
        count++;
        total += plain;
        if (subscriber_protect(sub, buf, &len) < 0)
            continue;
        if (out->fd >= 0) {
            int k = out->pending++;
            out->iovs[k].iov_base = buf;
            out->iovs[k].iov_len = (size_t)len;
            memset(&out->msgs[k].msg_hdr, 0, sizeof(struct msghdr));
            out->msgs[k].msg_hdr.msg_name = &sub->sa;
            out->msgs[k].msg_hdr.msg_namelen = sub->salen;
            out->msgs[k].msg_hdr.msg_iov = &out->iovs[k];
            out->msgs[k].msg_hdr.msg_iovlen = 1;
            batch_output = out;
        } else {
            PyObject *item = Py_BuildValue("(y#O)", (const char *)buf, (Py_ssize_t)len, sub->address);
            if (!item || PyList_Append(out->collected, item) < 0) {
                Py_XDECREF(item);
                Py_XDECREF(ejected);
                return -1;
            }
            Py_DECREF(item);
        }
    }
    if (batch_output)
        output_flush(batch_output);
    *count_out = count;
    *total_out = total;
    *ejected_out = ejected;
    return 0;
}

/* Forward ``packet`` (a received RTP packet, plain) to every track: (packets, bytes, ejected tracks). */
static PyObject *Group_forward(Group *self, PyObject *args) {
    PyObject *input, *ejected = NULL;
    double now;
    long count;
    long long total;
    if (!PyArg_ParseTuple(args, "O!d", &PyBytes_Type, &input, &now))
        return NULL;
    if (group_send(self, input, now, &count, &total, &ejected) < 0)
        return NULL;
    PyObject *result = Py_BuildValue("(lLO)", count, total, ejected ? ejected : Py_None);
    Py_XDECREF(ejected);
    return result;
}

static PyMethodDef Group_methods[] = {
    {"add", (PyCFunction)Group_add, METH_O, "Forward this source to the track too."},
    {"remove", (PyCFunction)Group_remove, METH_O, "Stop forwarding to the track."},
    {"forward", (PyCFunction)Group_forward, METH_VARARGS,
     "forward(packet, now) -> (packets, bytes, ejected tracks or None)."},
    {NULL},
};

static PySequenceMethods Group_sequence = {.sq_length = (lenfunc)Group_len};

static PyTypeObject GroupType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "netcore.sfu._forward.Group",
    .tp_basicsize = sizeof(Group),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Group_init,
    .tp_dealloc = (destructor)Group_dealloc,
    .tp_methods = Group_methods,
    .tp_as_sequence = &Group_sequence,
    .tp_doc = "The tracks that forward one source (an SSRC of a publication): Group(source_level_id).",
};

/* ------------------------------------------------------------------ Inbound */

/*
 * A publisher's transport as the compiled path sees it: the one SRTP
 * context that unprotects its RTP (the Python transport unprotects through
 * Inbound.unprotect, so each SSRC's replay window and rollover counter are
 * kept in one place), and the sources the core has *armed*: a source whose
 * next packet needs no decision of the core's, only forwarding to the
 * tracks installed in its Group.
 *
 * receive() takes a datagram before any Python code sees it. It looks at
 * the header, which SRTP leaves in the clear, and takes the packet only if
 * its source is armed, the core changed nothing since (the epoch the core
 * passes), the group holds the tracks it held then, and the packet is the
 * next sequence number with the payload type seen then, without padding.
 * Then it unprotects, forwards, and logs (plain packet, time): the core
 * replays the log through its Python bookkeeping (receiver statistics,
 * NACK tracker, TWCC arrivals, meters, key frames, audio levels) before it
 * handles anything else, so every decision sees every packet in order, as
 * if each had been handled on arrival; only the forwarding went first.
 */

typedef struct {
    uint32_t ssrc;
    uint64_t index;                 /* the highest packet index received: ROC << 16 | SEQ */
    uint64_t seen[REPLAY_WINDOW / 64]; /* RFC 3711 section 3.3.2: the indices received, by index % window */
} Replay;

typedef struct {
    uint32_t ssrc;
    Group *group;        /* the tracks that forward it (may hold none) */
    Py_ssize_t tracks;   /* how many when armed */
    uint16_t last_seq;
    int pt;
    unsigned long long epoch;
} Armed;

#define LOG_MAX 256      /* packets logged before the core must replay them */

enum { RX_OK = 0, RX_REPLAYED = 1, RX_AUTH = 2, RX_MALFORMED = 3 };

#define RTCP_WINDOW 128 /* libsrtp's SRTCP replay window */
#define MAX_RTCP_REPLAYS 16 /* SSRCs sending RTCP per peer (the one unseen longest forgotten past it) */

typedef struct {
    uint32_t ssrc;
    uint32_t index;   /* the highest SRTCP index received */
    uint64_t seen[2]; /* bit k: index - k received */
    int any;
} RtcpReplay;

typedef struct {
    PyObject_HEAD
    srtp_t srtp;     /* libsrtp, for the profiles not done here */
    Gcm gcm;         /* the AEAD profiles (gcm.ctx set, for decryption) */
    Gcm gcm_rtcp;    /* and their SRTCP keys */
    Replay *replays;
    int replay_count, replay_cap;
    RtcpReplay rtcp_replays[MAX_RTCP_REPLAYS];
    int rtcp_replay_count;
    Armed *armed;
    int armed_count, armed_cap;
    PyObject *log;   /* [(plain bytes, time)] for RTP, [(plain bytes, time, True)] for RTCP */
    long long last_bytes; /* what the latest packet taken and logged was forwarded as, in bytes */
    int feedback;    /* take this peer's RTCP that can wait (see receive_rtcp) */
} Inbound;

static void Inbound_dealloc(Inbound *self) {
    if (self->srtp)
        srtp_dealloc(self->srtp);
    gcm_free(&self->gcm);
    gcm_free(&self->gcm_rtcp);
    PyMem_Free(self->replays);
    for (int i = 0; i < self->armed_count; i++)
        Py_XDECREF(self->armed[i].group);
    PyMem_Free(self->armed);
    Py_XDECREF(self->log);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int Inbound_init(Inbound *self, PyObject *args, PyObject *kw) {
    static char *names[] = {"profile", "master", NULL};
    int profile;
    Py_buffer master;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "iy*", names, &profile, &master))
        return -1;
    if (ensure_srtp() < 0) {
        PyBuffer_Release(&master);
        return -1;
    }
    Py_XSETREF(self->log, PyList_New(0));
    if (!self->log) {
        PyBuffer_Release(&master);
        return -1;
    }
    if (profile == PROFILE_AEAD_AES_128_GCM || profile == PROFILE_AEAD_AES_256_GCM) {
        int failed = gcm_init(&self->gcm, profile, (const uint8_t *)master.buf, master.len, 1, 0) < 0 ||
                     gcm_init(&self->gcm_rtcp, profile, (const uint8_t *)master.buf, master.len, 1, 1) < 0;
        PyBuffer_Release(&master);
        if (failed) {
            PyErr_SetString(PyExc_ValueError, "AES-GCM keying failed (master key||salt length?)");
            return -1;
        }
        return 0;
    }
    int failed = srtp_context(&self->srtp, profile, &master, 1) < 0;
    PyBuffer_Release(&master);
    return failed ? -1 : 0;
}

#define MAX_REPLAYS 32 /* SSRCs with a replay window per publisher (libsrtp keeps one per SSRC ever seen) */

static Replay *replay_for(Inbound *self, uint32_t ssrc) {
    for (int i = 0; i < self->replay_count; i++)
        if (self->replays[i].ssrc == ssrc) {
            if (i != self->replay_count - 1) {  /* the newest last: the one forgotten is the one unseen longest */
                Replay found = self->replays[i];
                memmove(self->replays + i, self->replays + i + 1,
                        (size_t)(self->replay_count - 1 - i) * sizeof(Replay));
                self->replays[self->replay_count - 1] = found;
            }
            return &self->replays[self->replay_count - 1];
        }
    if (self->replay_count == MAX_REPLAYS) {  /* bounded: the SSRC unseen longest is forgotten */
        memmove(self->replays, self->replays + 1, (MAX_REPLAYS - 1) * sizeof(Replay));
        self->replay_count--;
    } else if (self->replay_count == self->replay_cap) {
        int cap = self->replay_cap ? 2 * self->replay_cap : 4;
        Replay *grown = PyMem_Realloc(self->replays, (size_t)cap * sizeof(Replay));
        if (!grown)
            return NULL;
        self->replays = grown;
        self->replay_cap = cap;
    }
    Replay *r = &self->replays[self->replay_count++];
    memset(r, 0, sizeof(*r));
    r->ssrc = ssrc;
    return r;
}

static int seen_bit(const Replay *r, uint64_t index) {
    return (r->seen[(index % REPLAY_WINDOW) / 64] >> (index % 64)) & 1;
}

static void set_seen(Replay *r, uint64_t index, int on) {
    uint64_t bit = (uint64_t)1 << (index % 64);
    uint64_t *word = &r->seen[(index % REPLAY_WINDOW) / 64];
    *word = on ? (*word | bit) : (*word & ~bit);
}

/* RFC 7714 section 9 (libsrtp's order: replay check, authenticate and decrypt, then record the index). */
static int gcm_unprotect(Inbound *self, uint8_t *buf, int *len) {
    Gcm *g = &self->gcm;
    int n = *len;
    if (n < 12 + GCM_TAG)
        return RX_MALFORMED;
    Py_ssize_t header = 12 + 4 * (buf[0] & 0x0F);
    if (buf[0] & 0x10) {
        if (header + 4 > n)
            return RX_MALFORMED;
        header += 4 + 4 * (buf[header + 2] << 8 | buf[header + 3]);
    }
    if (header > n - GCM_TAG)
        return RX_MALFORMED;
    uint32_t ssrc = (uint32_t)buf[8] << 24 | (uint32_t)buf[9] << 16 | (uint32_t)buf[10] << 8 | buf[11];
    uint16_t seq = (uint16_t)(buf[2] << 8 | buf[3]);
    Replay *r = replay_for(self, ssrc);
    if (!r)
        return RX_MALFORMED;
    int64_t delta;
    uint64_t index = estimate_index(r->index, seq, &delta);
    if (delta <= 0 && (-delta >= REPLAY_WINDOW || seen_bit(r, index)))
        return RX_REPLAYED;
    uint32_t roc = (uint32_t)(index >> 16);
    uint8_t iv[12] = {0, 0, buf[8], buf[9], buf[10], buf[11], (uint8_t)(roc >> 24), (uint8_t)(roc >> 16),
                      (uint8_t)(roc >> 8), (uint8_t)roc, buf[2], buf[3]};
    for (int i = 0; i < 12; i++)
        iv[i] ^= g->salt[i];
    int body = n - GCM_TAG - (int)header, outl = 0, last = 0;
    if (EVP_DecryptInit_ex(g->ctx, NULL, NULL, NULL, iv) != 1 ||
        EVP_DecryptUpdate(g->ctx, NULL, &outl, buf, (int)header) != 1 ||
        EVP_DecryptUpdate(g->ctx, buf + header, &outl, buf + header, body) != 1 ||
        EVP_CIPHER_CTX_ctrl(g->ctx, EVP_CTRL_GCM_SET_TAG, GCM_TAG, buf + n - GCM_TAG) != 1 ||
        EVP_DecryptFinal_ex(g->ctx, buf + header + outl, &last) != 1)
        return RX_AUTH;
    if (delta > 0) {
        uint64_t clear = (uint64_t)delta < REPLAY_WINDOW ? (uint64_t)delta : REPLAY_WINDOW;
        for (uint64_t k = 1; k <= clear; k++)
            set_seen(r, r->index + k, 0);
        r->index = index;
    }
    set_seen(r, index, 1);
    *len = n - GCM_TAG;
    return RX_OK;
}

/* What a libsrtp status means here. */
static int rx_status(srtp_err_status_t status) {
    if (status == srtp_err_status_ok)
        return RX_OK;
    if (status == srtp_err_status_replay_fail || status == srtp_err_status_replay_old)
        return RX_REPLAYED;
    return status == srtp_err_status_auth_fail ? RX_AUTH : RX_MALFORMED;
}

/* Unprotect ``n`` bytes at ``in`` into ``buf``: RX_OK and the plain length in ``*len``, or why not. */
static int inbound_unprotect(Inbound *self, const uint8_t *in, Py_ssize_t n, uint8_t *buf, int *len) {
    if (n < 12 || n > MAX_PACKET + SRTP_MAX_TRAILER_LEN)
        return RX_MALFORMED;
    memcpy(buf, in, (size_t)n);
    *len = (int)n;
    if (self->gcm.ctx)
        return gcm_unprotect(self, buf, len);
    return rx_status(srtp_unprotect(self->srtp, buf, len));
}

static const char *rx_reasons[] = {"", "replay check failed", "authentication failed", "malformed packet"};
static const char *rx_counters[] = {"", "replayed", "auth_failed", "malformed"}; /* netcore.srtp.SrtpStats */

static RtcpReplay *rtcp_replay_for(Inbound *self, uint32_t ssrc) {
    RtcpReplay *r = self->rtcp_replays;
    for (int i = 0; i < self->rtcp_replay_count; i++)
        if (r[i].ssrc == ssrc)
            return &r[i];
    if (self->rtcp_replay_count == MAX_RTCP_REPLAYS) {
        memmove(r, r + 1, (MAX_RTCP_REPLAYS - 1) * sizeof(RtcpReplay));
        self->rtcp_replay_count--;
    }
    RtcpReplay *fresh = &r[self->rtcp_replay_count++];
    memset(fresh, 0, sizeof(*fresh));
    fresh->ssrc = ssrc;
    return fresh;
}

/* RFC 7714 sections 9.1 and 17 (SRTCP, encrypted: E = 1): IV from SSRC and SRTCP index, AAD the first 8
 * octets and the E || index word, the tag before that word; libsrtp's 128-packet window per SSRC. */
static int gcm_unprotect_rtcp(Inbound *self, uint8_t *buf, int *len) {
    Gcm *g = &self->gcm_rtcp;
    int n = *len;
    if (n < 8 + GCM_TAG + 4)
        return RX_MALFORMED;
    const uint8_t *word = buf + n - 4;
    if (!(word[0] & 0x80))
        return RX_MALFORMED; /* not encrypted (E = 0): not sent by the peers this serves */
    uint32_t index = (uint32_t)(word[0] & 0x7F) << 24 | (uint32_t)word[1] << 16 | (uint32_t)word[2] << 8 | word[3];
    uint32_t ssrc = (uint32_t)buf[4] << 24 | (uint32_t)buf[5] << 16 | (uint32_t)buf[6] << 8 | buf[7];
    RtcpReplay *r = rtcp_replay_for(self, ssrc);
    if (r->any && index <= r->index) {
        uint32_t back = r->index - index;
        if (back >= RTCP_WINDOW || ((r->seen[back / 64] >> (back % 64)) & 1))
            return RX_REPLAYED;
    }
    uint8_t iv[12] = {0, 0, buf[4], buf[5], buf[6], buf[7], 0, 0, word[0] & 0x7F, word[1], word[2], word[3]};
    for (int i = 0; i < 12; i++)
        iv[i] ^= g->salt[i];
    int body = n - 8 - GCM_TAG - 4, outl = 0, last = 0;
    if (EVP_DecryptInit_ex(g->ctx, NULL, NULL, NULL, iv) != 1 ||
        EVP_DecryptUpdate(g->ctx, NULL, &outl, buf, 8) != 1 ||
        EVP_DecryptUpdate(g->ctx, NULL, &outl, word, 4) != 1 ||
        EVP_DecryptUpdate(g->ctx, buf + 8, &outl, buf + 8, body) != 1 ||
        EVP_CIPHER_CTX_ctrl(g->ctx, EVP_CTRL_GCM_SET_TAG, GCM_TAG, buf + 8 + body) != 1 ||
        EVP_DecryptFinal_ex(g->ctx, buf + 8 + outl, &last) != 1)
        return RX_AUTH;
    if (!r->any || index > r->index) {
        uint32_t ahead = r->any ? index - r->index : RTCP_WINDOW;
        if (ahead >= RTCP_WINDOW) {
            r->seen[0] = r->seen[1] = 0;
        } else if (ahead >= 64) {
            r->seen[1] = r->seen[0] << (ahead - 64);
            r->seen[0] = 0;
        } else if (ahead > 0) {
            r->seen[1] = (r->seen[1] << ahead) | (r->seen[0] >> (64 - ahead));
            r->seen[0] <<= ahead;
        }
        r->index = index;
        r->any = 1;
        r->seen[0] |= 1;
    } else {
        uint32_t back = r->index - index;
        r->seen[back / 64] |= (uint64_t)1 << (back % 64);
    }
    *len = 8 + body;
    return RX_OK;
}

static PyObject *Inbound_unprotect_rtcp(Inbound *self, PyObject *arg) {
    Py_buffer in;
    uint8_t buf[BUFFER_SIZE];
    if (PyObject_GetBuffer(arg, &in, PyBUF_SIMPLE) < 0)
        return NULL;
    int len = (int)in.len, why = RX_MALFORMED;
    if (in.len >= 8 && in.len <= MAX_PACKET + SRTP_MAX_TRAILER_LEN) {
        memcpy(buf, in.buf, (size_t)in.len);
        why = self->gcm_rtcp.ctx ? gcm_unprotect_rtcp(self, buf, &len)
                                 : rx_status(srtp_unprotect_rtcp(self->srtp, buf, &len));
    }
    PyBuffer_Release(&in);
    if (why != RX_OK) {
        PyErr_SetString(PyExc_ValueError, rx_reasons[why]);
        return NULL;
    }
    return PyBytes_FromStringAndSize((const char *)buf, len);
}


static PyObject *Inbound_unprotect(Inbound *self, PyObject *arg) {
    Py_buffer in;
    uint8_t buf[BUFFER_SIZE];
    if (PyObject_GetBuffer(arg, &in, PyBUF_SIMPLE) < 0)
        return NULL;
    int len, why = inbound_unprotect(self, (const uint8_t *)in.buf, in.len, buf, &len);
    PyBuffer_Release(&in);
    if (why != RX_OK) {
        PyErr_SetString(PyExc_ValueError, rx_reasons[why]);
        return NULL;
    }
    return PyBytes_FromStringAndSize((const char *)buf, len);
}

static Armed *armed_for(Inbound *self, uint32_t ssrc) {
    for (int i = 0; i < self->armed_count; i++)
        if (self->armed[i].ssrc == ssrc)
            return &self->armed[i];
    return NULL;
}

static PyObject *Inbound_arm(Inbound *self, PyObject *args) {
    unsigned int ssrc;
    PyObject *group;
    int seq, pt;
    unsigned long long epoch;
    if (!PyArg_ParseTuple(args, "IOiiK", &ssrc, &group, &seq, &pt, &epoch))
        return NULL;
    if (group != Py_None && !PyObject_TypeCheck(group, &GroupType)) {
        PyErr_SetString(PyExc_TypeError, "a Group or None");
        return NULL;
    }
    Armed *a = armed_for(self, ssrc);
    if (!a) {
        if (self->armed_count == self->armed_cap) {
            int cap = self->armed_cap ? 2 * self->armed_cap : 4;
            if (cap > 64) {
                PyErr_SetString(PyExc_ValueError, "too many sources armed");
                return NULL;
            }
            Armed *grown = PyMem_Realloc(self->armed, (size_t)cap * sizeof(Armed));
            if (!grown)
                return PyErr_NoMemory();
            self->armed = grown;
            self->armed_cap = cap;
        }
        a = &self->armed[self->armed_count++];
        a->ssrc = ssrc;
        a->group = NULL;
    }
    Group *g = group == Py_None ? NULL : (Group *)group;
    Py_XINCREF(g);
    Py_XSETREF(a->group, g);
    a->tracks = g ? PyList_GET_SIZE(g->tracks) : 0;
    a->last_seq = (uint16_t)seq;
    a->pt = pt;
    a->epoch = epoch;
    Py_RETURN_NONE;
}

static void disarm(Inbound *self, Armed *a) {
    Py_XDECREF(a->group);
    *a = self->armed[--self->armed_count];
}

static PyObject *Inbound_disarm(Inbound *self, PyObject *arg) {
    if (arg == Py_None) {
        while (self->armed_count)
            disarm(self, &self->armed[0]);
        Py_RETURN_NONE;
    }
    unsigned long ssrc = PyLong_AsUnsignedLong(arg);
    if (ssrc == (unsigned long)-1 && PyErr_Occurred())
        return NULL;
    Armed *a = armed_for(self, (uint32_t)ssrc);
    if (a)
        disarm(self, a);
    Py_RETURN_NONE;
}

/* See the section's comment. None: not taken (untouched, the core handles it); an int: forwarded (to that
 * many tracks, last_bytes in all) and logged; a str: unprotecting failed, dropped (the SrtpStats counter to
 * count it in); a tuple (plain, packets, bytes,
 * ejected tracks, group): unprotected and forwarded to the tracks still installed, the ejected ones (and the
 * rest of the packet's handling) the core's, and not logged. */
/* What receive returns for one datagram (see its docstring); the Reader calls it on the bytes it read. */
static PyObject *inbound_receive(Inbound *self, const uint8_t *d, Py_ssize_t n, double now,
                                 unsigned long long epoch) {
    if (n < 12 || (d[0] & 0xC0) != 0x80)
        Py_RETURN_NONE;
    uint32_t ssrc = (uint32_t)d[8] << 24 | (uint32_t)d[9] << 16 | (uint32_t)d[10] << 8 | d[11];
    Armed *a = armed_for(self, ssrc);
    if (!a)
        Py_RETURN_NONE;
    uint16_t seq = (uint16_t)(d[2] << 8 | d[3]);
    Py_ssize_t tracks = a->group ? PyList_GET_SIZE(a->group->tracks) : 0;
    if (a->epoch != epoch || a->tracks != tracks || seq != (uint16_t)(a->last_seq + 1) || (d[1] & 0x7F) != a->pt ||
        (d[0] & 0x20) || PyList_GET_SIZE(self->log) >= LOG_MAX) {  /* padding: a probe's, the core's */
        disarm(self, a);
        Py_RETURN_NONE;
    }
    uint8_t buf[BUFFER_SIZE];
    int len, why = inbound_unprotect(self, d, n, buf, &len);
    if (why != RX_OK)
        return PyUnicode_FromString(rx_counters[why]);
    a->last_seq = seq;
    PyObject *plain = PyBytes_FromStringAndSize((const char *)buf, len);
    if (!plain)
        return NULL;
    long count = 0;
    long long total = 0;
    PyObject *ejected = NULL;
    if (a->group && group_send(a->group, plain, now, &count, &total, &ejected) < 0) {
        Py_DECREF(plain);
        return NULL;
    }
    if (ejected) {  /* a track needs the core for this packet: it takes the whole packet over */
        PyObject *result = Py_BuildValue("(NlLNO)", plain, count, total, ejected, (PyObject *)a->group);
        disarm(self, a);
        return result;
    }
    self->last_bytes = total;
    PyObject *entry = Py_BuildValue("(Nd)", plain, now);
    if (!entry || PyList_Append(self->log, entry) < 0) {
        Py_XDECREF(entry);
        return NULL;
    }
    Py_DECREF(entry);
    return PyLong_FromLong(count);
}

static PyObject *Inbound_receive(Inbound *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3 || !PyBytes_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "receive(data: bytes, now: float, epoch: int)");
        return NULL;
    }
    double now = PyFloat_AsDouble(args[1]);
    unsigned long long epoch = PyLong_AsUnsignedLongLong(args[2]);
    if (PyErr_Occurred())
        return NULL;
    return inbound_receive(self, (const uint8_t *)PyBytes_AS_STRING(args[0]), PyBytes_GET_SIZE(args[0]), now,
                           epoch);
}

/* Whether a compound holds only what may wait for the core's replay: receiver reports, SDES and
 * transport-wide feedback (RFC 3550 6.4.2, 6.5; draft-holmer-rmcat-transport-wide-cc-extensions-01), each
 * packet whole. Anything else (a NACK, a key-frame request, a sender report, BYE, REMB) goes to the core now. */
static int may_wait(const uint8_t *d, int n) {
    int pos = 0;
    while (pos + 4 <= n) {
        int length = ((d[pos + 2] << 8) | d[pos + 3]) * 4 + 4;
        uint8_t pt = d[pos + 1], fmt = d[pos] & 0x1F;
        if ((d[pos] & 0xC0) != 0x80 || pos + length > n)
            return 0;
        if (pt != 201 && pt != 202 && !(pt == 205 && fmt == 15))
            return 0;
        pos += length;
    }
    return pos == n && n > 0;
}

/* What receive_rtcp returns for one datagram (see its docstring). */
static PyObject *inbound_receive_rtcp(Inbound *self, const uint8_t *d, Py_ssize_t n, double now) {
    if (!self->feedback || n < 8 || n > MAX_PACKET + SRTP_MAX_TRAILER_LEN || PyList_GET_SIZE(self->log) >= LOG_MAX)
        Py_RETURN_NONE;
    uint8_t buf[BUFFER_SIZE];
    int len = (int)n;
    memcpy(buf, d, (size_t)n);
    int why = self->gcm_rtcp.ctx ? gcm_unprotect_rtcp(self, buf, &len)
                                 : rx_status(srtp_unprotect_rtcp(self->srtp, buf, &len));
    if (why != RX_OK)  /* nothing changed: the transport unprotects it again and counts why */
        Py_RETURN_NONE;
    PyObject *plain = PyBytes_FromStringAndSize((const char *)buf, len);
    if (!plain || !may_wait(buf, len))
        return plain;
    PyObject *entry = Py_BuildValue("(NdO)", plain, now, Py_True);
    if (!entry || PyList_Append(self->log, entry) < 0) {
        Py_XDECREF(entry);
        return NULL;
    }
    Py_DECREF(entry);
    Py_RETURN_TRUE;
}

static PyObject *Inbound_receive_rtcp(Inbound *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2 || !PyBytes_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "receive_rtcp(data: bytes, now: float)");
        return NULL;
    }
    double now = PyFloat_AsDouble(args[1]);
    if (PyErr_Occurred())
        return NULL;
    return inbound_receive_rtcp(self, (const uint8_t *)PyBytes_AS_STRING(args[0]), PyBytes_GET_SIZE(args[0]), now);
}

static PyObject *Inbound_take(Inbound *self, PyObject *unused) {
    PyObject *log = self->log;
    self->log = PyList_New(0);
    if (!self->log) {
        self->log = log;
        return NULL;
    }
    return log;
}

static PyObject *Inbound_get_pending(Inbound *self, void *c) { return PyLong_FromSsize_t(PyList_GET_SIZE(self->log)); }

static PyObject *Inbound_get_armed(Inbound *self, void *c) {
    PyObject *out = PyList_New(self->armed_count);
    if (!out)
        return NULL;
    for (int i = 0; i < self->armed_count; i++) {
        PyObject *v = PyLong_FromUnsignedLong(self->armed[i].ssrc);
        if (!v) {
            Py_DECREF(out);
            return NULL;
        }
        PyList_SET_ITEM(out, i, v);
    }
    return out;
}

static PyMethodDef Inbound_methods[] = {
    {"unprotect", (PyCFunction)Inbound_unprotect, METH_O,
     "SRTP-unprotect one RTP packet of this publisher's (ValueError: replayed, forged or malformed)."},
    {"unprotect_rtcp", (PyCFunction)Inbound_unprotect_rtcp, METH_O,
     "SRTCP-unprotect one compound packet of this peer's (ValueError: replayed, forged or malformed)."},
    {"arm", (PyCFunction)Inbound_arm, METH_VARARGS,
     "arm(ssrc, group or None, last sequence number, payload type, epoch): take the source's next packets."},
    {"disarm", (PyCFunction)Inbound_disarm, METH_O, "disarm(ssrc or None for every source)."},
    {"receive", (PyCFunction)(void (*)(void))Inbound_receive, METH_FASTCALL,
     "receive(data, now, epoch): None, packets forwarded (int), a drop's counter (str) or (plain, packets, bytes, ejected, group)."},
    {"receive_rtcp", (PyCFunction)(void (*)(void))Inbound_receive_rtcp, METH_FASTCALL,
     "receive_rtcp(data, now): None (left untouched: not taking feedback, its SRTCP fails, the log is full),"
     " True (unprotected and logged: only reports, SDES and transport-wide feedback) or the unprotected"
     " compound, for the core now."},
    {"take", (PyCFunction)Inbound_take, METH_NOARGS,
     "[(plain, arrival time)] (RTP) and [(plain, arrival time, True)] (RTCP) logged since the last call."},
    {NULL},
};

static PyMemberDef Inbound_members[] = {
    {"last_bytes", T_LONGLONG, offsetof(Inbound, last_bytes), READONLY,
     "The bytes the latest packet taken and logged was forwarded as (every track's)."},
    {"feedback", T_INT, offsetof(Inbound, feedback), 0,
     "Whether receive_rtcp takes this peer's RTCP that can wait for the core (0: it leaves all of it)."},
    {NULL},
};

static PyGetSetDef Inbound_getset[] = {
    {"pending", (getter)Inbound_get_pending, NULL, "Packets logged and not yet taken.", NULL},
    {"armed", (getter)Inbound_get_armed, NULL, "The SSRCs armed now.", NULL},
    {NULL},
};

static PyTypeObject InboundType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "netcore.sfu._forward.Inbound",
    .tp_basicsize = sizeof(Inbound),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Inbound_init,
    .tp_dealloc = (destructor)Inbound_dealloc,
    .tp_methods = Inbound_methods,
    .tp_getset = Inbound_getset,
    .tp_members = Inbound_members,
    .tp_doc = "One publisher's transport: Inbound(profile, remote master key||salt).",
};

/* ------------------------------------------------------------------- Reader */

/*
 * A media socket's reading, for the daemon: one recvmmsg per wake-up of the
 * loop, each datagram from a source the core armed offered to that
 * participant's Inbound first (the same receive as Inbound.receive), so that
 * a publisher packet the compiled path takes costs no Python frame at all.
 * Everything else goes back to the caller as it was read, in order.
 */

#define READ_BUDGET 32   /* datagrams per recvmmsg, as libuv reads per wake-up */
#define READ_SIZE 2048   /* a datagram longer than this is none of ours (MTU-sized media, STUN, DTLS) */

typedef struct {
    PyObject_HEAD
    PyObject *sources;   /* {source_key(address): (Inbound, what read() names it by)} */
    long long truncated; /* datagrams dropped for being longer than READ_SIZE */
    long long rtcp;      /* RTCP compounds taken and logged for the core's replay */
    struct mmsghdr messages[READ_BUDGET];
    struct iovec vectors[READ_BUDGET];
    struct sockaddr_storage addresses[READ_BUDGET];
    uint8_t buffers[READ_BUDGET][READ_SIZE];
} Reader;

/* family (4 or 6), port, address bytes: the same for an address read here and one given as (host, port) */
static PyObject *key_of(const struct sockaddr_storage *sa) {
    uint8_t key[19];
    if (sa->ss_family == AF_INET) {
        const struct sockaddr_in *v4 = (const struct sockaddr_in *)sa;
        key[0] = 4;
        memcpy(key + 1, &v4->sin_port, 2);
        memcpy(key + 3, &v4->sin_addr, 4);
        return PyBytes_FromStringAndSize((const char *)key, 7);
    }
    const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)sa;
    key[0] = 6;
    memcpy(key + 1, &v6->sin6_port, 2);
    memcpy(key + 3, &v6->sin6_addr, 16);
    return PyBytes_FromStringAndSize((const char *)key, 19);
}

static PyObject *address_of(const struct sockaddr_storage *sa) {
    char host[INET6_ADDRSTRLEN];
    int port;
    if (sa->ss_family == AF_INET) {
        const struct sockaddr_in *v4 = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &v4->sin_addr, host, sizeof(host));
        port = ntohs(v4->sin_port);
    } else {
        const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &v6->sin6_addr, host, sizeof(host));
        port = ntohs(v6->sin6_port);
    }
    return Py_BuildValue("(si)", host, port);
}

static PyObject *source_key(PyObject *module, PyObject *address) {
    struct sockaddr_storage sa;
    socklen_t len;
    if (parse_address(address, &sa, &len) < 0)
        return NULL;
    return key_of(&sa);
}

static void Reader_dealloc(Reader *self) {
    Py_XDECREF(self->sources);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int Reader_init(Reader *self, PyObject *args, PyObject *kw) {
    static char *names[] = {NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "", names))
        return -1;
    Py_XSETREF(self->sources, PyDict_New());
    if (!self->sources)
        return -1;
    for (int i = 0; i < READ_BUDGET; i++) {
        self->vectors[i].iov_base = self->buffers[i];
        self->vectors[i].iov_len = READ_SIZE;
    }
    return 0;
}

/* Append to *list, made on first use. */
static int append_new(PyObject **list, PyObject *item) {
    if (!item)
        return -1;
    if (!*list && !(*list = PyList_New(0))) {
        Py_DECREF(item);
        return -1;
    }
    int rc = PyList_Append(*list, item);
    Py_DECREF(item);
    return rc;
}

/* One datagram offered to the Inbound its source is armed for: 1 taken and forwarded (*logged set when its
 * log just started), 0 not taken, -1 error; *back set when taken but given back (a drop's counter, an eject). */
/* One datagram offered to the Inbound its source is filed under: 1 taken (RTP forwarded and logged), 2 taken
 * (RTCP logged), *logged set when its log just started), 0 not taken, -1 error; *back set when taken but handed back
 * (an RTP drop's counter or eject, an RTCP compound unprotected for the core now). */
static int offer(Reader *self, int i, Py_ssize_t n, double now, unsigned long long epoch, PyObject **named,
                 PyObject **back, long *forwarded, long long *bytes, int *logged) {
    const uint8_t *d = self->buffers[i];
    if (n < 8 || (d[0] & 0xC0) != 0x80)
        return 0;
    int rtcp = d[1] >= 192 && d[1] <= 223;  /* RFC 5761 section 4 */
    PyObject *key = key_of(&self->addresses[i]);
    if (!key)
        return -1;
    PyObject *entry = PyDict_GetItemWithError(self->sources, key);
    Py_DECREF(key);
    if (!entry)
        return PyErr_Occurred() ? -1 : 0;
    Inbound *inbound = (Inbound *)PyTuple_GET_ITEM(entry, 0);
    PyObject *result = rtcp ? inbound_receive_rtcp(inbound, d, n, now) : inbound_receive(inbound, d, n, now, epoch);
    if (!result)
        return -1;
    *named = PyTuple_GET_ITEM(entry, 1);
    if (result == Py_None) {
        Py_DECREF(result);
        return 0;
    }
    if (result == Py_True || PyLong_CheckExact(result)) {
        int rtp = result != Py_True;
        if (rtp) {
            *forwarded += PyLong_AsLong(result);
            *bytes += inbound->last_bytes;
        }
        *logged = PyList_GET_SIZE(inbound->log) == 1;
        Py_DECREF(result);
        return rtp ? 1 : 2;
    }
    *back = result;
    return 1;
}

static PyObject *Reader_read(Reader *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "read(fd: int, now: float, epoch: int)");
        return NULL;
    }
    int fd = PyLong_AsLong(args[0]);
    double now = PyFloat_AsDouble(args[1]);
    unsigned long long epoch = PyLong_AsUnsignedLongLong(args[2]);
    if (PyErr_Occurred())
        return NULL;
    for (int i = 0; i < READ_BUDGET; i++) {
        struct msghdr *h = &self->messages[i].msg_hdr;
        memset(h, 0, sizeof(*h));
        h->msg_name = &self->addresses[i];
        h->msg_namelen = sizeof(self->addresses[i]);
        h->msg_iov = &self->vectors[i];
        h->msg_iovlen = 1;
    }
    int count = recvmmsg(fd, self->messages, READ_BUDGET, MSG_DONTWAIT, NULL);  /* never blocks: no GIL dance */
    if (count < 0)
        count = 0;  /* nothing there (EAGAIN), or an ICMP error a UDP socket reports: nothing to hand over */
    PyObject *rest = NULL, *logged = NULL;
    long taken = 0, forwarded = 0, backs = 0;
    long long bytes = 0;
    int checked = PyDict_GET_SIZE(self->sources) > 0;
    for (int i = 0; i < count; i++) {
        Py_ssize_t n = self->messages[i].msg_len;
        if (self->messages[i].msg_hdr.msg_flags & MSG_TRUNC) {
            self->truncated++;
            continue;
        }
        if (checked) {
            PyObject *named = NULL, *back = NULL;
            int started = 0;
            int took = offer(self, i, n, now, epoch, &named, &back, &forwarded, &bytes, &started);
            if (took < 0)
                goto error;
            if (took && back) {  /* (the inbound's name, what receive returned): for the core, in order */
                backs++;
                if (append_new(&rest, Py_BuildValue("(ON)", named, back)) < 0)
                    goto error;
                continue;
            }
            if (took) {
                if (took == 2) {
                    self->rtcp++;
                    backs++;
                } else {
                    taken++;
                }
                if (started && append_new(&logged, Py_NewRef(named)) < 0)
                    goto error;
                continue;
            }
        }
        PyObject *data = PyBytes_FromStringAndSize((const char *)self->buffers[i], n);
        PyObject *address = data ? address_of(&self->addresses[i]) : NULL;
        if (!address) {
            Py_XDECREF(data);
            goto error;
        }
        if (append_new(&rest, Py_BuildValue("(NN)", data, address)) < 0)
            goto error;
    }
    return Py_BuildValue("(NNllLl)", rest ? rest : PyList_New(0), logged ? logged : PyList_New(0), taken, forwarded,
                         bytes, backs);
error:
    Py_XDECREF(rest);
    Py_XDECREF(logged);
    return NULL;
}

static PyObject *Reader_add(Reader *self, PyObject *args) {
    PyObject *address, *named;
    Inbound *inbound;
    if (!PyArg_ParseTuple(args, "OO!O", &address, &InboundType, &inbound, &named))
        return NULL;
    PyObject *key = source_key(NULL, address);
    if (!key)
        return NULL;
    PyObject *entry = Py_BuildValue("(OO)", (PyObject *)inbound, named);
    int rc = entry ? PyDict_SetItem(self->sources, key, entry) : -1;
    Py_DECREF(key);
    Py_XDECREF(entry);
    if (rc < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *Reader_remove(Reader *self, PyObject *address) {
    PyObject *key = source_key(NULL, address);
    if (!key && PyErr_ExceptionMatches(PyExc_ValueError)) {  /* never added (add refused it) */
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    if (!key)
        return NULL;
    int rc = PyDict_Contains(self->sources, key);
    if (rc > 0)
        rc = PyDict_DelItem(self->sources, key);
    Py_DECREF(key);
    if (rc < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *Reader_len(Reader *self) { return PyLong_FromSsize_t(PyDict_GET_SIZE(self->sources)); }

static PyMethodDef Reader_methods[] = {
    {"read", (PyCFunction)(void (*)(void))Reader_read, METH_FASTCALL,
     "read(fd, now, epoch) -> (rest, logged, taken, forwarded, bytes, other): one recvmmsg of up to 32"
     " datagrams; taken: RTP packets forwarded and logged; other: RTCP compounds logged and datagrams handed"
     " back; rest: [(data, (host, port))] and [(name, what receive or receive_rtcp returned)] (handed back)"
     " in order; logged: the names whose log this call started."},
    {"add", (PyCFunction)Reader_add, METH_VARARGS,
     "add(address, inbound, name): offer datagrams from address to inbound (name: what read() returns for it)."},
    {"remove", (PyCFunction)Reader_remove, METH_O, "remove(address): no more."},
    {"sources", (PyCFunction)Reader_len, METH_NOARGS, "How many addresses are offered to an inbound."},
    {NULL},
};

static PyMemberDef Reader_members[] = {
    {"truncated", T_LONGLONG, offsetof(Reader, truncated), READONLY,
     "Datagrams dropped for being longer than 2,048 bytes."},
    {"rtcp", T_LONGLONG, offsetof(Reader, rtcp), READONLY, "RTCP compounds taken and logged for the core."},
    {NULL},
};

static PyTypeObject ReaderType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "netcore.sfu._forward.Reader",
    .tp_basicsize = sizeof(Reader),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Reader_init,
    .tp_dealloc = (destructor)Reader_dealloc,
    .tp_methods = Reader_methods,
    .tp_members = Reader_members,
    .tp_doc = "A media socket's reading, armed sources offered to their Inbound first: Reader().",
};

/* ------------------------------------------------------------------- module */

static PyMethodDef module_methods[] = {
    {"source_key", (PyCFunction)source_key, METH_O, "The key a Reader files (host, port) under."},
    {NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "netcore.sfu._forward",
    "The call server's compiled forwarding path (see netcore/sfu/fastpath.py).", -1, module_methods,
};

PyMODINIT_FUNC PyInit__forward(void) {
    PyTypeObject *types[] = {&OutputType, &SubscriberType, &TrackType, &GroupType, &InboundType, &ReaderType};
    const char *names[] = {"Output", "Subscriber", "Track", "Group", "Inbound", "Reader"};
    PyObject *m = PyModule_Create(&module);
    if (!m)
        return NULL;
    for (int i = 0; i < 6; i++) {
        if (PyType_Ready(types[i]) < 0 || PyModule_AddObjectRef(m, names[i], (PyObject *)types[i]) < 0) {
            Py_DECREF(m);
            return NULL;
        }
    }
    return m;
}

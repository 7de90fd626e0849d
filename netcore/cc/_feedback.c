/*
 * The send-side estimator's per-packet feedback accounting, compiled: the
 * same as netcore/cc/accounting.py's FeedbackAccounting, operation for
 * operation on doubles in the same order, so the same decisions to the bit
 * (a property test runs both on the same inputs and compares their whole
 * state after every call).
 *
 * What it keeps: the history of sent packets by transport-wide sequence
 * number (16 bits; in insertion order, the oldest out first past HISTORY,
 * as the Python dict), the acknowledged rate's window of arrivals
 * (netcore.cc.loss.AckedBitrate), the inter-arrival groups, the trendline
 * and the over-use detector (netcore.cc.delay). What it decides nothing
 * about: the rate controls (AIMD, the loss-based bound) and probes, which
 * stay in the Python estimator; probe packets reported received are handed
 * back to it.
 *
 * No clock: every time comes with the call (sans-IO).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <stdint.h>
#include <string.h>

#define SEQS 65536
#define NONE (-1)

typedef struct {
    double send_time;
    long long size;
    long long probe_cluster;
    int32_t prev, next;         /* insertion order among the present entries; next links the free ones */
    uint16_t seq;
    char has_probe, reported_lost;
} Entry;

typedef struct {
    double first_send, last_send, last_arrival;
    long long size;
} Group;

typedef struct {
    double arrival;
    long long size;
} Sample;

typedef struct {
    PyObject_HEAD
    /* the sent history: a slot per remembered packet, found by its number through index (valid where the
     * number's bit in present is set); slots are reused, and the pool grows only to the most packets
     * remembered at once (a few hundred in a call: the history is what is not yet reported) */
    uint16_t *index;
    uint8_t *present;
    Entry *entries;
    int32_t pool_size, pool_used, free_slots;
    int32_t head, tail;
    Py_ssize_t count, history;
    /* the acknowledged rate (AckedBitrate) */
    double acked_window;
    Sample *samples;
    Py_ssize_t samples_start, samples_len, samples_cap;
    long long acked_bytes;
    /* inter-arrival groups */
    double burst;
    Group current, previous;
    char has_current, has_previous;
    /* the trendline */
    int window;
    double smoothing, gain;
    long long max_deltas, deltas;
    char has_first_arrival;
    double first_arrival, accumulated, smoothed, trend;
    double *points_x, *points_y;
    int points_start, points_len;
    /* the over-use detector */
    double threshold, k_up, k_down, overuse_time;
    int state;                  /* index into usages: 0 NORMAL, 1 UNDERUSE, 2 OVERUSE */
    char has_over_since, has_last_update;
    double over_since, previous_trend, last_update;
    long long over_count;
    PyObject *usages;           /* the three BandwidthUsage members, in that order */
} Accounting;

enum { NORMAL, UNDERUSE, OVERUSE };

/* CPython's float ** 2 for a finite double: libm's pow of the magnitude (float_pow), kept from being
 * turned into x * x by the compiler so that the result is libm's, as in Python. */
static double (*volatile pow_fn)(double, double) = pow;

static double py_max(double a, double b) { return b > a ? b : a; }  /* max(a, b): a unless b is larger */
static double py_min(double a, double b) { return b < a ? b : a; }  /* min(a, b): a unless b is smaller */

/* -- the history ------------------------------------------------------------------- */

static int is_present(Accounting *self, int32_t key) {
    return self->present[key >> 3] & (1 << (key & 7));
}

/* The slot of a packet no longer remembered goes back to the free list. */
static void history_unlink(Accounting *self, int32_t slot) {
    Entry *e = &self->entries[slot];
    if (e->prev != NONE) self->entries[e->prev].next = e->next; else self->head = e->next;
    if (e->next != NONE) self->entries[e->next].prev = e->prev; else self->tail = e->prev;
    self->present[e->seq >> 3] &= (uint8_t)~(1 << (e->seq & 7));
    e->next = self->free_slots;
    self->free_slots = slot;
    self->count--;
}

static int32_t slot_new(Accounting *self) {
    if (self->free_slots != NONE) {
        int32_t slot = self->free_slots;
        self->free_slots = self->entries[slot].next;
        return slot;
    }
    if (self->pool_used == self->pool_size) {
        int32_t size = self->pool_size ? self->pool_size * 2 : 256;
        Entry *grown = PyMem_Realloc(self->entries, sizeof(Entry) * size);
        if (grown == NULL) {
            PyErr_NoMemory();
            return NONE;
        }
        self->entries = grown;
        self->pool_size = size;
    }
    return self->pool_used++;
}

/* history[key] = _Sent(...): a key already present keeps its place, as in a dict. */
static int history_set(Accounting *self, int32_t key, double send_time, long long size, int has_probe,
                       long long cluster) {
    int32_t slot;
    if (is_present(self, key)) {
        slot = self->index[key];
    } else {
        if ((slot = slot_new(self)) == NONE) return -1;
        Entry *e = &self->entries[slot];
        e->seq = (uint16_t)key;
        e->prev = self->tail;
        e->next = NONE;
        if (self->tail != NONE) self->entries[self->tail].next = slot; else self->head = slot;
        self->tail = slot;
        self->index[key] = (uint16_t)slot;
        self->present[key >> 3] |= (uint8_t)(1 << (key & 7));
        self->count++;
    }
    Entry *e = &self->entries[slot];
    e->send_time = send_time;
    e->size = size;
    e->has_probe = (char)has_probe;
    e->probe_cluster = cluster;
    e->reported_lost = 0;
    return 0;
}

static int seq_key(PyObject *seq, int32_t *key) {
    long long v = PyLong_AsLongLong(seq);
    if (v == -1 && PyErr_Occurred()) {
        /* a number past 64 bits: its low 16 bits, as Python's & 0xFFFF */
        PyErr_Clear();
        PyObject *mask = PyLong_FromLong(0xFFFF);
        if (mask == NULL) return -1;
        PyObject *low = PyNumber_And(seq, mask);
        Py_DECREF(mask);
        if (low == NULL) return -1;
        v = PyLong_AsLongLong(low);
        Py_DECREF(low);
        if (v == -1 && PyErr_Occurred()) return -1;
    }
    *key = (int32_t)(v & 0xFFFF);
    return 0;
}

/* -- the acknowledged rate ---------------------------------------------------------- */

static int acked_add(Accounting *self, double arrival, long long size) {
    if (self->samples_len == self->samples_cap) {
        Py_ssize_t cap = self->samples_cap ? self->samples_cap * 2 : 64;
        Sample *grown = PyMem_Malloc(sizeof(Sample) * cap);
        if (grown == NULL) { PyErr_NoMemory(); return -1; }
        for (Py_ssize_t i = 0; i < self->samples_len; i++)
            grown[i] = self->samples[(self->samples_start + i) % self->samples_cap];
        PyMem_Free(self->samples);
        self->samples = grown;
        self->samples_cap = cap;
        self->samples_start = 0;
    }
    self->samples[(self->samples_start + self->samples_len) % self->samples_cap] = (Sample){arrival, size};
    self->samples_len++;
    self->acked_bytes += size;
    while (self->samples_len && self->samples[self->samples_start].arrival < arrival - self->acked_window) {
        self->acked_bytes -= self->samples[self->samples_start].size;
        self->samples_start = (self->samples_start + 1) % self->samples_cap;
        self->samples_len--;
    }
    return 0;
}

static PyObject *acked_rate(Accounting *self) {
    if (self->samples_len < 2) Py_RETURN_NONE;
    Sample first = self->samples[self->samples_start];
    Sample last = self->samples[(self->samples_start + self->samples_len - 1) % self->samples_cap];
    double span = last.arrival - first.arrival;
    if (span < self->acked_window / 2) Py_RETURN_NONE;
    return PyFloat_FromDouble((double)((self->acked_bytes - first.size) * 8) / span);
}

/* -- the delay chain (netcore.cc.delay) --------------------------------------------- */

/* InterArrival.add: 1 and the deltas when the packet starts a new group after two. */
static int inter_arrival_add(Accounting *self, double send, double arrival, long long size, double *send_delta,
                             double *arrival_delta) {
    Group *current = &self->current;
    if (!self->has_current) {
        *current = (Group){send, send, arrival, size};
        self->has_current = 1;
        return 0;
    }
    if (send < current->first_send) return 0;
    int same;
    if (send - current->first_send <= self->burst) {
        same = 1;
    } else {
        double delta = arrival - current->last_arrival;
        same = delta < 0 || (delta - (send - current->last_send) < 0 && delta <= self->burst);
    }
    if (same) {
        current->last_send = py_max(current->last_send, send);
        current->last_arrival = py_max(current->last_arrival, arrival);
        current->size += size;
        return 0;
    }
    int result = 0;
    if (self->has_previous) {
        *send_delta = current->last_send - self->previous.last_send;
        *arrival_delta = current->last_arrival - self->previous.last_arrival;
        result = 1;
    }
    self->previous = *current;
    self->has_previous = 1;
    *current = (Group){send, send, arrival, size};
    return result;
}

/* _slope: 1 and the least-squares slope, 0 when every x is the same. */
static int slope(Accounting *self, double *out) {
    int n = self->points_len;
    double sum_x = 0.0, sum_y = 0.0;
    for (int i = 0; i < n; i++) {
        int j = (self->points_start + i) % self->window;
        sum_x += self->points_x[j];
        sum_y += self->points_y[j];
    }
    double mean_x = sum_x / n, mean_y = sum_y / n;
    double numerator = 0.0, denominator = 0.0;
    for (int i = 0; i < n; i++) {
        int j = (self->points_start + i) % self->window;
        double dx = self->points_x[j] - mean_x;
        numerator += dx * (self->points_y[j] - mean_y);
        denominator += dx == 0.0 ? 0.0 : pow_fn(fabs(dx), 2.0);
    }
    if (denominator == 0.0) return 0;
    *out = numerator / denominator;
    return 1;
}

static void trendline_update(Accounting *self, double send_delta, double arrival_delta, double arrival) {
    if (!self->has_first_arrival) {
        self->first_arrival = arrival;
        self->has_first_arrival = 1;
    }
    self->deltas = self->deltas + 1 < self->max_deltas ? self->deltas + 1 : self->max_deltas;
    self->accumulated += arrival_delta - send_delta;
    self->smoothed = self->smoothing * self->smoothed + (1 - self->smoothing) * self->accumulated;
    /* deque(maxlen=window).append */
    if (self->points_len == self->window) {
        self->points_start = (self->points_start + 1) % self->window;
        self->points_len--;
    }
    int j = (self->points_start + self->points_len) % self->window;
    self->points_x[j] = arrival - self->first_arrival;
    self->points_y[j] = self->smoothed;
    self->points_len++;
    double s;
    if (self->points_len == self->window && slope(self, &s) && s != 0.0) self->trend = s;  /* slope or trend */
}

static void detector_adapt(Accounting *self, double modified_trend, double now) {
    if (!self->has_last_update) {
        self->last_update = now;
        self->has_last_update = 1;
    }
    double magnitude = fabs(modified_trend);
    if (magnitude > self->threshold + 15.0) {
        self->last_update = now;  /* an outlier: do not chase it */
        return;
    }
    double k = magnitude < self->threshold ? self->k_down : self->k_up;
    double elapsed = py_min(now - self->last_update, 0.1);
    self->threshold += k * (magnitude - self->threshold) * elapsed * 1000.0;
    self->threshold = py_min(py_max(self->threshold, 6.0), 600.0);
    self->last_update = now;
}

static void detector_detect(Accounting *self, double modified_trend, double send_delta, double now) {
    if (modified_trend > self->threshold) {
        if (!self->has_over_since) {
            self->over_since = now - send_delta / 2;
            self->has_over_since = 1;
        }
        self->over_count++;
        if (now - self->over_since >= self->overuse_time && self->over_count > 1
                && modified_trend >= self->previous_trend) {
            self->has_over_since = 0;
            self->over_count = 0;
            self->state = OVERUSE;
        }
    } else if (modified_trend < -self->threshold) {
        self->has_over_since = 0;
        self->over_count = 0;
        self->state = UNDERUSE;
    } else {
        self->has_over_since = 0;
        self->over_count = 0;
        self->state = NORMAL;
    }
    self->previous_trend = modified_trend;
    detector_adapt(self, modified_trend, now);
}

/* -- the type ------------------------------------------------------------------------ */

static int Accounting_init(Accounting *self, PyObject *args, PyObject *kwds) {
    double acked_window, burst, smoothing, gain, threshold, k_up, k_down, overuse_time;
    Py_ssize_t history;
    int window;
    long long max_deltas;
    PyObject *usages;
    if (!PyArg_ParseTuple(args, "nddiddLddddO!", &history, &acked_window, &burst, &window, &smoothing, &gain,
                          &max_deltas, &threshold, &k_up, &k_down, &overuse_time, &PyTuple_Type, &usages))
        return -1;
    if (PyTuple_GET_SIZE(usages) != 3 || window < 1 || history < 0) {
        PyErr_SetString(PyExc_ValueError, "three usages, a window of at least one point");
        return -1;
    }
    if (self->index != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "already initialised");
        return -1;
    }
    self->index = PyMem_Calloc(SEQS, sizeof(uint16_t));
    self->present = PyMem_Calloc(SEQS / 8, 1);
    self->points_x = PyMem_Calloc(window, sizeof(double));
    self->points_y = PyMem_Calloc(window, sizeof(double));
    if (self->index == NULL || self->present == NULL || self->points_x == NULL || self->points_y == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    self->head = self->tail = self->free_slots = NONE;
    self->history = history;
    self->acked_window = acked_window;
    self->burst = burst;
    self->window = window;
    self->smoothing = smoothing;
    self->gain = gain;
    self->max_deltas = max_deltas;
    self->threshold = threshold;
    self->k_up = k_up;
    self->k_down = k_down;
    self->overuse_time = overuse_time;
    self->state = NORMAL;
    Py_INCREF(usages);
    self->usages = usages;
    return 0;
}

static void Accounting_dealloc(Accounting *self) {
    PyMem_Free(self->index);
    PyMem_Free(self->present);
    PyMem_Free(self->entries);
    PyMem_Free(self->samples);
    PyMem_Free(self->points_x);
    PyMem_Free(self->points_y);
    Py_XDECREF(self->usages);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int ready(Accounting *self) {
    if (self->index == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Accounting not initialised");
        return 0;
    }
    return 1;
}

static PyObject *Accounting_sent(Accounting *self, PyObject *const *args, Py_ssize_t nargs) {
    if (!ready(self)) return NULL;
    if (nargs < 3 || nargs > 4) {
        PyErr_SetString(PyExc_TypeError, "sent(transport_seq, size, now, probe_cluster=None)");
        return NULL;
    }
    int32_t key;
    if (seq_key(args[0], &key) < 0) return NULL;
    long long size = PyLong_AsLongLong(args[1]);
    if (size == -1 && PyErr_Occurred()) return NULL;
    double now = PyFloat_AsDouble(args[2]);
    if (now == -1.0 && PyErr_Occurred()) return NULL;
    int has_probe = nargs == 4 && args[3] != Py_None;
    long long cluster = 0;
    if (has_probe && (cluster = PyLong_AsLongLong(args[3])) == -1 && PyErr_Occurred()) return NULL;
    if (history_set(self, key, now, size, has_probe, cluster) < 0) return NULL;
    if (self->count > self->history) history_unlink(self, self->head);
    Py_RETURN_NONE;
}

static PyObject *Accounting_sent_many(Accounting *self, PyObject *sent) {
    if (!ready(self)) return NULL;
    PyObject *iterator = PyObject_GetIter(sent);
    if (iterator == NULL) return NULL;
    long long total = 0;
    PyObject *item;
    while ((item = PyIter_Next(iterator)) != NULL) {
        PyObject *seq, *size_obj, *at_obj;
        if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 3) {
            Py_DECREF(item);
            Py_DECREF(iterator);
            PyErr_SetString(PyExc_TypeError, "(transport_seq, size, send time) tuples");
            return NULL;
        }
        seq = PyTuple_GET_ITEM(item, 0);
        size_obj = PyTuple_GET_ITEM(item, 1);
        at_obj = PyTuple_GET_ITEM(item, 2);
        int32_t key;
        long long size;
        double at;
        if (seq_key(seq, &key) < 0 || ((size = PyLong_AsLongLong(size_obj)) == -1 && PyErr_Occurred())
                || ((at = PyFloat_AsDouble(at_obj)) == -1.0 && PyErr_Occurred())) {
            Py_DECREF(item);
            Py_DECREF(iterator);
            return NULL;
        }
        Py_DECREF(item);
        if (history_set(self, key, at, size, 0, 0) < 0) {
            Py_DECREF(iterator);
            return NULL;
        }
        total += size;
    }
    Py_DECREF(iterator);
    if (PyErr_Occurred()) return NULL;
    while (self->count > self->history) history_unlink(self, self->head);
    return PyLong_FromLongLong(total);
}

/* One reported packet, as FeedbackAccounting.feedback's loop body: counted, its arrival fed to the acknowledged
 * rate and the delay chain, a probe's handed back in *probes. */
typedef struct {
    long long received, lost, unknown;
    PyObject *probes;
} Tally;

static int account(Accounting *self, int32_t key, int has_arrival, double arrival, double now, Tally *tally) {
    if (!is_present(self, key)) {
        tally->unknown++;
        return 0;
    }
    int32_t slot = self->index[key];
    Entry *e = &self->entries[slot];
    if (!has_arrival) {
        if (!e->reported_lost) {
            e->reported_lost = 1;
            tally->lost++;
        }
        return 0;
    }
    Entry packet = *e;
    history_unlink(self, slot);
    if (packet.reported_lost) tally->lost--;  /* reported lost before, received after all (a late report) */
    tally->received++;
    if (acked_add(self, arrival, packet.size) < 0) return -1;
    if (packet.has_probe) {
        if (tally->probes == NULL && (tally->probes = PyList_New(0)) == NULL) return -1;
        PyObject *probe = Py_BuildValue("(LddL)", packet.probe_cluster, packet.send_time, arrival, packet.size);
        if (probe == NULL || PyList_Append(tally->probes, probe) < 0) {
            Py_XDECREF(probe);
            return -1;
        }
        Py_DECREF(probe);
    }
    double send_delta, arrival_delta;
    if (inter_arrival_add(self, packet.send_time, arrival, packet.size, &send_delta, &arrival_delta)) {
        trendline_update(self, send_delta, arrival_delta, arrival);
        detector_detect(self, (double)self->deltas * self->trend * self->gain, send_delta, now);
    }
    return 0;
}

static PyObject *tally_result(Tally *tally) {
    return Py_BuildValue("(LLLN)", tally->received, tally->lost, tally->unknown,
                         tally->probes != NULL ? tally->probes : Py_NewRef(Py_None));
}

static PyObject *Accounting_feedback(Accounting *self, PyObject *const *args, Py_ssize_t nargs) {
    if (!ready(self)) return NULL;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "feedback(arrivals, now)");
        return NULL;
    }
    double now = PyFloat_AsDouble(args[1]);
    if (now == -1.0 && PyErr_Occurred()) return NULL;
    PyObject *arrivals = PySequence_Fast(args[0], "arrivals: a sequence of (seq, arrival or None)");
    if (arrivals == NULL) return NULL;
    Tally tally = {0, 0, 0, NULL};
    Py_ssize_t n = PySequence_Fast_GET_SIZE(arrivals);
    PyObject **items = PySequence_Fast_ITEMS(arrivals);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = items[i];
        if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2) {
            PyErr_SetString(PyExc_TypeError, "arrivals: (seq, arrival or None) tuples");
            goto error;
        }
        int32_t key;
        if (seq_key(PyTuple_GET_ITEM(item, 0), &key) < 0) goto error;
        PyObject *arrival_obj = PyTuple_GET_ITEM(item, 1);
        double arrival = 0.0;
        int has_arrival = arrival_obj != Py_None;
        if (has_arrival && is_present(self, key)) {
            arrival = PyFloat_AsDouble(arrival_obj);
            if (arrival == -1.0 && PyErr_Occurred()) goto error;
        }
        if (account(self, key, has_arrival, arrival, now, &tally) < 0) goto error;
    }
    Py_DECREF(arrivals);
    return tally_result(&tally);
error:
    Py_DECREF(arrivals);
    Py_XDECREF(tally.probes);
    return NULL;
}

#define TWCC_TICK 0.00025          /* seconds per delta tick (netcore.rtp.twcc.TICK) */
#define TWCC_REFERENCE_UNIT 0.064  /* seconds per reference time unit (netcore.rtp.twcc.REFERENCE_UNIT) */

/* feedback(arrival_times(packet), now) for a parsed transport-wide feedback packet, without the list between:
 * the same arrivals, computed as netcore.rtp.twcc.arrival_times computes them (the signed 24-bit reference
 * time in 64 ms units, then each received packet's delta in 250 us ticks added in order), the same accounting. */
static PyObject *Accounting_feedback_twcc(Accounting *self, PyObject *const *args, Py_ssize_t nargs) {
    if (!ready(self)) return NULL;
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "feedback_twcc(base_sequence, reference_time, statuses, deltas, now)");
        return NULL;
    }
    long long base = PyLong_AsLongLong(args[0]);
    if (base == -1 && PyErr_Occurred()) return NULL;
    long long ref = PyLong_AsLongLong(args[1]);
    if (ref == -1 && PyErr_Occurred()) return NULL;
    double now = PyFloat_AsDouble(args[4]);
    if (now == -1.0 && PyErr_Occurred()) return NULL;
    PyObject *statuses = PySequence_Fast(args[2], "statuses: a sequence of ints");
    if (statuses == NULL) return NULL;
    PyObject *deltas = PySequence_Fast(args[3], "deltas: a sequence of ints");
    if (deltas == NULL) {
        Py_DECREF(statuses);
        return NULL;
    }
    if (ref & 0x800000) ref -= 0x1000000;  /* section 3.1: a signed 24-bit value */
    double t = (double)ref * TWCC_REFERENCE_UNIT;
    Tally tally = {0, 0, 0, NULL};
    Py_ssize_t n = PySequence_Fast_GET_SIZE(statuses), next_delta = 0;
    Py_ssize_t n_deltas = PySequence_Fast_GET_SIZE(deltas);
    PyObject **status_items = PySequence_Fast_ITEMS(statuses), **delta_items = PySequence_Fast_ITEMS(deltas);
    for (Py_ssize_t i = 0; i < n; i++) {
        long status = PyLong_AsLong(status_items[i]);
        if (status == -1 && PyErr_Occurred()) goto error;
        int32_t key = (int32_t)((base + i) & 0xFFFF);
        if (status == 0) {
            if (account(self, key, 0, 0.0, now, &tally) < 0) goto error;
            continue;
        }
        if (next_delta >= n_deltas) {
            PyErr_SetString(PyExc_ValueError, "fewer deltas than received packets");
            goto error;
        }
        long long delta = PyLong_AsLongLong(delta_items[next_delta++]);
        if (delta == -1 && PyErr_Occurred()) goto error;
        t += (double)delta * TWCC_TICK;
        if (account(self, key, 1, t, now, &tally) < 0) goto error;
    }
    Py_DECREF(statuses);
    Py_DECREF(deltas);
    return tally_result(&tally);
error:
    Py_DECREF(statuses);
    Py_DECREF(deltas);
    Py_XDECREF(tally.probes);
    return NULL;
}

static PyObject *optional_float(char present, double value) {
    if (!present) Py_RETURN_NONE;
    return PyFloat_FromDouble(value);
}

static PyObject *Accounting_history(Accounting *self, PyObject *unused) {
    if (!ready(self)) return NULL;
    PyObject *out = PyList_New(0);
    if (out == NULL) return NULL;
    for (int32_t slot = self->head; slot != NONE; slot = self->entries[slot].next) {
        Entry *e = &self->entries[slot];
        PyObject *cluster = e->has_probe ? PyLong_FromLongLong(e->probe_cluster) : Py_NewRef(Py_None);
        PyObject *row = cluster ? Py_BuildValue("(idLN)", (int)e->seq, e->send_time, e->size, cluster) : NULL;
        if (row == NULL || PyList_Append(out, row) < 0) {
            Py_XDECREF(row);
            Py_DECREF(out);
            return NULL;
        }
        Py_DECREF(row);
    }
    return out;
}

static PyObject *Accounting_state(Accounting *self, PyObject *unused) {
    if (!ready(self)) return NULL;
    PyObject *history = Accounting_history(self, NULL);
    PyObject *lost = PyList_New(0);
    PyObject *points = PyList_New(0);
    if (history == NULL || lost == NULL || points == NULL) goto error;
    for (int32_t slot = self->head; slot != NONE; slot = self->entries[slot].next)
        if (PyList_Append(lost, self->entries[slot].reported_lost ? Py_True : Py_False) < 0) goto error;
    for (int i = 0; i < self->points_len; i++) {
        int j = (self->points_start + i) % self->window;
        PyObject *point = Py_BuildValue("(dd)", self->points_x[j], self->points_y[j]);
        if (point == NULL || PyList_Append(points, point) < 0) {
            Py_XDECREF(point);
            goto error;
        }
        Py_DECREF(point);
    }
    return Py_BuildValue("(NNONdLddNdNLdN)", history, lost, PyTuple_GET_ITEM(self->usages, self->state),
                         acked_rate(self), self->trend, self->deltas, self->accumulated, self->smoothed, points,
                         self->threshold, optional_float(self->has_over_since, self->over_since), self->over_count,
                         self->previous_trend, optional_float(self->has_last_update, self->last_update));
error:
    Py_XDECREF(history);
    Py_XDECREF(lost);
    Py_XDECREF(points);
    return NULL;
}

static PyObject *Accounting_get_usage(Accounting *self, void *closure) {
    if (!ready(self)) return NULL;
    return Py_NewRef(PyTuple_GET_ITEM(self->usages, self->state));
}

static PyObject *Accounting_get_acked_rate(Accounting *self, void *closure) {
    return acked_rate(self);
}

static PyObject *Accounting_get_slots(Accounting *self, void *closure) {
    return PyLong_FromLong(self->pool_size);
}

static Py_ssize_t Accounting_len(Accounting *self) {
    return self->count;
}

static PyMethodDef Accounting_methods[] = {
    {"sent", (PyCFunction)(void (*)(void))Accounting_sent, METH_FASTCALL,
     "sent(transport_seq, size, now, probe_cluster=None): remember a sent packet"},
    {"sent_many", (PyCFunction)Accounting_sent_many, METH_O,
     "sent_many(iterable of (transport_seq, size, send time)): packets outside probes; their bytes"},
    {"feedback", (PyCFunction)(void (*)(void))Accounting_feedback, METH_FASTCALL,
     "feedback(arrivals, now) -> (received, lost, unknown, probe packets received or None)"},
    {"feedback_twcc", (PyCFunction)(void (*)(void))Accounting_feedback_twcc, METH_FASTCALL,
     "feedback_twcc(base_sequence, reference_time, statuses, deltas, now): feedback() of the packet's arrival times"},
    {"history", (PyCFunction)Accounting_history, METH_NOARGS,
     "(seq, send time, size, probe cluster) of every remembered packet, oldest first"},
    {"state", (PyCFunction)Accounting_state, METH_NOARGS, "everything the next decisions depend on"},
    {NULL},
};

static PyGetSetDef Accounting_getset[] = {
    {"usage", (getter)Accounting_get_usage, NULL, "the over-use detector's state", NULL},
    {"acked_rate", (getter)Accounting_get_acked_rate, NULL, "bits per second acknowledged, or None", NULL},
    {"slots", (getter)Accounting_get_slots, NULL, "the history's slots allocated (its memory)", NULL},
    {NULL},
};

static PySequenceMethods Accounting_sequence = {.sq_length = (lenfunc)Accounting_len};

static PyTypeObject AccountingType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "netcore.cc._feedback.Accounting",
    .tp_doc = "The sent history and the delay chain fed from transport-wide feedback (see accounting.py)",
    .tp_basicsize = sizeof(Accounting),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Accounting_init,
    .tp_dealloc = (destructor)Accounting_dealloc,
    .tp_methods = Accounting_methods,
    .tp_getset = Accounting_getset,
    .tp_as_sequence = &Accounting_sequence,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "netcore.cc._feedback",
    "The send-side estimator's per-packet feedback accounting, compiled (netcore/cc/accounting.py)", -1, NULL,
};

PyMODINIT_FUNC PyInit__feedback(void) {
    if (PyType_Ready(&AccountingType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    if (PyModule_AddObjectRef(m, "Accounting", (PyObject *)&AccountingType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}

/*
 * The mechanical part of the STUN codec, compiled: HMAC under a key used
 * again and again, checking MESSAGE-INTEGRITY(-SHA256) and FINGERPRINT of a
 * parsed message, and serializing a message with its signatures
 * (RFC 8489 sections 5, 14.5-14.7).
 *
 * netcore/stun/message.py keeps everything that decides: where the
 * attributes are and which count (its layout walk), which key signs or
 * checks what, what a message carries. This module only does the byte work
 * those decisions name, the work that was most of a TURN server's cost per
 * request in the interpreter (a slice, a header pack and six hash calls per
 * HMAC; a Python loop per attribute to encode). The Python code it stands
 * in for stays (netcore/stun/compiled.py switches), and the tests run both
 * and compare bytes.
 *
 * KeyedMac holds HMAC's inner and outer hash states after the padded key
 * (RFC 2104), so a message costs the two hash passes over its own bytes
 * only. The hashes are OpenSSL's (SHA-1 and SHA-256, the only two STUN
 * uses), through the plain context structs: copying one is a memcpy.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <zlib.h>

#define MAGIC_COOKIE 0x2112A442u
#define FINGERPRINT_XOR 0x5354554Eu
#define ATTR_MI 0x0008
#define ATTR_MI256 0x001C
#define ATTR_FP 0x8028
#define HEADER_LENGTH 20
#define BLOCK 64 /* SHA-1 and SHA-256 block size */

/* The value shapes an attribute codec can declare (attributes.SHAPES, by decoder or encoder): a decoder's result
 * for a value of the one length its shape says, and a SHAPE_U32 encoder's bytes for an int that fits, which this
 * module then reads or writes itself. Anything else goes to the codec's own function. */
enum { SHAPE_U32 = 1, SHAPE_U16_OF_4 = 2, SHAPE_U8_OF_4 = 3, SHAPE_XOR_ADDRESS = 4 };

/* -- KeyedMac ------------------------------------------------------------------------ */

typedef struct {
    PyObject_HEAD
    int sha256;
    SHA_CTX inner1, outer1;
    SHA256_CTX inner256, outer256;
} KeyedMac;

static int keyed_mac_init(KeyedMac *self, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"key", "sha256", NULL};
    Py_buffer key;
    int sha256 = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "y*|p", names, &key, &sha256))
        return -1;
    unsigned char block[BLOCK], pad[BLOCK];
    memset(block, 0, BLOCK);
    if (key.len > BLOCK) { /* RFC 2104: a long key is hashed first */
        if (sha256)
            SHA256(key.buf, (size_t)key.len, block);
        else
            SHA1(key.buf, (size_t)key.len, block);
    } else {
        memcpy(block, key.buf, (size_t)key.len);
    }
    PyBuffer_Release(&key);
    self->sha256 = sha256;
    for (int i = 0; i < BLOCK; i++)
        pad[i] = block[i] ^ 0x36;
    if (sha256) {
        SHA256_Init(&self->inner256);
        SHA256_Update(&self->inner256, pad, BLOCK);
    } else {
        SHA1_Init(&self->inner1);
        SHA1_Update(&self->inner1, pad, BLOCK);
    }
    for (int i = 0; i < BLOCK; i++)
        pad[i] = block[i] ^ 0x5C;
    if (sha256) {
        SHA256_Init(&self->outer256);
        SHA256_Update(&self->outer256, pad, BLOCK);
    } else {
        SHA1_Init(&self->outer1);
        SHA1_Update(&self->outer1, pad, BLOCK);
    }
    OPENSSL_cleanse(block, BLOCK);
    OPENSSL_cleanse(pad, BLOCK);
    return 0;
}

/* One HMAC over the concatenation of up to three pieces; the digest into out, its size returned. */
static int keyed_mac_run(const KeyedMac *mac, const unsigned char *a, size_t a_len, const unsigned char *b,
                         size_t b_len, const unsigned char *c, size_t c_len, unsigned char *out)
{
    if (mac->sha256) {
        SHA256_CTX ctx = mac->inner256;
        unsigned char inner[SHA256_DIGEST_LENGTH];
        SHA256_Update(&ctx, a, a_len);
        if (b_len) SHA256_Update(&ctx, b, b_len);
        if (c_len) SHA256_Update(&ctx, c, c_len);
        SHA256_Final(inner, &ctx);
        ctx = mac->outer256;
        SHA256_Update(&ctx, inner, sizeof inner);
        SHA256_Final(out, &ctx);
        return SHA256_DIGEST_LENGTH;
    }
    SHA_CTX ctx = mac->inner1;
    unsigned char inner[SHA_DIGEST_LENGTH];
    SHA1_Update(&ctx, a, a_len);
    if (b_len) SHA1_Update(&ctx, b, b_len);
    if (c_len) SHA1_Update(&ctx, c, c_len);
    SHA1_Final(inner, &ctx);
    ctx = mac->outer1;
    SHA1_Update(&ctx, inner, sizeof inner);
    SHA1_Final(out, &ctx);
    return SHA_DIGEST_LENGTH;
}

static PyObject *keyed_mac_digest(KeyedMac *self, PyObject *arg)
{
    Py_buffer data;
    if (PyObject_GetBuffer(arg, &data, PyBUF_SIMPLE) < 0)
        return NULL;
    unsigned char out[SHA256_DIGEST_LENGTH];
    int size = keyed_mac_run(self, data.buf, (size_t)data.len, NULL, 0, NULL, 0, out);
    PyBuffer_Release(&data);
    return PyBytes_FromStringAndSize((const char *)out, size);
}

static PyMethodDef keyed_mac_methods[] = {
    {"digest", (PyCFunction)keyed_mac_digest, METH_O, "digest(data) -> bytes: HMAC of data under the key."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject KeyedMacType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "netcore.stun._codec.KeyedMac",
    .tp_basicsize = sizeof(KeyedMac),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "KeyedMac(key, sha256=False): HMAC-SHA1 or HMAC-SHA256 states after the padded key.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)keyed_mac_init,
    .tp_methods = keyed_mac_methods,
};

/* -- checking a parsed message ------------------------------------------------------ */

/*
 * What a signature covers (sections 14.5-14.7): the message up to the
 * signature attribute at `at`, the header's length field replaced by
 * `length` when it is not -1 (it counts up to the signature's end).
 * Splits it into three pieces, so nothing is copied.
 */
typedef struct {
    const unsigned char *a, *b, *c;
    size_t a_len, b_len, c_len;
    unsigned char field[2];
} Covered;

static int covered(Covered *out, const Py_buffer *raw, Py_ssize_t at, long length)
{
    if (at < 4 || at > raw->len || length > 0xFFFF) {
        PyErr_SetString(PyExc_ValueError, "signature offset or length field out of range");
        return -1;
    }
    const unsigned char *data = raw->buf;
    if (length < 0) {
        out->a = data, out->a_len = (size_t)at;
        out->b = NULL, out->b_len = 0;
        out->c = NULL, out->c_len = 0;
        return 0;
    }
    out->field[0] = (unsigned char)(length >> 8);
    out->field[1] = (unsigned char)length;
    out->a = data, out->a_len = 2;
    out->b = out->field, out->b_len = 2;
    out->c = data + 4, out->c_len = (size_t)(at - 4);
    return 0;
}

/* Whether the MAC at raw[mac_start:mac_start + mac_len] is the keyed hash of what it covers (the message up to
 * `at`, the header's length field reading `length`, or the header as it is for a negative one): 1 or 0, in
 * constant time; -1 with an error set for offsets outside the message or a MAC longer than the digest. */
static int mac_matches(const KeyedMac *mac, const Py_buffer *raw, Py_ssize_t at, long length, Py_ssize_t mac_start,
                       Py_ssize_t mac_len)
{
    Covered piece;
    if (covered(&piece, raw, at, length) < 0)
        return -1;
    if (mac_start < 0 || mac_len < 0 || mac_start + mac_len > raw->len ||
        mac_len > (mac->sha256 ? SHA256_DIGEST_LENGTH : SHA_DIGEST_LENGTH)) {
        PyErr_SetString(PyExc_ValueError, "MAC value out of range");
        return -1;
    }
    unsigned char digest[SHA256_DIGEST_LENGTH];
    keyed_mac_run(mac, piece.a, piece.a_len, piece.b, piece.b_len, piece.c, piece.c_len, digest);
    return CRYPTO_memcmp(digest, (const unsigned char *)raw->buf + mac_start, (size_t)mac_len) == 0;
}

/* verify(states, key, raw, signature) -> bool: Message.check_integrity(-SHA256) in one call. `states` maps
 * the key to its KeyedMac (a KeyedStates, which makes it when missing), `signature` is the layout's
 * (at, where, length field, length) of the MAC, or None (absent, or of a length that cannot verify: False). */
static PyObject *verify(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4 || !PyBytes_CheckExact(args[2])) {
        PyErr_SetString(PyExc_TypeError, "verify(states, key, raw: bytes, signature)");
        return NULL;
    }
    PyObject *signature = args[3];
    if (signature == Py_None)
        Py_RETURN_FALSE;
    if (!PyTuple_CheckExact(signature) || PyTuple_GET_SIZE(signature) != 4 ||
        !PySlice_Check(PyTuple_GET_ITEM(signature, 1))) {
        PyErr_SetString(PyExc_TypeError, "a signature is (at, where, length field, length)");
        return NULL;
    }
    Py_ssize_t at = PyLong_AsSsize_t(PyTuple_GET_ITEM(signature, 0));
    long length = PyLong_AsLong(PyTuple_GET_ITEM(signature, 3));
    if (PyErr_Occurred())
        return NULL;
    Py_ssize_t start, stop, step;
    if (PySlice_Unpack(PyTuple_GET_ITEM(signature, 1), &start, &stop, &step) < 0)
        return NULL;
    Py_buffer raw = {.buf = PyBytes_AS_STRING(args[2]), .len = PyBytes_GET_SIZE(args[2])};
    Py_ssize_t mac_len = PySlice_AdjustIndices(raw.len, &start, &stop, step);
    PyObject *mac_obj = PyObject_GetItem(args[0], args[1]);
    if (mac_obj == NULL)
        return NULL;
    PyObject *result = NULL;
    if (!PyObject_TypeCheck(mac_obj, &KeyedMacType)) {
        PyErr_SetString(PyExc_TypeError, "states hold KeyedMac objects");
        goto done;
    }
    if (step != 1) {
        PyErr_SetString(PyExc_ValueError, "MAC value out of range");
        goto done;
    }
    int same = mac_matches((KeyedMac *)mac_obj, &raw, at, length, start, mac_len);
    if (same >= 0)
        result = PyBool_FromLong(same);
done:
    Py_DECREF(mac_obj);
    return result;
}

static uint32_t crc_of(const Covered *piece)
{
    uLong crc = crc32(0L, Z_NULL, 0);
    crc = crc32(crc, piece->a, (uInt)piece->a_len);
    if (piece->b_len) crc = crc32(crc, piece->b, (uInt)piece->b_len);
    if (piece->c_len) crc = crc32(crc, piece->c, (uInt)piece->c_len);
    return (uint32_t)crc;
}

/* Whether the FINGERPRINT at `at` is the CRC-32 of what it covers, XOR 0x5354554e (section 14.7): 1 or 0; -1
 * with an error set for offsets outside the message. */
static int fingerprint_matches(const Py_buffer *raw, Py_ssize_t at, long length)
{
    Covered piece;
    if (covered(&piece, raw, at, length) < 0)
        return -1;
    if (at + 8 > raw->len) {
        PyErr_SetString(PyExc_ValueError, "FINGERPRINT value out of range");
        return -1;
    }
    const unsigned char *value = (const unsigned char *)raw->buf + at + 4;
    uint32_t sent = (uint32_t)value[0] << 24 | (uint32_t)value[1] << 16 | (uint32_t)value[2] << 8 | value[3];
    return (crc_of(&piece) ^ FINGERPRINT_XOR) == sent;
}

static PyObject *check_fingerprint(PyObject *module, PyObject *args)
{
    Py_buffer raw;
    Py_ssize_t at;
    long length;
    if (!PyArg_ParseTuple(args, "y*nl", &raw, &at, &length))
        return NULL;
    int same = fingerprint_matches(&raw, at, length);
    PyBuffer_Release(&raw);
    return same < 0 ? NULL : PyBool_FromLong(same);
}

/* -- encoding -------------------------------------------------------------------------- */

static void put16(unsigned char *p, unsigned v) { p[0] = (unsigned char)(v >> 8), p[1] = (unsigned char)v; }

static void put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24), p[1] = (unsigned char)(v >> 16), p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static void put_header(unsigned char *p, unsigned message_type, size_t length, const unsigned char *tid)
{
    put16(p, message_type);
    put16(p + 2, (unsigned)length);
    put32(p + 4, MAGIC_COOKIE);
    memcpy(p + 8, tid, 12);
}

/* A MESSAGE-INTEGRITY(-SHA256) attribute at p over out[..p), the header's length counting to its end; past it. */
static unsigned char *append_mac(unsigned char *out, unsigned char *p, unsigned message_type, const unsigned char *tid,
                                 unsigned attr_type, const KeyedMac *mac)
{
    unsigned size = mac->sha256 ? SHA256_DIGEST_LENGTH : SHA_DIGEST_LENGTH;
    size_t done = (size_t)(p - out) - HEADER_LENGTH;
    put_header(out, message_type, done + 4 + size, tid);
    put16(p, attr_type);
    put16(p + 2, size);
    keyed_mac_run(mac, out, HEADER_LENGTH + done, NULL, 0, NULL, 0, p + 4);
    return p + 4 + size;
}

static int is_signature(long type) { return type == ATTR_MI || type == ATTR_MI256 || type == ATTR_FP; }

/*
 * encode(message_type, transaction_id, attributes, pads, mi, mi256, fingerprint) -> bytes | None
 *
 * What Message.encode writes: the attributes in order, signature attributes
 * left out, each padded with zeros or with pads[index] (a parsed message's
 * non-zero padding), then MESSAGE-INTEGRITY under `mi`,
 * MESSAGE-INTEGRITY-SHA256 under `mi256` (each KeyedMac or None) and
 * FINGERPRINT if asked (section 6.3's order). None when the message would
 * not fit the 16-bit length field: the caller's Python path says why.
 */
static PyObject *encode(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    /* Read as PyArg_ParseTuple(args, "Iy*O!OOOp", ...) did, without the format (every answer comes here). */
    if (nargs != 7) {
        PyErr_SetString(PyExc_TypeError, "encode takes 7 arguments");
        return NULL;
    }
    if (!PyLong_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "message_type is an int");
        return NULL;
    }
    unsigned long type_value = PyLong_AsUnsignedLongMask(args[0]);
    if (type_value == (unsigned long)-1 && PyErr_Occurred())
        return NULL;
    unsigned message_type = (unsigned)type_value;
    if (type_value > 0xFFFF)
        message_type = 0x10000; /* refused below */
    if (!PyList_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, "attributes is a list");
        return NULL;
    }
    int fingerprint = PyObject_IsTrue(args[6]);
    if (fingerprint < 0)
        return NULL;
    PyObject *attributes = args[2], *pads = args[3], *mi_obj = args[4], *mi256_obj = args[5];
    Py_buffer tid;
    if (PyObject_GetBuffer(args[1], &tid, PyBUF_SIMPLE) < 0)
        return NULL;
    PyObject *result = NULL;
    if (tid.len != 12 || message_type > 0xFFFF) {
        PyErr_SetString(PyExc_ValueError, "a transaction id is 12 bytes and a message type 16 bits");
        goto release_tid;
    }
    if (pads != Py_None && !PyDict_Check(pads)) {
        PyErr_SetString(PyExc_TypeError, "pads is a dict or None");
        goto release_tid;
    }
    KeyedMac *mi = NULL, *mi256 = NULL;
    if (mi_obj != Py_None) {
        if (!PyObject_TypeCheck(mi_obj, &KeyedMacType) || ((KeyedMac *)mi_obj)->sha256) {
            PyErr_SetString(PyExc_TypeError, "mi is a SHA-1 KeyedMac or None");
            goto release_tid;
        }
        mi = (KeyedMac *)mi_obj;
    }
    if (mi256_obj != Py_None) {
        if (!PyObject_TypeCheck(mi256_obj, &KeyedMacType) || !((KeyedMac *)mi256_obj)->sha256) {
            PyErr_SetString(PyExc_TypeError, "mi256 is a SHA-256 KeyedMac or None");
            goto release_tid;
        }
        mi256 = (KeyedMac *)mi256_obj;
    }
    /* First pass: check the items and size the body. */
    Py_ssize_t count = PyList_GET_SIZE(attributes);
    size_t body = 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *item = PyList_GET_ITEM(attributes, i);
        if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2 || !PyBytes_Check(PyTuple_GET_ITEM(item, 1))
            || !PyLong_Check(PyTuple_GET_ITEM(item, 0))) {
            Py_INCREF(Py_None);
            result = Py_None; /* not what builders make: the Python path handles (or refuses) it */
            goto release_tid;
        }
        long type = PyLong_AsLong(PyTuple_GET_ITEM(item, 0));
        if (type == -1 && PyErr_Occurred())
            goto release_tid;
        if (type < 0 || type > 0xFFFF) {
            Py_INCREF(Py_None);
            result = Py_None; /* out of range: the Python path raises */
            goto release_tid;
        }
        if (is_signature(type))
            continue;
        size_t length = (size_t)PyBytes_GET_SIZE(PyTuple_GET_ITEM(item, 1));
        body += 4 + ((length + 3) & ~(size_t)3);
        if (body > 0xFFFF) {
            Py_INCREF(Py_None);
            result = Py_None;
            goto release_tid;
        }
    }
    size_t total = body + (mi ? 24 : 0) + (mi256 ? 36 : 0) + (fingerprint ? 8 : 0);
    if (total > 0xFFFF) {
        Py_INCREF(Py_None);
        result = Py_None;
        goto release_tid;
    }
    result = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(HEADER_LENGTH + total));
    if (result == NULL)
        goto release_tid;
    unsigned char *out = (unsigned char *)PyBytes_AS_STRING(result);
    unsigned char *p = out + HEADER_LENGTH;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *item = PyList_GET_ITEM(attributes, i);
        long type = PyLong_AsLong(PyTuple_GET_ITEM(item, 0));
        if (is_signature(type))
            continue;
        PyObject *value = PyTuple_GET_ITEM(item, 1);
        size_t length = (size_t)PyBytes_GET_SIZE(value);
        put16(p, (unsigned)type);
        put16(p + 2, (unsigned)length);
        memcpy(p + 4, PyBytes_AS_STRING(value), length);
        p += 4 + length;
        size_t padding = (4 - (length & 3)) & 3;
        if (padding) {
            memset(p, 0, padding);
            if (pads != Py_None) {
                PyObject *index = PyLong_FromSsize_t(i);
                if (index == NULL)
                    goto fail;
                PyObject *pad = PyDict_GetItemWithError(pads, index); /* borrowed */
                Py_DECREF(index);
                if (pad == NULL && PyErr_Occurred())
                    goto fail;
                if (pad != NULL) {
                    if (!PyBytes_Check(pad) || (size_t)PyBytes_GET_SIZE(pad) != padding) {
                        PyErr_SetString(PyExc_ValueError, "a kept padding does not fit its attribute");
                        goto fail;
                    }
                    memcpy(p, PyBytes_AS_STRING(pad), padding);
                }
            }
            p += padding;
        }
    }
    /* Each signature covers the header with the length counting to its own end (sections 14.5, 14.6). */
    if (mi)
        p = append_mac(out, p, message_type, tid.buf, ATTR_MI, mi);
    if (mi256)
        p = append_mac(out, p, message_type, tid.buf, ATTR_MI256, mi256);
    if (fingerprint) {
        size_t done = (size_t)(p - out) - HEADER_LENGTH;
        put_header(out, message_type, done + 8, tid.buf);
        uint32_t crc = (uint32_t)crc32(crc32(0L, Z_NULL, 0), out, (uInt)(HEADER_LENGTH + done));
        put16(p, ATTR_FP);
        put16(p + 2, 4);
        put32(p + 4, crc ^ FINGERPRINT_XOR);
        p += 8;
    }
    put_header(out, message_type, total, tid.buf);
    goto release_tid;
fail:
    Py_CLEAR(result);
release_tid:
    PyBuffer_Release(&tid);
    return result;
}

/* respond(method, transaction_id, attributes, encoders, shapes, states, key, sha256, fingerprint) -> bytes | None
 *
 * Message.encode_response in one call: the success response to a request of `method`, with `attributes`
 * ((type, value) pairs, a tuple or list) through encoders[type] (an encoder named in `shapes` as SHAPE_U32 and
 * given an int that fits is written here), signed under states[key] with MESSAGE-INTEGRITY, or
 * MESSAGE-INTEGRITY-SHA256 if sha256, unless key is None, then FINGERPRINT if asked; the bytes encode gives.
 * None for Python to take the long way (an attribute without an encoder, a value an encoder refuses). */
static PyObject *respond(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 9 || !PyLong_Check(args[0]) || !PyDict_CheckExact(args[3]) || !PyDict_CheckExact(args[4]) ||
        !(PyTuple_Check(args[2]) || PyList_Check(args[2]))) {
        PyErr_SetString(PyExc_TypeError, "respond(method: int, transaction_id, attributes, encoders: dict, "
                                         "shapes: dict, states, key, sha256, fingerprint)");
        return NULL;
    }
    long method = PyLong_AsLong(args[0]);
    if (method == -1 && PyErr_Occurred())
        return NULL;
    if (method < 0 || method > 0xFFF)
        Py_RETURN_NONE;
    /* Section 5: M11..M7 C1 M6..M4 C0 M3..M0, class success (C1 set). */
    long message_type = (method & 0x000F) | ((method & 0x0070) << 1) | ((method & 0x0F80) << 2) | 0x0100;
    PyObject *items = PySequence_Fast(args[2], "attributes");
    if (items == NULL)
        return NULL;
    Py_ssize_t count = PySequence_Fast_GET_SIZE(items);
    PyObject *result = NULL, *encoded = PyList_New(count), *mac = NULL, *type_code = NULL;
    if (encoded == NULL)
        goto done;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(items, i);
        if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2) {
            result = Py_NewRef(Py_None);
            goto done;
        }
        PyObject *type = PyTuple_GET_ITEM(item, 0), *value = PyTuple_GET_ITEM(item, 1);
        PyObject *encode_fn = PyDict_GetItemWithError(args[3], type); /* borrowed */
        if (encode_fn == NULL) {
            if (!PyErr_Occurred())
                result = Py_NewRef(Py_None); /* add() says what is wrong */
            goto done;
        }
        PyObject *bytes = NULL;
        PyObject *shape = PyDict_GetItemWithError(args[4], encode_fn); /* borrowed */
        if (shape == NULL && PyErr_Occurred())
            goto done;
        if (shape != NULL && PyLong_CheckExact(value) && PyLong_AsLong(shape) == SHAPE_U32) {
            unsigned long number = PyLong_AsUnsignedLong(value);
            if (number == (unsigned long)-1 && PyErr_Occurred())
                PyErr_Clear(); /* negative or too big: the encoder raises */
            else if (number <= 0xFFFFFFFFul) {
                unsigned char out[4];
                put32(out, (uint32_t)number);
                bytes = PyBytes_FromStringAndSize((const char *)out, 4);
                if (bytes == NULL)
                    goto done;
            }
        }
        if (bytes == NULL) {
            PyObject *call_args[2] = {value, args[1]};
            Py_INCREF(encode_fn);
            bytes = PyObject_Vectorcall(encode_fn, call_args, 2, NULL);
            Py_DECREF(encode_fn);
            if (bytes == NULL) {
                PyErr_Clear(); /* the long way raises it again, from add() */
                result = Py_NewRef(Py_None);
                goto done;
            }
        }
        PyObject *pair = PyTuple_Pack(2, type, bytes);
        Py_DECREF(bytes);
        if (pair == NULL)
            goto done;
        PyList_SET_ITEM(encoded, i, pair);
    }
    int sha256 = PyObject_IsTrue(args[7]);
    if (sha256 < 0)
        goto done;
    if (args[6] != Py_None && (mac = PyObject_GetItem(args[5], args[6])) == NULL)
        goto done;
    if ((type_code = PyLong_FromLong(message_type)) == NULL)
        goto done;
    PyObject *encode_args[7] = {type_code, args[1], encoded, Py_None, sha256 || mac == NULL ? Py_None : mac,
                                sha256 && mac != NULL ? mac : Py_None, args[8]};
    result = encode(module, encode_args, 7);
done:
    Py_DECREF(items);
    Py_XDECREF(encoded);
    Py_XDECREF(mac);
    Py_XDECREF(type_code);
    return result;
}

/* -- parse: Message.parse's common case ------------------------------------------------------ */

static PyObject *str_unpack, *str_expected, *str_method, *str_message_class, *str_transaction_id, *str_attributes,
    *str_raw, *str_layout, *empty_tuple;

/* parse(data, layouts, types, cls) -> a new cls, or None for Python to take the datagram.
 *
 * What message.py's Message.parse does when the header checks out, the message type is in `types` (type ->
 * (method, class)) and the layout kept for the datagram's length in `layouts` reads back as expected from
 * its bytes: the slots set as it sets them. Anything else (not bytes, a header error, a type or length not
 * seen, another layout) is None, and Python parses it: its errors and its layout walk stay the only ones. */
/* The message when the datagram is the cache hit, with its layout (a new reference) in *layout_out; Py_None
 * (a new reference, *layout_out NULL) when Python is to parse it; NULL on an error. */
static PyObject *parse_hit(PyObject *const *args, PyObject **layout_out)
{
    *layout_out = NULL;
    PyObject *data = args[0];
    if (!PyBytes_CheckExact(data))
        Py_RETURN_NONE;
    Py_ssize_t size = PyBytes_GET_SIZE(data);
    const unsigned char *p = (const unsigned char *)PyBytes_AS_STRING(data);
    if (size < HEADER_LENGTH)
        Py_RETURN_NONE;
    long message_type = (long)p[0] << 8 | p[1];
    Py_ssize_t length = (Py_ssize_t)p[2] << 8 | p[3];
    uint32_t cookie = (uint32_t)p[4] << 24 | (uint32_t)p[5] << 16 | (uint32_t)p[6] << 8 | p[7];
    if (message_type & 0xC000 || cookie != MAGIC_COOKIE || length & 3 || length + HEADER_LENGTH != size)
        Py_RETURN_NONE;
    PyObject *key = PyLong_FromLong(message_type);
    if (key == NULL)
        return NULL;
    PyObject *split = PyDict_GetItemWithError(args[2], key); /* borrowed */
    Py_DECREF(key);
    if (split == NULL || !PyTuple_CheckExact(split) || PyTuple_GET_SIZE(split) != 2)
        return PyErr_Occurred() ? NULL : Py_NewRef(Py_None);
    key = PyLong_FromSsize_t(size);
    if (key == NULL)
        return NULL;
    PyObject *layout = PyDict_GetItemWithError(args[1], key); /* borrowed */
    Py_DECREF(key);
    if (layout == NULL)
        return PyErr_Occurred() ? NULL : Py_NewRef(Py_None);
    Py_INCREF(layout); /* the reads below may run Python code that drops it from the dict */
    Py_INCREF(split);
    PyObject *result = NULL, *unpack = NULL, *read = NULL, *expected = NULL, *tid = NULL, *message = NULL;
    if ((unpack = PyObject_GetAttr(layout, str_unpack)) == NULL ||
        (read = PyObject_CallOneArg(unpack, data)) == NULL ||
        (expected = PyObject_GetAttr(layout, str_expected)) == NULL)
        goto done;
    int same = PyObject_RichCompareBool(read, expected, Py_EQ);
    if (same < 0)
        goto done;
    if (!same) {
        result = Py_NewRef(Py_None);
        goto done;
    }
    PyTypeObject *cls = (PyTypeObject *)args[3];
    if ((tid = PyBytes_FromStringAndSize((const char *)p + 8, 12)) == NULL ||
        (message = cls->tp_new(cls, empty_tuple, NULL)) == NULL)
        goto done;
    if (PyObject_SetAttr(message, str_method, PyTuple_GET_ITEM(split, 0)) < 0 ||
        PyObject_SetAttr(message, str_message_class, PyTuple_GET_ITEM(split, 1)) < 0 ||
        PyObject_SetAttr(message, str_transaction_id, tid) < 0 ||
        PyObject_SetAttr(message, str_attributes, Py_None) < 0 || PyObject_SetAttr(message, str_raw, data) < 0 ||
        PyObject_SetAttr(message, str_layout, layout) < 0)
        goto done;
    result = Py_NewRef(message);
    *layout_out = Py_NewRef(layout);
done:
    Py_XDECREF(unpack);
    Py_XDECREF(read);
    Py_XDECREF(expected);
    Py_XDECREF(tid);
    Py_XDECREF(message);
    Py_DECREF(split);
    Py_DECREF(layout);
    return result;
}

static int parse_arguments(PyObject *const *args, Py_ssize_t nargs, Py_ssize_t expected, const char *usage)
{
    if (nargs != expected || !PyDict_CheckExact(args[1]) || !PyDict_CheckExact(args[2]) || !PyType_Check(args[3])) {
        PyErr_SetString(PyExc_TypeError, usage);
        return -1;
    }
    return 0;
}

/* parse(data, layouts, types, cls) -> a new cls, or None for Python to take the datagram.
 *
 * What message.py's Message.parse does when the header checks out, the message type is in `types` (type ->
 * (method, class)) and the layout kept for the datagram's length in `layouts` reads back as expected from
 * its bytes: the slots set as it sets them. Anything else (not bytes, a header error, a type or length not
 * seen, another layout) is None, and Python parses it: its errors and its layout walk stay the only ones. */
static PyObject *parse(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (parse_arguments(args, nargs, 4, "parse(data, layouts: dict, types: dict, cls: type)") < 0)
        return NULL;
    PyObject *layout;
    PyObject *message = parse_hit(args, &layout);
    Py_XDECREF(layout);
    return message;
}

/* -- long-term credentials: Message.long_term_credentials ---------------------------------- */

static PyObject *type_username, *type_realm, *type_nonce, *type_algorithm, *type_algorithms;

/* The UTF-8 text of the attribute `type` of `first` (type -> slice of raw), None if absent; NULL with
 * *bad set (no exception) when it is not UTF-8, NULL with an exception on any other error. */
static PyObject *text_of(PyObject *first, PyObject *type, const char *raw, Py_ssize_t size, int *bad)
{
    PyObject *where = PyDict_GetItemWithError(first, type); /* borrowed */
    if (where == NULL)
        return PyErr_Occurred() ? NULL : Py_NewRef(Py_None);
    Py_ssize_t start, stop, step;
    if (!PySlice_Check(where) || PySlice_Unpack(where, &start, &stop, &step) < 0) {
        if (!PyErr_Occurred())
            *bad = 1;
        return NULL;
    }
    Py_ssize_t count = PySlice_AdjustIndices(size, &start, &stop, step);
    if (step != 1) {
        *bad = 1;
        return NULL;
    }
    PyObject *text = PyUnicode_DecodeUTF8(raw + start, count, "strict");
    if (text == NULL && PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
        PyErr_Clear();
        *bad = 1;
    }
    return text;
}

/* (username, realm, nonce, algorithms present) of a parsed message, Py_None when a text is not UTF-8, NULL on
 * an error. */
static PyObject *credentials_of(PyObject *raw_obj, PyObject *first)
{
    const char *raw = PyBytes_AS_STRING(raw_obj);
    Py_ssize_t size = PyBytes_GET_SIZE(raw_obj);
    int bad = 0;
    PyObject *username = NULL, *realm = NULL, *nonce = NULL;
    if ((username = text_of(first, type_username, raw, size, &bad)) == NULL ||
        (realm = text_of(first, type_realm, raw, size, &bad)) == NULL ||
        (nonce = text_of(first, type_nonce, raw, size, &bad)) == NULL) {
        Py_XDECREF(username);
        Py_XDECREF(realm);
        return bad ? Py_NewRef(Py_None) : NULL;
    }
    int algorithm = PyDict_Contains(first, type_algorithm);
    int algorithms = algorithm == 0 ? PyDict_Contains(first, type_algorithms) : algorithm;
    if (algorithms < 0) {
        Py_DECREF(username);
        Py_DECREF(realm);
        Py_DECREF(nonce);
        return NULL;
    }
    PyObject *result = PyTuple_New(4);
    if (result == NULL) {
        Py_DECREF(username);
        Py_DECREF(realm);
        Py_DECREF(nonce);
        return NULL;
    }
    PyTuple_SET_ITEM(result, 0, username);
    PyTuple_SET_ITEM(result, 1, realm);
    PyTuple_SET_ITEM(result, 2, nonce);
    PyTuple_SET_ITEM(result, 3, PyBool_FromLong(algorithms));
    return result;
}

/* credentials(raw, first) -> (username, realm, nonce, algorithms present) as Message.long_term_credentials
 * gives them for a parsed message, or None for Python to say what is wrong (text that is not UTF-8). */
static PyObject *credentials(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyBytes_CheckExact(args[0]) || !PyDict_CheckExact(args[1])) {
        PyErr_SetString(PyExc_TypeError, "credentials(raw: bytes, first: dict)");
        return NULL;
    }
    return credentials_of(args[0], args[1]);
}

/* -- request: what a server reads of every request, in one call ---------------------------------- */

static PyObject *str_first, *str_types, *str_fp, *type_mi, *type_mi256, *type_fp;

/* FINGERPRINT's verdict as Message.check_fingerprint gives it from the layout's `fp`: 1, 0, or -1 on an error. */
static int fingerprint_verdict(PyObject *raw_obj, PyObject *fp)
{
    if (fp == Py_None)
        return 0; /* present, of a length that cannot verify */
    if (!PyTuple_CheckExact(fp) || PyTuple_GET_SIZE(fp) != 4) {
        PyErr_SetString(PyExc_TypeError, "a layout's fp is (at, where, length field, length)");
        return -1;
    }
    Py_ssize_t at = PyLong_AsSsize_t(PyTuple_GET_ITEM(fp, 0));
    long length = PyLong_AsLong(PyTuple_GET_ITEM(fp, 3));
    if (PyErr_Occurred())
        return -1;
    Py_buffer raw = {.buf = PyBytes_AS_STRING(raw_obj), .len = PyBytes_GET_SIZE(raw_obj)};
    return fingerprint_matches(&raw, at, length);
}

/* The comprehension-required types (< 0x8000) of `types` that `decoders` has no codec for, each once, in
 * order (Message.unknown_comprehension_required); NULL on an error. */
static PyObject *unknown_of(PyObject *types, PyObject *decoders)
{
    if (!PyTuple_CheckExact(types)) {
        PyErr_SetString(PyExc_TypeError, "a layout's types is a tuple");
        return NULL;
    }
    Py_ssize_t count = PyTuple_GET_SIZE(types), found = 0;
    PyObject *unknown[64]; /* borrowed from types; more than 64 unknown types: Python says */
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *type = PyTuple_GET_ITEM(types, i);
        long value = PyLong_AsLong(type);
        if (value == -1 && PyErr_Occurred())
            return NULL;
        if (value >= 0x8000)
            continue;
        int known = PyDict_Contains(decoders, type);
        if (known < 0)
            return NULL;
        if (known)
            continue;
        int seen = 0;
        for (Py_ssize_t j = 0; j < found && !seen; j++)
            seen = PyLong_AsLong(unknown[j]) == value;
        if (seen)
            continue;
        if (found == 64)
            return Py_NewRef(Py_None);
        unknown[found++] = type;
    }
    if (found == 0)
        return Py_NewRef(empty_tuple);
    PyObject *result = PyTuple_New(found);
    if (result == NULL)
        return NULL;
    for (Py_ssize_t j = 0; j < found; j++)
        PyTuple_SET_ITEM(result, j, Py_NewRef(unknown[j]));
    return result;
}

/* request(data, layouts, types, cls, decoders) -> (message, fingerprint, unknown, integrity, credentials) | None
 *
 * message.read_request for the cache hit (see parse): the message, and what a server checks of every request
 * before it decides anything, as message.py's Python gives them: FINGERPRINT's verdict (None when absent),
 * the unknown comprehension-required attribute types (a tuple), which MESSAGE-INTEGRITY is present (0 none,
 * 1 MESSAGE-INTEGRITY, 2 MESSAGE-INTEGRITY-SHA256, which wins), and long_term_credentials() (None when a text
 * is not UTF-8: Python raises its error where it is asked). None for anything parse takes as None, and for
 * more than 64 unknown types. */
static PyObject *request(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (parse_arguments(args, nargs, 5, "request(data, layouts: dict, types: dict, cls: type, decoders: dict)") < 0)
        return NULL;
    if (!PyDict_Check(args[4])) {
        PyErr_SetString(PyExc_TypeError, "decoders is a dict");
        return NULL;
    }
    PyObject *layout;
    PyObject *message = parse_hit(args, &layout);
    if (message == NULL || message == Py_None)
        return message;
    PyObject *result = NULL, *first = NULL, *types = NULL, *fp = NULL, *unknown = NULL, *texts = NULL;
    PyObject *fingerprint = Py_None;
    if ((first = PyObject_GetAttr(layout, str_first)) == NULL || (types = PyObject_GetAttr(layout, str_types)) == NULL)
        goto done;
    if (!PyDict_CheckExact(first)) {
        PyErr_SetString(PyExc_TypeError, "a layout's first is a dict");
        goto done;
    }
    int has_fp = PyDict_Contains(first, type_fp);
    if (has_fp < 0)
        goto done;
    if (has_fp) {
        if ((fp = PyObject_GetAttr(layout, str_fp)) == NULL)
            goto done;
        int verdict = fingerprint_verdict(args[0], fp);
        if (verdict < 0)
            goto done;
        fingerprint = verdict ? Py_True : Py_False;
    }
    if ((unknown = unknown_of(types, args[4])) == NULL)
        goto done;
    if (unknown == Py_None) {
        result = Py_NewRef(Py_None);
        goto done;
    }
    int mi256 = PyDict_Contains(first, type_mi256);
    int mi = mi256 ? mi256 : PyDict_Contains(first, type_mi);
    if (mi < 0 || (texts = credentials_of(args[0], first)) == NULL)
        goto done;
    result = PyTuple_New(5);
    if (result == NULL)
        goto done;
    PyTuple_SET_ITEM(result, 0, Py_NewRef(message));
    PyTuple_SET_ITEM(result, 1, Py_NewRef(fingerprint));
    PyTuple_SET_ITEM(result, 2, Py_NewRef(unknown));
    PyTuple_SET_ITEM(result, 3, PyLong_FromLong(mi256 ? 2 : mi ? 1 : 0));
    PyTuple_SET_ITEM(result, 4, Py_NewRef(texts));
done:
    Py_DECREF(message);
    Py_DECREF(layout);
    Py_XDECREF(first);
    Py_XDECREF(types);
    Py_XDECREF(fp);
    Py_XDECREF(unknown);
    Py_XDECREF(texts);
    return result;
}

/* -- get: Message.get of a parsed message ------------------------------------------------------- */

static PyObject *decode_shape(long shape, const unsigned char *v, Py_ssize_t length)
{
    switch (shape) {
    case SHAPE_U32:
        if (length == 4)
            return PyLong_FromUnsignedLong((unsigned long)v[0] << 24 | (unsigned long)v[1] << 16 |
                                           (unsigned long)v[2] << 8 | v[3]);
        break;
    case SHAPE_U16_OF_4:
        if (length == 4)
            return PyLong_FromLong((long)v[0] << 8 | v[1]);
        break;
    case SHAPE_U8_OF_4:
        if (length == 4)
            return PyLong_FromLong(v[0]);
        break;
    case SHAPE_XOR_ADDRESS: /* an IPv4 one; IPv6 goes to the decoder */
        if (length == 8 && v[1] == 1) {
            char text[16];
            int size = snprintf(text, sizeof text, "%u.%u.%u.%u", v[4] ^ 0x21u, v[5] ^ 0x12u, v[6] ^ 0xA4u,
                                v[7] ^ 0x42u);
            PyObject *host = PyUnicode_FromStringAndSize(text, size);
            if (host == NULL)
                return NULL;
            PyObject *port = PyLong_FromLong(((long)v[2] << 8 | v[3]) ^ 0x2112);
            if (port == NULL) {
                Py_DECREF(host);
                return NULL;
            }
            PyObject *result = PyTuple_New(2);
            if (result == NULL) {
                Py_DECREF(host);
                Py_DECREF(port);
                return NULL;
            }
            PyTuple_SET_ITEM(result, 0, host);
            PyTuple_SET_ITEM(result, 1, port);
            return result;
        }
        break;
    }
    return Py_NewRef(Py_None); /* not this shape's length: the decoder says */
}

/* get(raw, first, transaction_id, attr_type, default, decoders, shapes) -> value
 *
 * Message.get of a parsed message whose attributes were not asked for: the first `attr_type` attribute's value
 * (first maps type -> slice of raw) through decoders[attr_type], `default` when absent, the raw bytes when
 * there is no decoder. A decoder named in `shapes` (decoder -> shape) is read here when the value has its
 * shape's length; anything else calls the decoder, which raises what it raises. */
static PyObject *get(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 7 || !PyBytes_CheckExact(args[0]) || !PyDict_CheckExact(args[1]) || !PyDict_CheckExact(args[5]) ||
        !PyDict_CheckExact(args[6])) {
        PyErr_SetString(PyExc_TypeError, "get(raw: bytes, first: dict, transaction_id, attr_type, default, "
                                         "decoders: dict, shapes: dict)");
        return NULL;
    }
    PyObject *where = PyDict_GetItemWithError(args[1], args[3]); /* borrowed */
    if (where == NULL)
        return PyErr_Occurred() ? NULL : Py_NewRef(args[4]);
    Py_ssize_t start, stop, step;
    if (!PySlice_Check(where)) {
        PyErr_SetString(PyExc_TypeError, "first maps types to slices");
        return NULL;
    }
    if (PySlice_Unpack(where, &start, &stop, &step) < 0)
        return NULL;
    Py_ssize_t length = PySlice_AdjustIndices(PyBytes_GET_SIZE(args[0]), &start, &stop, step);
    if (step != 1) {
        PyErr_SetString(PyExc_ValueError, "an attribute's slice has step 1");
        return NULL;
    }
    const unsigned char *value = (const unsigned char *)PyBytes_AS_STRING(args[0]) + start;
    PyObject *decode = PyDict_GetItemWithError(args[5], args[3]); /* borrowed */
    if (decode == NULL && PyErr_Occurred())
        return NULL;
    if (decode != NULL) {
        PyObject *shape = PyDict_GetItemWithError(args[6], decode); /* borrowed */
        if (shape == NULL && PyErr_Occurred())
            return NULL;
        if (shape != NULL) {
            long kind = PyLong_AsLong(shape);
            if (kind == -1 && PyErr_Occurred())
                return NULL;
            PyObject *decoded = decode_shape(kind, value, length);
            if (decoded != Py_None)
                return decoded;
            Py_DECREF(decoded);
        }
    }
    PyObject *raw = PyBytes_FromStringAndSize((const char *)value, length);
    if (raw == NULL || decode == NULL)
        return raw;
    Py_INCREF(decode);
    PyObject *call_args[2] = {raw, args[2]};
    PyObject *result = PyObject_Vectorcall(decode, call_args, 2, NULL);
    Py_DECREF(decode);
    Py_DECREF(raw);
    return result;
}

/* -- module ------------------------------------------------------------------------------ */

static PyMethodDef module_methods[] = {
    {"verify", (PyCFunction)(void (*)(void))verify, METH_FASTCALL,
     "verify(states, key, raw, signature) -> bool: MESSAGE-INTEGRITY(-SHA256) at a layout's signature checked "
     "under states[key] in constant time (False for None)."},
    {"check_fingerprint", check_fingerprint, METH_VARARGS,
     "check_fingerprint(raw, at, length) -> bool: FINGERPRINT at offset at, over raw[:at] with the header's "
     "length field replaced by length (unless -1)."},
    {"encode", (PyCFunction)(void (*)(void))encode, METH_FASTCALL,
     "encode(message_type, transaction_id, attributes, pads, mi, mi256, fingerprint) -> bytes | None"},
    {"credentials", (PyCFunction)(void (*)(void))credentials, METH_FASTCALL,
     "credentials(raw, first) -> (username, realm, nonce, algorithms) | None: Message.long_term_credentials "
     "of a parsed message; None when a text is not UTF-8 (Python raises its error)."},
    {"get", (PyCFunction)(void (*)(void))get, METH_FASTCALL,
     "get(raw, first, transaction_id, attr_type, default, decoders, shapes) -> value: Message.get of a parsed "
     "message, the decoders of the shapes it knows read in C."},
    {"respond", (PyCFunction)(void (*)(void))respond, METH_FASTCALL,
     "respond(method, transaction_id, attributes, encoders, shapes, states, key, sha256, fingerprint) -> bytes | "
     "None: Message.encode_response in one call."},
    {"request", (PyCFunction)(void (*)(void))request, METH_FASTCALL,
     "request(data, layouts, types, cls, decoders) -> (message, fingerprint, unknown, integrity, credentials) | "
     "None: message.read_request when the caches know the datagram's type and layout; None for Python."},
    {"parse", (PyCFunction)(void (*)(void))parse, METH_FASTCALL,
     "parse(data, layouts, types, cls) -> message | None: Message.parse when its caches know the datagram's "
     "type and layout; None for Python to parse it."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef codec_module = {
    PyModuleDef_HEAD_INIT, "_codec", "The STUN codec's byte work, compiled (see netcore/stun/compiled.py).", -1,
    module_methods,
};

PyMODINIT_FUNC PyInit__codec(void)
{
    if (PyType_Ready(&KeyedMacType) < 0)
        return NULL;
    struct { PyObject **slot; const char *text; } names[] = {
        {&str_unpack, "unpack"}, {&str_expected, "expected"}, {&str_method, "method"},
        {&str_message_class, "message_class"}, {&str_transaction_id, "transaction_id"},
        {&str_attributes, "_attributes"}, {&str_raw, "_raw"}, {&str_layout, "_layout"}, {&str_first, "first"},
        {&str_types, "types"}, {&str_fp, "fp"},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (*names[i].slot == NULL && (*names[i].slot = PyUnicode_InternFromString(names[i].text)) == NULL)
            return NULL;
    if (empty_tuple == NULL && (empty_tuple = PyTuple_New(0)) == NULL)
        return NULL;
    struct { PyObject **slot; long type; } types[] = {
        {&type_username, 0x0006}, {&type_realm, 0x0014}, {&type_nonce, 0x0015}, {&type_algorithm, 0x001D},
        {&type_algorithms, 0x8002}, {&type_mi, ATTR_MI}, {&type_mi256, ATTR_MI256}, {&type_fp, ATTR_FP},
    };
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
        if (*types[i].slot == NULL && (*types[i].slot = PyLong_FromLong(types[i].type)) == NULL)
            return NULL;
    PyObject *module = PyModule_Create(&codec_module);
    if (module == NULL)
        return NULL;
    Py_INCREF(&KeyedMacType);
    if (PyModule_AddObject(module, "KeyedMac", (PyObject *)&KeyedMacType) < 0) {
        Py_DECREF(&KeyedMacType);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}

/* mapreduce._core: the compiled per-record kernels of the shuffle.
 *
 * Every function here has a pure-Python twin (codec.py, runfile.py, shuffle.py) and must
 * give exactly its result, byte for byte, error for error; tests/test_core.py runs both on
 * the same random inputs.  mapreduce/core.py decides which twin runs (MAPREDUCE_CORE).
 *
 * How exactness is kept without re-implementing every corner in C: each kernel handles
 * the common, fully specified case itself and *delegates* anything else to the Python
 * reference, which then produces the result or raises the error:
 *
 *   encode_key   C: None, bool, int (magnitude < 2**64), float, str, bytes and tuples/lists
 *                of these (exact types, nesting < MAX_DEPTH).  Delegated: subclasses,
 *                bigger ints, str with lone surrogates, unsupported types (the Python
 *                code raises the SerializationError naming the type), deeper nesting.
 *   decode_key   C: everything encode_key produces except non-integral floats and ints
 *                beyond 8 bytes.  Delegated: those, and every byte string C finds
 *                malformed (the Python code raises the exact ValueError).
 *   unpack_pairs / unpack_flat (a run-file block's msgpack payload, already CRC-checked
 *                by the caller): C when the payload is exactly one msgpack array of
 *                2 * record_count bin objects; otherwise it returns None and the caller
 *                runs msgpack, which gives the reference result or error.
 *
 * Kernels with nothing to delegate (partition_of, sort_records, BlockPacker, Merge,
 * value_payloads) take records as (bytes, bytes) tuples -- what the engine always passes --
 * and raise TypeError for anything else.
 *
 * The combining buffer's loops (group_values, map_group; kernel.py's CombiningBuffer) hand
 * back: they take the common pair (a known or new ASCII str key, a small int value) and
 * return anything else untouched to the Python path, which treats it as it always did.
 *
 * Everything that reads bytes (decode_key, unpack_*) checks every length against the end
 * of its buffer before reading; tests/fuzz_core.py fuzzes them with atheris (run by the slow
 * test tests/test_core_build.py).
 * Format constants follow docs/key-encoding.md and docs/run-format.md (the Python
 * modules hold the named constants; the few spelled here carry the doc's names).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

/* ---- key tags (docs/key-encoding.md, "Layout"; codec.py's _NONE.._TUPLE) ------------- */
#define T_END 0x00
#define T_NONE 0x01
#define T_NEG_INF 0x16
#define T_NEG_BIG 0x17
#define T_ZERO 0x20
#define T_POS_BIG 0x29
#define T_POS_INF 0x2A
#define T_NAN 0x2B
#define T_STR 0x40
#define T_BYTES 0x41
#define T_TUPLE 0x50
#define T_FRACTION 0xFF
#define T_ESCAPE 0xFF

/* Nesting beyond this is left to the Python code (which raises past its recursion
 * limit): it keeps the C stack bounded on self-containing lists. */
#define MAX_DEPTH 64

/* The Python reference implementations, registered by codec.py (set_reference). */
static PyObject *ref_encode_key = NULL;
static PyObject *ref_decode_key = NULL;

/* ======================================================================================
 * A growable byte buffer with inline storage for short keys.
 * ====================================================================================== */
typedef struct {
    unsigned char *p;
    Py_ssize_t len, cap;
    unsigned char inline_[256];
} Buf;

static void buf_init(Buf *b) { b->p = b->inline_; b->len = 0; b->cap = sizeof b->inline_; }
static void buf_free(Buf *b) { if (b->p != b->inline_) PyMem_Free(b->p); buf_init(b); }

static int buf_reserve(Buf *b, Py_ssize_t extra) {
    if (extra > PY_SSIZE_T_MAX - b->len) { PyErr_NoMemory(); return -1; }
    Py_ssize_t need = b->len + extra;
    if (need <= b->cap) return 0;
    Py_ssize_t cap = b->cap;
    while (cap < need) cap = cap > PY_SSIZE_T_MAX / 2 ? need : cap * 2;
    unsigned char *p;
    if (b->p == b->inline_) {
        p = PyMem_Malloc(cap);
        if (p) memcpy(p, b->inline_, b->len);
    } else {
        p = PyMem_Realloc(b->p, cap);
    }
    if (!p) { PyErr_NoMemory(); return -1; }
    b->p = p; b->cap = cap;
    return 0;
}

static inline int buf_put(Buf *b, const void *src, Py_ssize_t n) {
    if (buf_reserve(b, n) < 0) return -1;
    memcpy(b->p + b->len, src, n);
    b->len += n;
    return 0;
}

static inline int buf_byte(Buf *b, unsigned char c) {
    if (b->len == b->cap && buf_reserve(b, 1) < 0) return -1;
    b->p[b->len++] = c;
    return 0;
}

/* Nested str/bytes/fraction payload: every 00 written 00 FF, then the 00 terminator. */
static int buf_put_escaped(Buf *b, const unsigned char *s, Py_ssize_t n) {
    const unsigned char *end = s + n;
    while (s < end) {
        const unsigned char *z = memchr(s, 0, end - s);
        if (!z) { if (buf_put(b, s, end - s) < 0) return -1; break; }
        if (buf_put(b, s, z - s + 1) < 0 || buf_byte(b, T_ESCAPE) < 0) return -1;
        s = z + 1;
    }
    return buf_byte(b, T_END);
}

/* ======================================================================================
 * encode_key
 * ====================================================================================== */
#define DELEGATE 1   /* an encoder's "not mine: let the Python reference decide" */

/* An int given as sign and magnitude < 2**64: tag 0x20 +- nbytes, then the big-endian
 * magnitude, complemented when negative (docs/key-encoding.md, "Integers"). */
static int put_int(Buf *b, int negative, uint64_t mag) {
    if (mag == 0) return buf_byte(b, T_ZERO);
    int n = 0;
    for (uint64_t m = mag; m; m >>= 8) n++;
    if (buf_reserve(b, n + 1) < 0) return -1;
    unsigned char *q = b->p + b->len;
    q[0] = (unsigned char)(negative ? T_ZERO - n : T_ZERO + n);
    for (int i = n; i >= 1; i--) {
        unsigned char c = (unsigned char)(mag & 0xFF);
        q[i] = negative ? (unsigned char)~c : c;
        mag >>= 8;
    }
    b->len += n + 1;
    return 0;
}

static int put_int64(Buf *b, long long v) {
    if (v >= 0) return put_int(b, 0, (uint64_t)v);
    return put_int(b, 1, (uint64_t)0 - (uint64_t)v);
}

static int encode_pylong(Buf *b, PyObject *o) {
    int overflow;
    long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
    if (v == -1 && PyErr_Occurred()) return -1;
    if (!overflow) return put_int64(b, v);
    if (overflow > 0) {
        unsigned long long u = PyLong_AsUnsignedLongLong(o);
        if (u == (unsigned long long)-1 && PyErr_Occurred()) { PyErr_Clear(); return DELEGATE; }
        return put_int(b, 0, u);
    }
    PyObject *neg = PyNumber_Negative(o);
    if (!neg) return -1;
    unsigned long long u = PyLong_AsUnsignedLongLong(neg);
    Py_DECREF(neg);
    if (u == (unsigned long long)-1 && PyErr_Occurred()) { PyErr_Clear(); return DELEGATE; }
    return put_int(b, 1, u);
}

/* A float (docs/key-encoding.md, "Floats"): integral ones as the int they equal; any
 * other finite x as floor(x), FF, then the exact bits of x - floor(x), computed from the
 * integer mantissa (never with float subtraction, which can round). */
static int encode_float(Buf *b, double x, int nested) {
    if (isnan(x)) return buf_byte(b, T_NAN);
    if (isinf(x)) return buf_byte(b, x > 0 ? T_POS_INF : T_NEG_INF);
    if (x == floor(x)) {
        if (x > -9223372036854775808.0 && x < 9223372036854775808.0) return put_int64(b, (long long)x);
        if (x >= 0 && x < 18446744073709551616.0) return put_int(b, 0, (uint64_t)x);
        if (x < 0 && x > -18446744073709551616.0) return put_int(b, 1, (uint64_t)(-x));
        return DELEGATE;   /* magnitude beyond 8 bytes: the big-int form */
    }
    int e;
    double m = frexp(x, &e);                  /* x = m * 2**e, 0.5 <= |m| < 1 */
    int64_t M = (int64_t)ldexp(m, 53);        /* exact: a double has 53 significant bits */
    int E = e - 53;                           /* x = M * 2**E */
    while ((M & 1) == 0) { M >>= 1; E++; }   /* M odd; E < 0 as x is not integral */
    int k = -E;                               /* x = M / 2**k, 1 <= k <= 1074 */
    int nbytes = (k + 7) / 8, shift = nbytes * 8 - k;
    unsigned char frac[136];
    long long fl;
    uint64_t absM = M < 0 ? (uint64_t)(-M) : (uint64_t)M;
    if (k < 63) {
        /* floor division by 2**k, then the remainder 0 < rem < 2**k */
        fl = M >= 0 ? (long long)(absM >> k)
                    : -(long long)((absM + ((uint64_t)1 << k) - 1) >> k);
        uint64_t rem = (uint64_t)(M - (int64_t)((uint64_t)fl << k));
        uint64_t v = rem << shift;
        for (int i = nbytes - 1; i >= 0; i--) { frac[i] = (unsigned char)(v & 0xFF); v >>= 8; }
    } else {
        /* |x| < 1: floor is 0 (rem = M) or -1 (rem = 2**k - |M|, the two's complement of
         * |M| in k bits).  |M| < 2**53 and shift < 8, so |M| << shift fits 8 bytes. */
        fl = M >= 0 ? 0 : -1;
        memset(frac, 0, nbytes);
        uint64_t v = absM << shift;
        for (int i = nbytes - 1; i >= nbytes - 8; i--) { frac[i] = (unsigned char)(v & 0xFF); v >>= 8; }
        if (M < 0) {
            int carry = 1;
            for (int i = nbytes - 1; i >= 0; i--) {
                unsigned int c = (unsigned char)~frac[i] + carry;
                frac[i] = (unsigned char)c;
                carry = c >> 8;
            }
        }
    }
    if (put_int64(b, fl) < 0 || buf_byte(b, T_FRACTION) < 0) return -1;
    if (nested) return buf_put_escaped(b, frac, nbytes);
    return buf_put(b, frac, nbytes);
}

/* A str's UTF-8 into the buffer (tag first).  ASCII strings are their own UTF-8; others are
 * encoded into a temporary bytes object rather than with PyUnicode_AsUTF8AndSize, which
 * would cache a UTF-8 copy inside the caller's key object for the key's lifetime.
 * Returns DELEGATE for lone surrogates (the Python code uses surrogatepass). */
static int put_str(Buf *b, PyObject *o, int nested) {
    if (PyUnicode_IS_ASCII(o)) {
        const unsigned char *s = PyUnicode_1BYTE_DATA(o);
        Py_ssize_t n = PyUnicode_GET_LENGTH(o);
        if (buf_byte(b, T_STR) < 0) return -1;
        return nested ? buf_put_escaped(b, s, n) : buf_put(b, s, n);
    }
    PyObject *u = PyUnicode_AsUTF8String(o);
    if (!u) {
        if (PyErr_ExceptionMatches(PyExc_UnicodeEncodeError)) { PyErr_Clear(); return DELEGATE; }
        return -1;
    }
    const unsigned char *s = (const unsigned char *)PyBytes_AS_STRING(u);
    Py_ssize_t n = PyBytes_GET_SIZE(u);
    int r = buf_byte(b, T_STR);
    if (r == 0) r = nested ? buf_put_escaped(b, s, n) : buf_put(b, s, n);
    Py_DECREF(u);
    return r;
}

static int encode_into(Buf *b, PyObject *o, int nested, int depth);

static int encode_items(Buf *b, PyObject *o, int nested, int depth) {
    if (depth >= MAX_DEPTH) return DELEGATE;
    if (buf_byte(b, T_TUPLE) < 0) return -1;
    /* No Python code runs below (exact types only), so a list cannot change under us;
     * the size is still re-read on every step. */
    for (Py_ssize_t i = 0; i < Py_SIZE(o); i++) {
        PyObject *item = PyTuple_CheckExact(o) ? PyTuple_GET_ITEM(o, i) : PyList_GET_ITEM(o, i);
        int r = encode_into(b, item, 1, depth + 1);
        if (r) return r;
    }
    return nested ? buf_byte(b, T_END) : 0;
}

static int encode_into(Buf *b, PyObject *o, int nested, int depth) {
    PyTypeObject *t = Py_TYPE(o);
    if (t == &PyUnicode_Type) return put_str(b, o, nested);
    if (t == &PyLong_Type) return encode_pylong(b, o);
    if (t == &PyTuple_Type || t == &PyList_Type) return encode_items(b, o, nested, depth);
    if (t == &PyFloat_Type) return encode_float(b, PyFloat_AS_DOUBLE(o), nested);
    if (t == &PyBytes_Type) {
        if (buf_byte(b, T_BYTES) < 0) return -1;
        const unsigned char *s = (const unsigned char *)PyBytes_AS_STRING(o);
        return nested ? buf_put_escaped(b, s, PyBytes_GET_SIZE(o)) : buf_put(b, s, PyBytes_GET_SIZE(o));
    }
    if (t == &PyBool_Type) return put_int(b, 0, o == Py_True);
    if (o == Py_None) return buf_byte(b, T_NONE);
    return DELEGATE;   /* subclasses and unsupported types */
}

static PyObject *delegate(PyObject *ref, PyObject *arg) {
    if (!ref) {
        PyErr_SetString(PyExc_RuntimeError, "mapreduce._core: reference functions not registered");
        return NULL;
    }
    return PyObject_CallOneArg(ref, arg);
}

static PyObject *core_encode_key(PyObject *self, PyObject *key) {
    PyTypeObject *t = Py_TYPE(key);
    if (t == &PyUnicode_Type && PyUnicode_IS_ASCII(key)) {   /* the word-count case */
        Py_ssize_t n = PyUnicode_GET_LENGTH(key);
        PyObject *out = PyBytes_FromStringAndSize(NULL, n + 1);
        if (!out) return NULL;
        char *q = PyBytes_AS_STRING(out);
        q[0] = T_STR;
        memcpy(q + 1, PyUnicode_1BYTE_DATA(key), n);
        return out;
    }
    Buf b;
    buf_init(&b);
    int r = encode_into(&b, key, 0, 0);
    if (r < 0) { buf_free(&b); return NULL; }
    if (r == DELEGATE) { buf_free(&b); return delegate(ref_encode_key, key); }
    PyObject *out = PyBytes_FromStringAndSize((const char *)b.p, b.len);
    buf_free(&b);
    return out;
}

/* ======================================================================================
 * decode_key
 * ====================================================================================== */
/* A decoder's "not mine" (anything malformed or not handled in C): a unique address. */
static PyObject delegate_marker_;
#define NOT_MINE (&delegate_marker_)

typedef struct { const unsigned char *d; Py_ssize_t n, pos; } Reader;

static PyObject *decode_at(Reader *r, int nested, int depth);

/* An escaped nested payload: up to its 00 terminator, every 00 FF meaning 00. */
static PyObject *decode_escaped(Reader *r, int tag) {
    const unsigned char *d = r->d;
    Py_ssize_t start = r->pos, i = start, escapes = 0;
    for (;;) {
        const unsigned char *z = memchr(d + i, 0, r->n - i);
        if (!z) return NOT_MINE;                       /* unterminated */
        i = z - d;
        if (i + 1 < r->n && d[i + 1] == T_ESCAPE) { escapes++; i += 2; continue; }
        break;
    }
    Py_ssize_t rawlen = i - start - escapes;
    PyObject *out;
    if (!escapes) {
        out = tag == T_STR ? PyUnicode_DecodeUTF8((const char *)d + start, rawlen, NULL)
                           : PyBytes_FromStringAndSize((const char *)d + start, rawlen);
    } else {
        unsigned char *tmp = PyMem_Malloc(rawlen ? rawlen : 1);
        if (!tmp) return PyErr_NoMemory();
        Py_ssize_t o = 0;
        for (Py_ssize_t j = start; j < i; j++) {
            tmp[o++] = d[j];
            if (d[j] == 0) j++;                        /* skip the FF of 00 FF */
        }
        out = tag == T_STR ? PyUnicode_DecodeUTF8((const char *)tmp, rawlen, NULL)
                           : PyBytes_FromStringAndSize((const char *)tmp, rawlen);
        PyMem_Free(tmp);
    }
    if (!out) {
        if (PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) { PyErr_Clear(); return NOT_MINE; }
        return NULL;
    }
    r->pos = i + 1;
    return out;
}

static PyObject *decode_small_int(Reader *r, int tag) {
    int negative = tag < T_ZERO, size = negative ? T_ZERO - tag : tag - T_ZERO;
    if (size > r->n - r->pos) return NOT_MINE;                   /* truncated */
    const unsigned char *q = r->d + r->pos;
    if (q[0] == (negative ? 0xFF : 0x00)) return NOT_MINE;       /* non-minimal */
    uint64_t mag = 0;
    for (int i = 0; i < size; i++) mag = (mag << 8) | (negative ? (unsigned char)~q[i] : q[i]);
    r->pos += size;
    if (r->pos < r->n && r->d[r->pos] == T_FRACTION) return NOT_MINE;  /* a float */
    if (!negative) return PyLong_FromUnsignedLongLong(mag);
    if (mag <= (uint64_t)1 << 63) return PyLong_FromLongLong((long long)(0 - mag));
    PyObject *pos = PyLong_FromUnsignedLongLong(mag);
    if (!pos) return NULL;
    PyObject *out = PyNumber_Negative(pos);
    Py_DECREF(pos);
    return out;
}

static PyObject *decode_at(Reader *r, int nested, int depth) {
    if (r->pos >= r->n) return NOT_MINE;
    int tag = r->d[r->pos++];
    if (tag > T_NEG_BIG && tag < T_POS_BIG) {
        if (tag == T_ZERO) {
            if (r->pos < r->n && r->d[r->pos] == T_FRACTION) return NOT_MINE;
            return PyLong_FromLong(0);
        }
        return decode_small_int(r, tag);
    }
    if (tag == T_STR || tag == T_BYTES) {
        if (nested) return decode_escaped(r, tag);
        const char *s = (const char *)r->d + r->pos;
        Py_ssize_t len = r->n - r->pos;
        PyObject *out = tag == T_STR ? PyUnicode_DecodeUTF8(s, len, NULL)
                                     : PyBytes_FromStringAndSize(s, len);
        if (!out) {
            if (PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) { PyErr_Clear(); return NOT_MINE; }
            return NULL;
        }
        r->pos = r->n;
        return out;
    }
    if (tag == T_TUPLE) {
        if (depth >= MAX_DEPTH) return NOT_MINE;
        PyObject *items = PyList_New(0);
        if (!items) return NULL;
        for (;;) {
            if (nested) {
                if (r->pos >= r->n) { Py_DECREF(items); return NOT_MINE; }
                if (r->d[r->pos] == T_END) { r->pos++; break; }
            } else if (r->pos == r->n) {
                break;
            }
            PyObject *item = decode_at(r, 1, depth + 1);
            if (item == NOT_MINE || !item) { Py_DECREF(items); return item; }
            int rc = PyList_Append(items, item);
            Py_DECREF(item);
            if (rc < 0) { Py_DECREF(items); return NULL; }
        }
        PyObject *out = PyList_AsTuple(items);
        Py_DECREF(items);
        return out;
    }
    if (tag == T_NONE) Py_RETURN_NONE;
    if (tag == T_NEG_INF) return PyFloat_FromDouble(-INFINITY);
    if (tag == T_POS_INF) return PyFloat_FromDouble(INFINITY);
    if (tag == T_NAN) return PyFloat_FromDouble(NAN);
    return NOT_MINE;   /* big ints, unknown tags */
}

static PyObject *core_decode_key(PyObject *self, PyObject *data) {
    if (!PyBytes_CheckExact(data)) return delegate(ref_decode_key, data);
    Reader r = {(const unsigned char *)PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data), 0};
    PyObject *out = decode_at(&r, 0, 0);
    if (out == NOT_MINE) return delegate(ref_decode_key, data);
    if (out && r.pos != r.n) { Py_DECREF(out); return delegate(ref_decode_key, data); }
    return out;
}

/* ======================================================================================
 * partition_of: zlib.crc32(key_bytes) % n  (docs/key-encoding.md, "Partition function")
 * ====================================================================================== */
static uint32_t crc_table[8][256];

static void crc_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int j = 0; j < 8; j++) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[0][i] = c;
    }
    for (int t = 1; t < 8; t++)
        for (int i = 0; i < 256; i++)
            crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 0xFF];
}

/* CRC-32 (ISO-HDLC, as zlib.crc32 with initial value 0), slicing by 8. */
static uint32_t crc32_of(const unsigned char *p, Py_ssize_t n) {
    uint32_t c = 0xFFFFFFFFu;
    while (n >= 8) {
        uint32_t lo = c ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
        c = crc_table[7][lo & 0xFF] ^ crc_table[6][(lo >> 8) & 0xFF] ^ crc_table[5][(lo >> 16) & 0xFF]
            ^ crc_table[4][lo >> 24] ^ crc_table[3][p[4]] ^ crc_table[2][p[5]]
            ^ crc_table[1][p[6]] ^ crc_table[0][p[7]];
        p += 8; n -= 8;
    }
    while (n--) c = crc_table[0][(c ^ *p++) & 0xFF] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

static PyObject *core_partition_of(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "partition_of expected 2 arguments, got %zd", nargs);
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0) return NULL;
    uint32_t crc = crc32_of(view.buf, view.len);
    PyBuffer_Release(&view);
    PyObject *n = args[1];
    if (PyLong_CheckExact(n)) {
        long long m = PyLong_AsLongLong(n);
        if (m > 0) return PyLong_FromUnsignedLong((unsigned long)(crc % (unsigned long long)m));
        PyErr_Clear();
    }
    PyObject *c = PyLong_FromUnsignedLong(crc);   /* other divisors: Python's % decides */
    if (!c) return NULL;
    PyObject *out = PyNumber_Remainder(c, n);
    Py_DECREF(c);
    return out;
}

/* ======================================================================================
 * Records: (key bytes, value bytes) tuples, compared by key bytes (or whole record)
 * ====================================================================================== */
static inline int is_record(PyObject *rec) {
    return PyTuple_CheckExact(rec) && PyTuple_GET_SIZE(rec) == 2
        && PyBytes_CheckExact(PyTuple_GET_ITEM(rec, 0)) && PyBytes_CheckExact(PyTuple_GET_ITEM(rec, 1));
}

static int bad_record(const char *where, PyObject *rec) {
    PyErr_Format(PyExc_TypeError, "%s: records must be (bytes, bytes) tuples, got %.100s",
                 where, Py_TYPE(rec)->tp_name);
    return -1;
}

/* bytes order: memcmp over the common prefix, then the shorter first */
static inline int cmp_bytes(PyObject *a, PyObject *b) {
    Py_ssize_t la = PyBytes_GET_SIZE(a), lb = PyBytes_GET_SIZE(b);
    int c = memcmp(PyBytes_AS_STRING(a), PyBytes_AS_STRING(b), la < lb ? la : lb);
    if (c) return c;
    return (la > lb) - (la < lb);
}

static inline int cmp_records(PyObject *a, PyObject *b, int sort_values) {
    int c = cmp_bytes(PyTuple_GET_ITEM(a, 0), PyTuple_GET_ITEM(b, 0));
    if (c || !sort_values) return c;
    return cmp_bytes(PyTuple_GET_ITEM(a, 1), PyTuple_GET_ITEM(b, 1));
}

/* ---- sort_records: a stable merge sort on an 8-byte key prefix, then the full bytes ---- */
typedef struct { uint64_t prefix; PyObject *rec; } SortItem;

/* The first 8 bytes of s[0:n] as a big-endian integer, zero-padded: comparing prefixes
 * orders as memcmp does, up to ties (a padding byte differs only from a real byte > 0). */
static inline uint64_t prefix_of_mem(const unsigned char *s, Py_ssize_t n) {
#if defined(__GNUC__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    if (n >= 8) {
        uint64_t v;
        memcpy(&v, s, 8);
        return __builtin_bswap64(v);
    }
#endif
    uint64_t p = 0;
    for (int i = 0; i < 8; i++) p = (p << 8) | (i < n ? s[i] : 0);
    return p;
}

static inline uint64_t prefix_of(PyObject *kb) {
    return prefix_of_mem((const unsigned char *)PyBytes_AS_STRING(kb), PyBytes_GET_SIZE(kb));
}

static inline int item_less(const SortItem *a, const SortItem *b, int sort_values) {
    if (a->prefix != b->prefix) return a->prefix < b->prefix;
    return cmp_records(a->rec, b->rec, sort_values) < 0;
}

/* A stable merge sort of n items of type T ordered by LESS(a, b, sort_values):
 * insertion-sorted runs of 24, then bottom-up merges through tmp (n more items); a merge
 * whose halves are already in order is a copy.  Stable: ties keep their input order (a
 * merge takes from the left run unless the right item is strictly less).  Defined twice:
 * for sort_records' items and for the C sort buffer's index. */
#define DEFINE_STABLE_MERGE_SORT(NAME, T, LESS)                                              \
static void NAME(T *a, T *tmp, Py_ssize_t n, int sort_values) {                             \
    const Py_ssize_t RUN = 24;                                                               \
    for (Py_ssize_t lo = 0; lo < n; lo += RUN) {                                             \
        Py_ssize_t hi = lo + RUN < n ? lo + RUN : n;                                         \
        for (Py_ssize_t i = lo + 1; i < hi; i++) {                                           \
            T x = a[i];                                                                      \
            Py_ssize_t j = i;                                                                \
            while (j > lo && LESS(&x, &a[j - 1], sort_values)) { a[j] = a[j - 1]; j--; }     \
            a[j] = x;                                                                        \
        }                                                                                    \
    }                                                                                        \
    T *src = a, *dst = tmp;                                                                  \
    for (Py_ssize_t width = RUN; width < n; width *= 2) {                                    \
        for (Py_ssize_t lo = 0; lo < n; lo += 2 * width) {                                   \
            Py_ssize_t mid = lo + width < n ? lo + width : n;                                \
            Py_ssize_t hi = lo + 2 * width < n ? lo + 2 * width : n;                         \
            Py_ssize_t i = lo, j = mid, k = lo;                                              \
            if (mid >= hi || !LESS(&src[mid], &src[mid - 1], sort_values)) {                 \
                memcpy(dst + lo, src + lo, (hi - lo) * sizeof *src);  /* already in order */ \
                continue;                                                                    \
            }                                                                                \
            while (i < mid && j < hi)                                                        \
                dst[k++] = LESS(&src[j], &src[i], sort_values) ? src[j++] : src[i++];        \
            while (i < mid) dst[k++] = src[i++];                                             \
            while (j < hi) dst[k++] = src[j++];                                              \
        }                                                                                    \
        T *t = src; src = dst; dst = t;                                                      \
    }                                                                                        \
    if (src != a) memcpy(a, src, n * sizeof *a);                                             \
}

DEFINE_STABLE_MERGE_SORT(merge_sort, SortItem, item_less)

static PyObject *core_sort_records(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2 || !PyList_CheckExact(args[0])) {
        PyErr_SetString(PyExc_TypeError, "sort_records(records: list, sort_values: bool)");
        return NULL;
    }
    PyObject *list = args[0];
    int sort_values = PyObject_IsTrue(args[1]);
    if (sort_values < 0) return NULL;
    Py_ssize_t n = PyList_GET_SIZE(list);
    if (n < 2) Py_RETURN_NONE;
    SortItem *items = PyMem_Malloc(2 * n * sizeof *items);
    if (!items) return PyErr_NoMemory();
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *rec = PyList_GET_ITEM(list, i);
        if (!is_record(rec)) { PyMem_Free(items); bad_record("sort_records", rec); return NULL; }
        items[i].rec = rec;
        items[i].prefix = prefix_of(PyTuple_GET_ITEM(rec, 0));
    }
    merge_sort(items, items + n, n, sort_values);
    /* The list holds the same references in a new order: no reference count changes. */
    for (Py_ssize_t i = 0; i < n; i++) PyList_SET_ITEM(list, i, items[i].rec);
    PyMem_Free(items);
    Py_RETURN_NONE;
}

/* ======================================================================================
 * BlockPacker: records -> run-file block payloads (docs/run-format.md, "Data block")
 *
 * A block's payload, before LZ4, is msgpack.packb([k0, v0, k1, v1, ...],
 * use_bin_type=True).  The packer appends each record's two bin objects to a pending
 * buffer and closes a block as soon as its accounted size, sum(len(k) + len(v) + 4),
 * reaches the target: exactly RunWriter's rule (a record reaching it stays in the block).
 * ====================================================================================== */
#define RECORD_OVERHEAD 4   /* runfile.RECORD_OVERHEAD */

typedef struct {
    PyObject_HEAD
    Buf buf;                  /* the pending block's bin objects, without the array header */
    Py_ssize_t records;       /* records in the pending block */
    Py_ssize_t accounted;     /* its accounted size */
    Py_ssize_t limit;         /* the target block size */
    PyObject *name;           /* the file's name, for error messages */
} Packer;

static int put_bin(Buf *b, PyObject *o) {
    Py_ssize_t n = PyBytes_GET_SIZE(o);
    unsigned char h[5];
    int hl;
    if (n < 0x100) { h[0] = 0xC4; h[1] = (unsigned char)n; hl = 2; }
    else if (n < 0x10000) { h[0] = 0xC5; h[1] = (unsigned char)(n >> 8); h[2] = (unsigned char)n; hl = 3; }
    else if ((uint64_t)n <= 0xFFFFFFFFu) {
        h[0] = 0xC6; h[1] = (unsigned char)(n >> 24); h[2] = (unsigned char)(n >> 16);
        h[3] = (unsigned char)(n >> 8); h[4] = (unsigned char)n; hl = 5;
    } else {
        PyErr_SetString(PyExc_ValueError, "bytes object is too large");
        return -1;
    }
    if (buf_reserve(b, hl + n) < 0) return -1;
    memcpy(b->p + b->len, h, hl);
    memcpy(b->p + b->len + hl, PyBytes_AS_STRING(o), n);
    b->len += hl + n;
    return 0;
}

/* The pending block as (payload bytes, records, accounted size); resets the packer. */
static PyObject *packer_take(Packer *self) {
    uint64_t items = (uint64_t)self->records * 2;
    unsigned char h[5];
    int hl;
    if (items <= 15) { h[0] = (unsigned char)(0x90 | items); hl = 1; }
    else if (items <= 0xFFFF) { h[0] = 0xDC; h[1] = (unsigned char)(items >> 8); h[2] = (unsigned char)items; hl = 3; }
    else if (items <= 0xFFFFFFFFu) {
        h[0] = 0xDD; h[1] = (unsigned char)(items >> 24); h[2] = (unsigned char)(items >> 16);
        h[3] = (unsigned char)(items >> 8); h[4] = (unsigned char)items; hl = 5;
    } else {
        PyErr_SetString(PyExc_ValueError, "list is too large");
        return NULL;
    }
    PyObject *data = PyBytes_FromStringAndSize(NULL, hl + self->buf.len);
    if (!data) return NULL;
    memcpy(PyBytes_AS_STRING(data), h, hl);
    memcpy(PyBytes_AS_STRING(data) + hl, self->buf.p, self->buf.len);
    PyObject *out = Py_BuildValue("(Nnn)", data, self->records, self->accounted);
    if (!out) return NULL;
    self->buf.len = 0;
    self->records = self->accounted = 0;
    if (self->buf.cap > 4 * (self->limit + 64) && self->buf.p != self->buf.inline_) {
        buf_free(&self->buf);   /* a huge record grew it: do not keep that memory */
    }
    return out;
}

static int packer_add(Packer *self, PyObject *k, PyObject *v, PyObject *done) {
    if (put_bin(&self->buf, k) < 0 || put_bin(&self->buf, v) < 0) return -1;
    self->records++;
    self->accounted += PyBytes_GET_SIZE(k) + PyBytes_GET_SIZE(v) + RECORD_OVERHEAD;
    if (self->accounted >= self->limit) {
        PyObject *block = packer_take(self);
        if (!block) return -1;
        int rc = PyList_Append(done, block);
        Py_DECREF(block);
        return rc;
    }
    return 0;
}

static int not_bytes(Packer *self, PyObject *o) {
    PyErr_Format(PyExc_TypeError, "%S: run file records must be bytes, not %.100s",
                 self->name, Py_TYPE(o)->tp_name);
    return -1;
}

/* add_pairs(records) -> [finished blocks]: records a list of (key, value) pairs */
static PyObject *packer_add_pairs(Packer *self, PyObject *records) {
    PyObject *seq = PySequence_Fast(records, "records must be a sequence");
    if (!seq) return NULL;
    PyObject *done = PyList_New(0);
    if (!done) { Py_DECREF(seq); return NULL; }
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq); i++) {
        PyObject *rec = PySequence_Fast_GET_ITEM(seq, i), *k, *v;
        if (PyTuple_CheckExact(rec) && PyTuple_GET_SIZE(rec) == 2) {
            k = PyTuple_GET_ITEM(rec, 0); v = PyTuple_GET_ITEM(rec, 1);
        } else if (PyList_CheckExact(rec) && PyList_GET_SIZE(rec) == 2) {
            k = PyList_GET_ITEM(rec, 0); v = PyList_GET_ITEM(rec, 1);
        } else {
            PyErr_Format(PyExc_ValueError, "%S: records must be (key, value) pairs", self->name);
            goto fail;
        }
        if (!PyBytes_CheckExact(k)) { not_bytes(self, k); goto fail; }
        if (!PyBytes_CheckExact(v)) { not_bytes(self, v); goto fail; }
        if (packer_add(self, k, v, done) < 0) goto fail;
    }
    Py_DECREF(seq);
    return done;
fail:
    Py_DECREF(seq);
    Py_DECREF(done);
    return NULL;
}

/* add_flat(flat) -> [finished blocks]: flat an even-length list [k0, v0, k1, v1, ...] */
static PyObject *packer_add_flat(Packer *self, PyObject *flat) {
    if (!PyList_CheckExact(flat) || PyList_GET_SIZE(flat) % 2) {
        PyErr_SetString(PyExc_TypeError, "add_flat needs a list of even length");
        return NULL;
    }
    PyObject *done = PyList_New(0);
    if (!done) return NULL;
    for (Py_ssize_t i = 0; i + 1 < PyList_GET_SIZE(flat); i += 2) {
        PyObject *k = PyList_GET_ITEM(flat, i), *v = PyList_GET_ITEM(flat, i + 1);
        if (!PyBytes_CheckExact(k)) { not_bytes(self, k); goto fail; }
        if (!PyBytes_CheckExact(v)) { not_bytes(self, v); goto fail; }
        if (packer_add(self, k, v, done) < 0) goto fail;
    }
    return done;
fail:
    Py_DECREF(done);
    return NULL;
}

static PyObject *packer_flush(Packer *self, PyObject *unused) {
    if (!self->records) Py_RETURN_NONE;
    return packer_take(self);
}

static int packer_init(Packer *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"limit", "name", NULL};
    Py_ssize_t limit;
    PyObject *name = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "n|O", kwlist, &limit, &name)) return -1;
    if (limit < 1) { PyErr_SetString(PyExc_ValueError, "limit must be positive"); return -1; }
    self->limit = limit;
    if (!name) name = Py_None;
    Py_INCREF(name);
    Py_XSETREF(self->name, name);
    self->buf.len = 0;
    self->records = self->accounted = 0;
    return 0;
}

static PyObject *packer_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    Packer *self = (Packer *)type->tp_alloc(type, 0);
    if (self) buf_init(&self->buf);
    return (PyObject *)self;
}

static void packer_dealloc(Packer *self) {
    buf_free(&self->buf);
    Py_XDECREF(self->name);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *packer_get_pending(Packer *self, void *closure) {
    return Py_BuildValue("(nn)", self->records, self->accounted);
}

static PyMethodDef packer_methods[] = {
    {"add_pairs", (PyCFunction)packer_add_pairs, METH_O,
     "Append (key, value) pairs; return the blocks they closed as (payload, records, accounted)."},
    {"add_flat", (PyCFunction)packer_add_flat, METH_O,
     "Append a flat [k0, v0, ...] list; return the blocks it closed."},
    {"flush", (PyCFunction)packer_flush, METH_NOARGS,
     "The pending block as (payload, records, accounted), or None if it is empty."},
    {NULL}
};

static PyGetSetDef packer_getset[] = {
    {"pending", (getter)packer_get_pending, NULL, "(records, accounted size) not yet in a block", NULL},
    {NULL}
};

static PyTypeObject PackerType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "mapreduce._core.BlockPacker",
    .tp_basicsize = sizeof(Packer),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "BlockPacker(limit, name=None): records to run-file block payloads (msgpack).",
    .tp_new = packer_new,
    .tp_init = (initproc)packer_init,
    .tp_dealloc = (destructor)packer_dealloc,
    .tp_methods = packer_methods,
    .tp_getset = packer_getset,
};

/* ======================================================================================
 * unpack_pairs / unpack_flat: a block payload -> records (the reader's hot path)
 *
 * The caller has checked the payload CRC and decompressed it.  C takes exactly one msgpack
 * array of 2 * count bin objects filling the buffer; for anything else it returns None and
 * the caller's msgpack path gives the reference result or error.  Every length is checked
 * against the end of the buffer before it is used.
 * ====================================================================================== */
static int read_be(const unsigned char *d, Py_ssize_t n, Py_ssize_t *pos, int width, uint64_t *out) {
    if (width > n - *pos) return -1;
    uint64_t v = 0;
    for (int i = 0; i < width; i++) v = (v << 8) | d[*pos + i];
    *pos += width;
    *out = v;
    return 0;
}

/* The array header's item count, or -1 when the buffer does not start with an array. */
static int64_t read_array_header(const unsigned char *d, Py_ssize_t n, Py_ssize_t *pos) {
    if (*pos >= n) return -1;
    unsigned char h = d[(*pos)++];
    uint64_t v;
    if ((h & 0xF0) == 0x90) return h & 0x0F;
    if (h == 0xDC) return read_be(d, n, pos, 2, &v) < 0 ? -1 : (int64_t)v;
    if (h == 0xDD) return read_be(d, n, pos, 4, &v) < 0 ? -1 : (int64_t)v;
    return -1;
}

/* One bin object: its payload's offset and length, or -1 when it is something else. */
static int read_bin(const unsigned char *d, Py_ssize_t n, Py_ssize_t *pos, Py_ssize_t *start, Py_ssize_t *len) {
    if (*pos >= n) return -1;
    unsigned char h = d[(*pos)++];
    uint64_t v;
    int width = h == 0xC4 ? 1 : h == 0xC5 ? 2 : h == 0xC6 ? 4 : 0;
    if (!width || read_be(d, n, pos, width, &v) < 0) return -1;
    if (v > (uint64_t)(n - *pos)) return -1;
    *start = *pos;
    *len = (Py_ssize_t)v;
    *pos += (Py_ssize_t)v;
    return 0;
}

static PyObject *unpack_block(PyObject *const *args, Py_ssize_t nargs, int pairs) {
    if (nargs != 2 || !PyBytes_CheckExact(args[0])) {
        PyErr_SetString(PyExc_TypeError, "unpack_pairs/unpack_flat(data: bytes, count: int)");
        return NULL;
    }
    Py_ssize_t count = PyLong_AsSsize_t(args[1]);
    if (count == -1 && PyErr_Occurred()) return NULL;
    const unsigned char *d = (const unsigned char *)PyBytes_AS_STRING(args[0]);
    Py_ssize_t n = PyBytes_GET_SIZE(args[0]), pos = 0;
    int64_t items = read_array_header(d, n, &pos);
    /* every bin object takes at least 2 bytes: a count the data cannot hold is not ours
     * (and must not size an allocation) */
    if (count < 0 || count > n || items != 2 * (int64_t)count || items > (n - pos) / 2) Py_RETURN_NONE;
    PyObject *out = PyList_New(pairs ? count : 2 * count);
    if (!out) return NULL;
    for (Py_ssize_t i = 0; i < count; i++) {
        Py_ssize_t ks, kl, vs, vl;
        if (read_bin(d, n, &pos, &ks, &kl) < 0 || read_bin(d, n, &pos, &vs, &vl) < 0) {
            Py_DECREF(out);
            Py_RETURN_NONE;
        }
        PyObject *k = PyBytes_FromStringAndSize((const char *)d + ks, kl);
        PyObject *v = k ? PyBytes_FromStringAndSize((const char *)d + vs, vl) : NULL;
        if (!v) { Py_XDECREF(k); Py_DECREF(out); return NULL; }
        if (pairs) {
            PyObject *rec = PyTuple_New(2);
            if (!rec) { Py_DECREF(k); Py_DECREF(v); Py_DECREF(out); return NULL; }
            PyTuple_SET_ITEM(rec, 0, k);
            PyTuple_SET_ITEM(rec, 1, v);
            PyList_SET_ITEM(out, i, rec);
        } else {
            PyList_SET_ITEM(out, 2 * i, k);
            PyList_SET_ITEM(out, 2 * i + 1, v);
        }
    }
    if (pos != n) { Py_DECREF(out); Py_RETURN_NONE; }   /* trailing bytes: msgpack's ExtraData */
    return out;
}

static PyObject *core_unpack_pairs(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    return unpack_block(args, nargs, 1);
}

static PyObject *core_unpack_flat(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    return unpack_block(args, nargs, 0);
}

/* ======================================================================================
 * Merge: the stable k-way merge of sorted runs given as blocks (shuffle.merge_blocks)
 *
 * A loser tree over the runs' current records; ties go to the lower run index, which
 * (with each run sorted) makes the merge stable.  Records are taken from the runs' current
 * blocks; when a run's block is used up the records taken so far are yielded as one batch
 * *before* the run's next block is read, so a batch holds at most one block per run and
 * memory stays at one block per run, as in the Python merge.  With one run left its blocks
 * pass through whole.
 * ====================================================================================== */
typedef struct {
    uint64_t prefix;      /* the current key's first 8 bytes (prefix_of): most comparisons */
    PyObject *rec;        /* the current record (borrowed from block) */
    PyObject *source;     /* iterator of blocks */
    PyObject *block;      /* current block (a tuple of records), NULL when the run is done */
    Py_ssize_t pos;
} Run;

/* Cache the run's current record and its key prefix: the loser tree compares prefixes
 * held in the Run array and follows pointers only on a tie. */
static inline void run_load(Run *r) {
    r->rec = PyTuple_GET_ITEM(r->block, r->pos);
    r->prefix = prefix_of(PyTuple_GET_ITEM(r->rec, 0));
}

typedef struct {
    PyObject_HEAD
    PyObject *sources;    /* the runs as given, until started */
    Run *runs;
    Py_ssize_t k;         /* number of runs */
    Py_ssize_t live;      /* runs not yet done */
    Py_ssize_t *loser;    /* loser[1..k-1]: internal nodes; loser[0]: the winner */
    Py_ssize_t refill;    /* a run whose block ran out in the last batch, or -1 */
    int sort_values;
    int started;
    int passthrough;      /* one run left: its rest goes out block by block */
} Merge;

/* Is run a's current record before run b's?  A done run is past every record. */
static inline int run_less(Merge *m, Py_ssize_t a, Py_ssize_t b) {
    Run *ra = &m->runs[a], *rb = &m->runs[b];
    if (!ra->block) return 0;
    if (!rb->block) return 1;
    if (ra->prefix != rb->prefix) return ra->prefix < rb->prefix;
    int c = cmp_records(ra->rec, rb->rec, m->sort_values);
    return c < 0 || (c == 0 && a < b);
}

/* Read the run's next non-empty block as a private tuple (a consumer cannot change it
 * under the merge), checking its records; block = NULL when the run is done. */
static int run_next_block(Run *r) {
    Py_CLEAR(r->block);
    r->pos = 0;
    for (;;) {
        PyObject *b = PyIter_Next(r->source);
        if (!b) return PyErr_Occurred() ? -1 : 0;
        PyObject *t = PySequence_Tuple(b);
        Py_DECREF(b);
        if (!t) return -1;
        Py_ssize_t n = PyTuple_GET_SIZE(t);
        for (Py_ssize_t i = 0; i < n; i++) {
            PyObject *rec = PyTuple_GET_ITEM(t, i);
            if (!is_record(rec)) { Py_DECREF(t); return bad_record("merge", rec); }
        }
        if (n) { r->block = t; run_load(r); return 0; }
        Py_DECREF(t);
    }
}

static Py_ssize_t tree_build(Merge *m, Py_ssize_t node) {   /* returns the subtree's winner */
    if (node >= m->k) return node - m->k;
    Py_ssize_t a = tree_build(m, 2 * node), b = tree_build(m, 2 * node + 1);
    if (run_less(m, b, a)) { m->loser[node] = a; return b; }
    m->loser[node] = b;
    return a;
}

static void tree_replay(Merge *m, Py_ssize_t leaf) {
    Py_ssize_t w = leaf;
    for (Py_ssize_t node = (leaf + m->k) / 2; node >= 1; node /= 2) {
        if (run_less(m, m->loser[node], w)) {
            Py_ssize_t t = m->loser[node]; m->loser[node] = w; w = t;
        }
    }
    m->loser[0] = w;
}

static int merge_start(Merge *m) {
    PyObject *seq = PySequence_Fast(m->sources, "runs must be a sequence");
    if (!seq) return -1;
    Py_ssize_t k = PySequence_Fast_GET_SIZE(seq);
    m->runs = PyMem_Calloc(k ? k : 1, sizeof(Run));
    m->loser = PyMem_Calloc(k ? k : 1, sizeof(Py_ssize_t));
    if (!m->runs || !m->loser) { Py_DECREF(seq); PyErr_NoMemory(); return -1; }
    m->k = k;
    for (Py_ssize_t i = 0; i < k; i++) {
        m->runs[i].source = PyObject_GetIter(PySequence_Fast_GET_ITEM(seq, i));
        if (!m->runs[i].source) { Py_DECREF(seq); return -1; }
    }
    Py_DECREF(seq);
    Py_CLEAR(m->sources);
    m->live = 0;
    for (Py_ssize_t i = 0; i < k; i++) {   /* first blocks, in run order */
        if (run_next_block(&m->runs[i]) < 0) return -1;
        if (m->runs[i].block) m->live++;
    }
    if (k) m->loser[0] = tree_build(m, 1);
    return 0;
}

static PyObject *merge_next(Merge *m) {
    if (!m->started) {
        m->started = 1;
        m->refill = -1;
        if (merge_start(m) < 0) return NULL;
    }
    if (m->refill >= 0) {
        Py_ssize_t r = m->refill;
        m->refill = -1;
        if (run_next_block(&m->runs[r]) < 0) return NULL;
        if (!m->runs[r].block) m->live--;
        tree_replay(m, r);
    }
    if (m->passthrough || m->live == 1) {
        /* one run left: hand over the rest of its block, then its blocks as they come */
        Run *r = &m->runs[m->loser[0]];
        if (!m->passthrough) {
            m->passthrough = 1;
            if (!r->block) return NULL;
            PyObject *rest = PyTuple_GetSlice(r->block, r->pos, PyTuple_GET_SIZE(r->block));
            Py_CLEAR(r->block);
            if (!rest) return NULL;
            PyObject *out = PySequence_List(rest);
            Py_DECREF(rest);
            return out;
        }
        return r->source ? PyIter_Next(r->source) : NULL;
    }
    if (m->live == 0) return NULL;
    PyObject *batch = PyList_New(0);
    if (!batch) return NULL;
    for (;;) {
        Py_ssize_t w = m->loser[0];
        Run *r = &m->runs[w];
        if (!r->block) break;                        /* every run is done */
        if (PyList_Append(batch, r->rec) < 0) { Py_DECREF(batch); return NULL; }
        if (++r->pos == PyTuple_GET_SIZE(r->block)) {
            /* yield before reading the run's next block: one block per run in memory */
            Py_CLEAR(r->block);
            m->refill = w;
            break;
        }
        run_load(r);
        tree_replay(m, w);
    }
    if (PyList_GET_SIZE(batch) == 0) { Py_DECREF(batch); return NULL; }
    return batch;
}

static PyObject *merge_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"runs", "sort_values", NULL};
    PyObject *runs;
    int sort_values;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "Op", kwlist, &runs, &sort_values)) return NULL;
    Merge *m = (Merge *)type->tp_alloc(type, 0);
    if (!m) return NULL;
    Py_INCREF(runs);
    m->sources = runs;
    m->sort_values = sort_values;
    m->refill = -1;
    return (PyObject *)m;
}

static void merge_dealloc(Merge *m) {
    if (m->runs) {
        for (Py_ssize_t i = 0; i < m->k; i++) {
            Py_XDECREF(m->runs[i].source);
            Py_XDECREF(m->runs[i].block);
        }
        PyMem_Free(m->runs);
    }
    PyMem_Free(m->loser);
    Py_XDECREF(m->sources);
    Py_TYPE(m)->tp_free((PyObject *)m);
}

static PyTypeObject MergeType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "mapreduce._core.Merge",
    .tp_basicsize = sizeof(Merge),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Merge(runs, sort_values): stable k-way merge of runs of blocks; yields batches.",
    .tp_new = merge_new,
    .tp_dealloc = (destructor)merge_dealloc,
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = (iternextfunc)merge_next,
};

/* ======================================================================================
 * value_payloads: the reduce loop's batched value decoding (shuffle.decoded_records)
 *
 * For a batch of records, the slices shuffle.decode_slices would cut -- at most
 * max_records values and max_bytes of them, a larger value alone -- each with the bytes
 * codec.decode_values_unchecked would unpack: a msgpack array-32 header, then the values'
 * encodings.  The caller unpacks each with one msgpack call, as in the Python path.
 * ====================================================================================== */
/* One decode slice of a batch from `start`: the values of batch[start:*stop] as one msgpack
 * array (0xDD, a big-endian count, the values' own bytes), where *stop is as far as both
 * bounds allow (the first value always goes in).  Each record is checked as it is reached
 * (`who` names the caller in the TypeError); NULL on an error.  value_payloads cuts a
 * whole batch with it, GroupBy one slice at a time. */
static PyObject *value_slice(PyObject *batch, Py_ssize_t start, Py_ssize_t max_records,
                             Py_ssize_t max_bytes, const char *who, Py_ssize_t *stop_out) {
    Py_ssize_t n = PyList_GET_SIZE(batch), stop = start, bytes = 0;
    while (stop < n && stop - start < max_records) {
        PyObject *rec = PyList_GET_ITEM(batch, stop);
        if (!is_record(rec)) { bad_record(who, rec); return NULL; }
        Py_ssize_t len = PyBytes_GET_SIZE(PyTuple_GET_ITEM(rec, 1));
        if (stop > start && bytes + len > max_bytes) break;
        bytes += len;
        stop++;
    }
    PyObject *data = PyBytes_FromStringAndSize(NULL, 5 + bytes);
    if (!data) return NULL;
    unsigned char *q = (unsigned char *)PyBytes_AS_STRING(data);
    uint32_t count = (uint32_t)(stop - start);
    q[0] = 0xDD; q[1] = (unsigned char)(count >> 24); q[2] = (unsigned char)(count >> 16);
    q[3] = (unsigned char)(count >> 8); q[4] = (unsigned char)count;
    q += 5;
    for (Py_ssize_t i = start; i < stop; i++) {   /* no Python code ran since the checks */
        PyObject *v = PyTuple_GET_ITEM(PyList_GET_ITEM(batch, i), 1);
        memcpy(q, PyBytes_AS_STRING(v), PyBytes_GET_SIZE(v));
        q += PyBytes_GET_SIZE(v);
    }
    *stop_out = stop;
    return data;
}

static PyObject *core_value_payloads(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3 || !PyList_CheckExact(args[0])) {
        PyErr_SetString(PyExc_TypeError, "value_payloads(batch: list, max_records, max_bytes)");
        return NULL;
    }
    PyObject *batch = args[0];
    Py_ssize_t max_records = PyLong_AsSsize_t(args[1]), max_bytes = PyLong_AsSsize_t(args[2]);
    if (PyErr_Occurred()) return NULL;
    if (max_records < 1) max_records = 1;
    Py_ssize_t n = PyList_GET_SIZE(batch);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *rec = PyList_GET_ITEM(batch, i);
        if (!is_record(rec)) { bad_record("value_payloads", rec); return NULL; }
    }
    PyObject *out = PyList_New(0);
    if (!out) return NULL;
    Py_ssize_t start = 0;
    while (start < n) {
        Py_ssize_t stop;
        PyObject *data = value_slice(batch, start, max_records, max_bytes, "value_payloads",
                                     &stop);
        if (!data) { Py_DECREF(out); return NULL; }
        PyObject *item = Py_BuildValue("(nnN)", start, stop, data);
        if (!item || PyList_Append(out, item) < 0) { Py_XDECREF(item); Py_DECREF(out); return NULL; }
        Py_DECREF(item);
        start = stop;
    }
    return out;
}

/* ---- C sort buffer ---- */
/* ======================================================================================
 * SortBuffer: the map side's sort buffer (kernel.SortBuffer's records, in C)
 *
 * The Python SortBuffer keeps a list of (key bytes, value bytes) tuples per partition:
 * three objects and a list slot per record, a Python loop iteration to make them, and a
 * tuple per record again when the spill packs them.  Here records live in byte chunks
 * (an arena: [u32 klen][u32 vlen][key][value], records never move) and each partition has
 * an index of (8-byte key prefix, record pointer).  A spill sorts each partition's index
 * (the same stable comparison as sort_records: prefix, then the key bytes, then under
 * SORT_VALUES the value bytes) and packs the records straight into a BlockPacker's
 * pending block: no Python object per record on the disk path.
 *
 * extend(pairs) consumes the mapper's pairs until they end (None) or the buffer is full
 * (True: the caller spills and calls resume(), which continues with the same iterator).
 * Per pair it does what kernel.SortBuffer.extend does inline: the key encoded as
 * encode_key would (encode_into; the delegated cases call the Python reference, which
 * raises the SerializationError), the value packed with msgpack's rules for exact None,
 * bool, int, float, str and bytes (anything else through the Python pack_value, and on a
 * PACK_ERRORS exception through encode_value, which raises the explanatory error), the
 * partition by CRC-32, by bisect over the total order's split points, or by a call of the
 * job's partitioner (an invalid answer goes to the Python SortBuffer.partition, which
 * raises its error).  A pair that is not an exact 2-tuple is handed back to Python as
 * (pair,) -- Python unpacks it (or raises NotAPairError) and adds it with add() -- so the
 * error for a bad pair is the Python path's by construction.
 * ====================================================================================== */
#define SB_CHUNK (1 << 20)      /* arena chunk bytes; a bigger record gets its own chunk */
#define SB_PACK_BLOCKS 64       /* pack_partition returns after this many closed blocks */

typedef struct { uint64_t prefix; const unsigned char *rec; } SBItem;
typedef struct { SBItem *items; Py_ssize_t n, cap; int sorted; } SBPart;

typedef struct {
    PyObject_HEAD
    Py_ssize_t nparts, limit, overhead, size, records;
    int sort_values;
    SBPart *parts;
    unsigned char **chunks;
    Py_ssize_t nchunks, chunkcap;
    unsigned char *cur;          /* free space in the last chunk */
    Py_ssize_t left;
    PyObject *encode_value, *pack_value, *pack_errors, *partitioner, *bad_partition;
    PyObject *points;            /* list of split-point bytes, or NULL */
    PyObject *nobj;              /* nparts as an int, for the partitioner's calls */
    PyObject *it;                /* the iterator of an extend() that stopped when full */
    Py_ssize_t taken;            /* pairs the last extend()/resume() took itself */
    Buf kbuf, vbuf;
} SortBuf;

static inline uint32_t sb_klen(const unsigned char *r) { uint32_t v; memcpy(&v, r, 4); return v; }
static inline uint32_t sb_vlen(const unsigned char *r) { uint32_t v; memcpy(&v, r + 4, 4); return v; }

static inline int sb_cmp_mem(const unsigned char *a, Py_ssize_t la, const unsigned char *b, Py_ssize_t lb) {
    int c = memcmp(a, b, la < lb ? la : lb);
    if (c) return c;
    return (la > lb) - (la < lb);
}

/* sort_records' order: prefix, key bytes, and under SORT_VALUES the value bytes */
static inline int sb_less(const SBItem *a, const SBItem *b, int sort_values) {
    if (a->prefix != b->prefix) return a->prefix < b->prefix;
    const unsigned char *ra = a->rec, *rb = b->rec;
    uint32_t ka = sb_klen(ra), kb = sb_klen(rb);
    int c = sb_cmp_mem(ra + 8, ka, rb + 8, kb);
    if (c || !sort_values) return c < 0;
    return sb_cmp_mem(ra + 8 + ka, sb_vlen(ra), rb + 8 + kb, sb_vlen(rb)) < 0;
}

/* sort_records' stable merge sort, over the index */
DEFINE_STABLE_MERGE_SORT(sb_sort, SBItem, sb_less)

static int sb_sort_part(SBPart *part, int sort_values) {
    if (part->sorted || part->n < 2) { part->sorted = 1; return 0; }
    SBItem *tmp = PyMem_Malloc(part->n * sizeof *tmp);
    if (!tmp) { PyErr_NoMemory(); return -1; }
    sb_sort(part->items, tmp, part->n, sort_values);
    PyMem_Free(tmp);
    part->sorted = 1;
    return 0;
}

/* Append one record to partition p; charge it to the buffer. */
static int sb_append(SortBuf *s, Py_ssize_t p, const unsigned char *k, Py_ssize_t kl,
                     const unsigned char *v, Py_ssize_t vl) {
    if ((uint64_t)kl > 0xFFFFFFFFu || (uint64_t)vl > 0xFFFFFFFFu) {
        PyErr_SetString(PyExc_ValueError, "a key or value of 4 GiB or more cannot be buffered");
        return -1;
    }
    Py_ssize_t need = 8 + kl + vl;
    if (need > s->left) {
        if (s->nchunks == s->chunkcap) {
            Py_ssize_t cap = s->chunkcap ? 2 * s->chunkcap : 16;
            unsigned char **c = PyMem_Realloc(s->chunks, cap * sizeof *c);
            if (!c) { PyErr_NoMemory(); return -1; }
            s->chunks = c; s->chunkcap = cap;
        }
        Py_ssize_t size = need > SB_CHUNK ? need : SB_CHUNK;
        unsigned char *c = PyMem_Malloc(size);
        if (!c) { PyErr_NoMemory(); return -1; }
        s->chunks[s->nchunks++] = c;
        s->cur = c; s->left = size;
    }
    SBPart *part = &s->parts[p];
    if (part->n == part->cap) {
        Py_ssize_t cap = part->cap ? 2 * part->cap : 256;
        SBItem *items = PyMem_Realloc(part->items, cap * sizeof *items);
        if (!items) { PyErr_NoMemory(); return -1; }
        part->items = items; part->cap = cap;
    }
    unsigned char *r = s->cur;
    uint32_t k32 = (uint32_t)kl, v32 = (uint32_t)vl;
    memcpy(r, &k32, 4); memcpy(r + 4, &v32, 4);
    memcpy(r + 8, k, kl);
    if (vl) memcpy(r + 8 + kl, v, vl);
    s->cur += need; s->left -= need;
    part->items[part->n].prefix = prefix_of_mem(k, kl);
    part->items[part->n].rec = r;
    part->n++;
    part->sorted = 0;
    s->records++;
    s->size += kl + vl + s->overhead;
    return 0;
}

static void sb_clear(SortBuf *s) {
    for (Py_ssize_t i = 0; i < s->nchunks; i++) PyMem_Free(s->chunks[i]);
    s->nchunks = 0; s->cur = NULL; s->left = 0;
    for (Py_ssize_t p = 0; p < s->nparts; p++) {
        SBPart *part = &s->parts[p];
        /* keep a modest index; give a big one back (the next spill regrows it) */
        if (part->cap > 65536) { PyMem_Free(part->items); part->items = NULL; part->cap = 0; }
        part->n = 0; part->sorted = 0;
    }
    s->size = 0;
}

/* msgpack (use_bin_type=True) of the exact scalar types, as msgpack-python packs them;
 * DELEGATE for anything else (the Python pack_value decides). */
static int sb_msgpack(Buf *b, PyObject *o) {
    PyTypeObject *t = Py_TYPE(o);
    unsigned char h[9];
    int hl;
    const unsigned char *data = NULL;
    Py_ssize_t n = 0;
    PyObject *tmp = NULL;
    if (t == &PyUnicode_Type) {
        if (PyUnicode_IS_ASCII(o)) {
            data = PyUnicode_1BYTE_DATA(o); n = PyUnicode_GET_LENGTH(o);
        } else {
            tmp = PyUnicode_AsUTF8String(o);
            if (!tmp) { PyErr_Clear(); return DELEGATE; }
            data = (const unsigned char *)PyBytes_AS_STRING(tmp); n = PyBytes_GET_SIZE(tmp);
        }
        if (n < 32) { h[0] = (unsigned char)(0xA0 | n); hl = 1; }
        else if (n < 0x100) { h[0] = 0xD9; h[1] = (unsigned char)n; hl = 2; }
        else if (n < 0x10000) { h[0] = 0xDA; h[1] = (unsigned char)(n >> 8); h[2] = (unsigned char)n; hl = 3; }
        else if ((uint64_t)n <= 0xFFFFFFFFu) {
            h[0] = 0xDB; h[1] = (unsigned char)(n >> 24); h[2] = (unsigned char)(n >> 16);
            h[3] = (unsigned char)(n >> 8); h[4] = (unsigned char)n; hl = 5;
        } else { Py_XDECREF(tmp); return DELEGATE; }
    } else if (t == &PyBytes_Type) {
        data = (const unsigned char *)PyBytes_AS_STRING(o); n = PyBytes_GET_SIZE(o);
        if (n < 0x100) { h[0] = 0xC4; h[1] = (unsigned char)n; hl = 2; }
        else if (n < 0x10000) { h[0] = 0xC5; h[1] = (unsigned char)(n >> 8); h[2] = (unsigned char)n; hl = 3; }
        else if ((uint64_t)n <= 0xFFFFFFFFu) {
            h[0] = 0xC6; h[1] = (unsigned char)(n >> 24); h[2] = (unsigned char)(n >> 16);
            h[3] = (unsigned char)(n >> 8); h[4] = (unsigned char)n; hl = 5;
        } else return DELEGATE;
    } else if (o == Py_None) { h[0] = 0xC0; hl = 1; }
    else if (t == &PyBool_Type) { h[0] = o == Py_True ? 0xC3 : 0xC2; hl = 1; }
    else if (t == &PyLong_Type) {
        int overflow;
        long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
        if (v == -1 && PyErr_Occurred()) { PyErr_Clear(); return DELEGATE; }
        if (overflow) return DELEGATE;   /* beyond int64: uint64 or an error, msgpack decides */
        uint64_t u = (uint64_t)v;
        int w;
        if (v >= 0) {
            if (v < 0x80) { h[0] = (unsigned char)v; hl = 1; w = 0; }
            else if (v < 0x100) { h[0] = 0xCC; w = 1; }
            else if (v < 0x10000) { h[0] = 0xCD; w = 2; }
            else if (v <= 0xFFFFFFFFLL) { h[0] = 0xCE; w = 4; }
            else { h[0] = 0xCF; w = 8; }
        } else {
            if (v >= -32) { h[0] = (unsigned char)(int8_t)v; hl = 1; w = 0; }
            else if (v >= -128) { h[0] = 0xD0; w = 1; }
            else if (v >= -32768) { h[0] = 0xD1; w = 2; }
            else if (v >= -2147483648LL) { h[0] = 0xD2; w = 4; }
            else { h[0] = 0xD3; w = 8; }
        }
        if (w) { for (int i = 0; i < w; i++) h[1 + i] = (unsigned char)(u >> (8 * (w - 1 - i))); hl = 1 + w; }
    } else if (t == &PyFloat_Type) {
        double d = PyFloat_AS_DOUBLE(o);
        uint64_t u;
        memcpy(&u, &d, 8);
        h[0] = 0xCB;
        for (int i = 0; i < 8; i++) h[1 + i] = (unsigned char)(u >> (8 * (7 - i)));
        hl = 9;
    } else return DELEGATE;
    int r = buf_put(b, h, hl);
    if (r == 0 && n) r = buf_put(b, data, n);
    Py_XDECREF(tmp);
    return r;
}

/* bytes returned by a Python encoder, into b */
static int sb_put_result(Buf *b, PyObject *res, const char *what) {
    if (!res) return -1;
    if (!PyBytes_Check(res)) {
        PyErr_Format(PyExc_TypeError, "%s returned %.100s, not bytes", what, Py_TYPE(res)->tp_name);
        Py_DECREF(res);
        return -1;
    }
    int r = buf_put(b, PyBytes_AS_STRING(res), PyBytes_GET_SIZE(res));
    Py_DECREF(res);
    return r;
}

/* encode_key(key) into b: C, or the reference for what C delegates */
static int sb_encode_key(Buf *b, PyObject *key) {
    b->len = 0;
    int r = encode_into(b, key, 0, 0);
    if (r <= 0) return r;
    b->len = 0;
    return sb_put_result(b, delegate(ref_encode_key, key), "encode_key");
}

static int sb_encode_value(SortBuf *s, PyObject *value) {
    Buf *b = &s->vbuf;
    b->len = 0;
    if (s->sort_values) return sb_encode_key(b, value);
    int r = sb_msgpack(b, value);
    if (r <= 0) return r;
    b->len = 0;
    PyObject *res = PyObject_CallOneArg(s->pack_value, value);
    if (!res) {
        if (!PyErr_ExceptionMatches(s->pack_errors)) return -1;
        PyErr_Clear();
        res = PyObject_CallOneArg(s->encode_value, value);   /* raises the explanation */
    }
    return sb_put_result(b, res, "pack_value");
}

/* The partition of key bytes kb (key: the key object, for a job's partitioner). */
static Py_ssize_t sb_partition(SortBuf *s, const unsigned char *kb, Py_ssize_t kl, PyObject *key) {
    if (s->points) {
        Py_ssize_t lo = 0, hi = PyList_GET_SIZE(s->points);
        while (lo < hi) {          /* bisect_right */
            Py_ssize_t mid = (lo + hi) / 2;
            PyObject *pt = PyList_GET_ITEM(s->points, mid);
            if (sb_cmp_mem(kb, kl, (const unsigned char *)PyBytes_AS_STRING(pt), PyBytes_GET_SIZE(pt)) < 0) hi = mid;
            else lo = mid + 1;
        }
        return lo;
    }
    if (s->partitioner == Py_None) return (Py_ssize_t)(crc32_of(kb, kl) % (uint64_t)s->nparts);
    PyObject *args[2] = {key, s->nobj};
    PyObject *res = PyObject_Vectorcall(s->partitioner, args, 2, NULL);
    if (!res) return -1;
    for (int attempt = 0; ; attempt++) {
        if (Py_IS_TYPE(res, &PyLong_Type)) {
            int overflow;
            long long p = PyLong_AsLongLongAndOverflow(res, &overflow);
            if (!overflow && !(p == -1 && PyErr_Occurred()) && p >= 0 && p < s->nparts) {
                Py_DECREF(res);
                return (Py_ssize_t)p;
            }
            PyErr_Clear();
        }
        Py_DECREF(res);
        if (attempt) {
            PyErr_SetString(PyExc_ValueError, "SortBuffer.partition returned an invalid partition");
            return -1;
        }
        /* not a valid partition: the Python SortBuffer.partition raises the explanation */
        PyObject *kbo = PyBytes_FromStringAndSize((const char *)kb, kl);
        if (!kbo) return -1;
        PyObject *a2[2] = {kbo, key};
        res = PyObject_Vectorcall(s->bad_partition, a2, 2, NULL);
        Py_DECREF(kbo);
        if (!res) return -1;
    }
}

/* The loop of extend()/resume(): None at the end, True when full, (pair,) for Python. */
static PyObject *sb_run(SortBuf *s, PyObject *it) {
    PyObject *pair;
    iternextfunc next = Py_TYPE(it)->tp_iternext;
    s->taken = 0;
    while ((pair = next(it)) != NULL) {
        if (!(PyTuple_CheckExact(pair) && PyTuple_GET_SIZE(pair) == 2)) {
            Py_INCREF(it);
            Py_XSETREF(s->it, it);
            PyObject *out = PyTuple_Pack(1, pair);
            Py_DECREF(pair);
            return out;
        }
        PyObject *key = PyTuple_GET_ITEM(pair, 0), *value = PyTuple_GET_ITEM(pair, 1);
        if (sb_encode_key(&s->kbuf, key) < 0 || sb_encode_value(s, value) < 0) goto fail;
        Py_ssize_t p = sb_partition(s, s->kbuf.p, s->kbuf.len, key);
        if (p < 0) goto fail;
        if (sb_append(s, p, s->kbuf.p, s->kbuf.len, s->vbuf.p, s->vbuf.len) < 0) goto fail;
        Py_DECREF(pair);
        s->taken++;
        if (s->size >= s->limit) {
            Py_INCREF(it);
            Py_XSETREF(s->it, it);
            Py_RETURN_TRUE;
        }
    }
    if (PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_StopIteration)) return NULL;
        PyErr_Clear();
    }
    Py_CLEAR(s->it);
    Py_RETURN_NONE;
fail:
    Py_DECREF(pair);
    return NULL;
}

static PyObject *sb_extend(SortBuf *s, PyObject *pairs) {
    /* not iterable at all: the caller raises NotAPairError (an error raised by the
     * object's own __iter__ propagates, as from a Python for loop) */
    getiterfunc get = Py_TYPE(pairs)->tp_iter;
    if (!get && !PySequence_Check(pairs)) return Py_NewRef(Py_False);
    PyObject *it = get ? get(pairs) : PySeqIter_New(pairs);
    if (!it) return NULL;
    if (!PyIter_Check(it)) {       /* __iter__ returned a non-iterator: no pairs either */
        Py_DECREF(it);
        return Py_NewRef(Py_False);
    }
    PyObject *r = sb_run(s, it);
    Py_DECREF(it);
    return r;
}

static PyObject *sb_resume(SortBuf *s, PyObject *unused) {
    if (!s->it) Py_RETURN_NONE;
    PyObject *it = s->it;
    s->it = NULL;
    PyObject *r = sb_run(s, it);
    Py_DECREF(it);
    return r;
}

/* add(kb, vb, partition) -> full: one encoded record (the Python path's pairs) */
static PyObject *sb_add(SortBuf *s, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3 || !PyBytes_Check(args[0]) || !PyBytes_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "add(key_bytes, value_bytes, partition)");
        return NULL;
    }
    Py_ssize_t p = PyLong_AsSsize_t(args[2]);
    if (p == -1 && PyErr_Occurred()) return NULL;
    if (p < 0 || p >= s->nparts) {
        PyErr_Format(PyExc_ValueError, "partition %zd out of range", p);
        return NULL;
    }
    if (sb_append(s, p, (const unsigned char *)PyBytes_AS_STRING(args[0]), PyBytes_GET_SIZE(args[0]),
                  (const unsigned char *)PyBytes_AS_STRING(args[1]), PyBytes_GET_SIZE(args[1])) < 0)
        return NULL;
    return PyBool_FromLong(s->size >= s->limit);
}

static int sb_check_part(SortBuf *s, PyObject *arg, Py_ssize_t *p) {
    *p = PyLong_AsSsize_t(arg);
    if (*p == -1 && PyErr_Occurred()) return -1;
    if (*p < 0 || *p >= s->nparts) {
        PyErr_Format(PyExc_ValueError, "partition %zd out of range", *p);
        return -1;
    }
    return 0;
}

/* count(p): records buffered in partition p */
static PyObject *sb_count(SortBuf *s, PyObject *arg) {
    Py_ssize_t p;
    if (sb_check_part(s, arg, &p) < 0) return NULL;
    return PyLong_FromSsize_t(s->parts[p].n);
}

/* pack_partition(p, packer, start) -> (closed blocks, next): partition p sorted, its
 * records from index start on packed into packer (a BlockPacker), up to SB_PACK_BLOCKS
 * closed blocks at a time; next == count(p) when all are in (the last block stays
 * pending in the packer, as after add_pairs). */
static PyObject *sb_pack_partition(SortBuf *s, PyObject *const *args, Py_ssize_t nargs) {
    Py_ssize_t p, start;
    if (nargs != 3 || !Py_IS_TYPE(args[1], &PackerType)) {
        PyErr_SetString(PyExc_TypeError, "pack_partition(partition, packer: BlockPacker, start)");
        return NULL;
    }
    if (sb_check_part(s, args[0], &p) < 0) return NULL;
    start = PyLong_AsSsize_t(args[2]);
    if (start == -1 && PyErr_Occurred()) return NULL;
    SBPart *part = &s->parts[p];
    if (start < 0 || start > part->n) {
        PyErr_SetString(PyExc_ValueError, "start out of range");
        return NULL;
    }
    if (sb_sort_part(part, s->sort_values) < 0) return NULL;
    Packer *pk = (Packer *)args[1];
    PyObject *done = PyList_New(0);
    if (!done) return NULL;
    Py_ssize_t i = start;
    for (; i < part->n && PyList_GET_SIZE(done) < SB_PACK_BLOCKS; i++) {
        const unsigned char *r = part->items[i].rec;
        uint32_t kl = sb_klen(r), vl = sb_vlen(r);
        /* put_bin's bytes for the key and the value (lengths < 2**32 by construction) */
        const unsigned char *parts2[2] = {r + 8, r + 8 + kl};
        uint32_t lens[2] = {kl, vl};
        for (int j = 0; j < 2; j++) {
            uint32_t n = lens[j];
            unsigned char h[5];
            int hl;
            if (n < 0x100) { h[0] = 0xC4; h[1] = (unsigned char)n; hl = 2; }
            else if (n < 0x10000) { h[0] = 0xC5; h[1] = (unsigned char)(n >> 8); h[2] = (unsigned char)n; hl = 3; }
            else {
                h[0] = 0xC6; h[1] = (unsigned char)(n >> 24); h[2] = (unsigned char)(n >> 16);
                h[3] = (unsigned char)(n >> 8); h[4] = (unsigned char)n; hl = 5;
            }
            if (buf_reserve(&pk->buf, hl + n) < 0) goto fail;
            memcpy(pk->buf.p + pk->buf.len, h, hl);
            if (n) memcpy(pk->buf.p + pk->buf.len + hl, parts2[j], n);
            pk->buf.len += hl + n;
        }
        pk->records++;
        pk->accounted += (Py_ssize_t)kl + vl + RECORD_OVERHEAD;
        if (pk->accounted >= pk->limit) {
            PyObject *block = packer_take(pk);
            if (!block) goto fail;
            int rc = PyList_Append(done, block);
            Py_DECREF(block);
            if (rc < 0) goto fail;
        }
    }
    return Py_BuildValue("(Nn)", done, i);
fail:
    Py_DECREF(done);
    return NULL;
}

/* partitions() -> [[(kb, vb), ...] per partition], each sorted (memory mode, combiner) */
static PyObject *sb_partitions(SortBuf *s, PyObject *unused) {
    PyObject *out = PyList_New(s->nparts);
    if (!out) return NULL;
    for (Py_ssize_t p = 0; p < s->nparts; p++) {
        SBPart *part = &s->parts[p];
        if (sb_sort_part(part, s->sort_values) < 0) goto fail;
        PyObject *lst = PyList_New(part->n);
        if (!lst) goto fail;
        PyList_SET_ITEM(out, p, lst);
        for (Py_ssize_t i = 0; i < part->n; i++) {
            const unsigned char *r = part->items[i].rec;
            uint32_t kl = sb_klen(r), vl = sb_vlen(r);
            PyObject *rec = Py_BuildValue("(y#y#)", r + 8, (Py_ssize_t)kl, r + 8 + kl, (Py_ssize_t)vl);
            if (!rec) goto fail;
            PyList_SET_ITEM(lst, i, rec);
        }
    }
    return out;
fail:
    Py_DECREF(out);
    return NULL;
}

static PyObject *sb_clear_py(SortBuf *s, PyObject *unused) {
    sb_clear(s);
    Py_RETURN_NONE;
}

static int sb_traverse(SortBuf *s, visitproc visit, void *arg) {
    Py_VISIT(s->encode_value); Py_VISIT(s->pack_value); Py_VISIT(s->pack_errors);
    Py_VISIT(s->partitioner); Py_VISIT(s->bad_partition); Py_VISIT(s->points);
    Py_VISIT(s->it);
    return 0;
}

static int sb_gc_clear(SortBuf *s) {
    Py_CLEAR(s->encode_value); Py_CLEAR(s->pack_value); Py_CLEAR(s->pack_errors);
    Py_CLEAR(s->partitioner); Py_CLEAR(s->bad_partition); Py_CLEAR(s->points);
    Py_CLEAR(s->it);
    return 0;
}

static void sb_dealloc(SortBuf *s) {
    PyObject_GC_UnTrack(s);
    sb_gc_clear(s);
    Py_CLEAR(s->nobj);
    if (s->parts) {
        sb_clear(s);
        for (Py_ssize_t p = 0; p < s->nparts; p++) PyMem_Free(s->parts[p].items);
        PyMem_Free(s->parts);
    }
    PyMem_Free(s->chunks);
    buf_free(&s->kbuf); buf_free(&s->vbuf);
    Py_TYPE(s)->tp_free((PyObject *)s);
}

static PyObject *sb_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"num_partitions", "limit", "sort_values", "record_overhead",
                             "encode_value", "pack_value", "pack_errors", "partitioner",
                             "split_points", "bad_partition", NULL};
    Py_ssize_t nparts, limit, overhead;
    int sort_values;
    PyObject *enc, *pack, *errs, *part, *points, *bad;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "nnpnOOOOOO", kwlist, &nparts, &limit,
                                     &sort_values, &overhead, &enc, &pack, &errs, &part,
                                     &points, &bad))
        return NULL;
    if (nparts < 1 || limit < 1 || overhead < 0) {
        PyErr_SetString(PyExc_ValueError, "SortBuffer: num_partitions and limit must be positive");
        return NULL;
    }
    if (points != Py_None) {
        if (!PyList_CheckExact(points)) { PyErr_SetString(PyExc_TypeError, "split_points must be a list of bytes"); return NULL; }
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(points); i++)
            if (!PyBytes_CheckExact(PyList_GET_ITEM(points, i))) {
                PyErr_SetString(PyExc_TypeError, "split_points must be a list of bytes");
                return NULL;
            }
    }
    SortBuf *s = (SortBuf *)type->tp_alloc(type, 0);
    if (!s) return NULL;
    buf_init(&s->kbuf); buf_init(&s->vbuf);
    s->nparts = nparts; s->limit = limit; s->overhead = overhead; s->sort_values = sort_values;
    s->parts = PyMem_Calloc(nparts, sizeof *s->parts);
    s->nobj = PyLong_FromSsize_t(nparts);
    if (!s->parts || !s->nobj) { Py_DECREF(s); return PyErr_NoMemory(); }
    s->encode_value = Py_NewRef(enc); s->pack_value = Py_NewRef(pack);
    s->pack_errors = Py_NewRef(errs); s->partitioner = Py_NewRef(part);
    s->bad_partition = Py_NewRef(bad);
    s->points = points == Py_None ? NULL : Py_NewRef(points);
    return (PyObject *)s;
}

static PyObject *sb_get_records(SortBuf *s, void *c) { return PyLong_FromSsize_t(s->records); }
static PyObject *sb_get_size(SortBuf *s, void *c) { return PyLong_FromSsize_t(s->size); }
static PyObject *sb_get_taken(SortBuf *s, void *c) { return PyLong_FromSsize_t(s->taken); }

static PyMethodDef sb_methods[] = {
    {"extend", (PyCFunction)sb_extend, METH_O,
     "extend(pairs) -> None (all taken), True (full: spill, then resume()), False (pairs "
     "is not iterable) or (pair,) (not an exact 2-tuple: Python adds it, then resume())."},
    {"resume", (PyCFunction)sb_resume, METH_NOARGS, "Continue the iterator of the last extend()."},
    {"add", (PyCFunction)(void (*)(void))sb_add, METH_FASTCALL,
     "add(key_bytes, value_bytes, partition) -> full."},
    {"count", (PyCFunction)sb_count, METH_O, "count(partition): its buffered records."},
    {"pack_partition", (PyCFunction)(void (*)(void))sb_pack_partition, METH_FASTCALL,
     "pack_partition(p, packer, start) -> (closed blocks, next): sorted records into a BlockPacker."},
    {"partitions", (PyCFunction)sb_partitions, METH_NOARGS,
     "The buffered records, sorted, as a list of [(key bytes, value bytes)] per partition."},
    {"clear", (PyCFunction)sb_clear_py, METH_NOARGS, "Drop every buffered record."},
    {NULL}
};

static PyGetSetDef sb_getset[] = {
    {"records", (getter)sb_get_records, NULL, "records taken since the buffer was made", NULL},
    {"size", (getter)sb_get_size, NULL, "bytes charged since the last clear()", NULL},
    {"taken", (getter)sb_get_taken, NULL, "pairs the last extend() or resume() took itself", NULL},
    {NULL}
};

static PyTypeObject SortBufType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "mapreduce._core.SortBuffer",
    .tp_basicsize = sizeof(SortBuf),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "SortBuffer(num_partitions, limit, sort_values, record_overhead, encode_value, "
              "pack_value, pack_errors, partitioner, split_points, bad_partition): the map "
              "side's sort buffer (see kernel.NativeSortBuffer).",
    .tp_new = sb_new,
    .tp_dealloc = (destructor)sb_dealloc,
    .tp_traverse = (traverseproc)sb_traverse,
    .tp_clear = (inquiry)sb_gc_clear,
    .tp_methods = sb_methods,
    .tp_getset = sb_getset,
};

/* raw_value_lines(batch, start, last_key) -> (lines, stop, new_groups, last_key)
 *
 * The identity reducer's output under OUTPUT_PROTOCOL raw_value, straight from merged
 * records: for batch[start:], while a record's value is a msgpack str of ASCII text (what
 * TeraSort's lines are), its text and a newline are appended to `lines` -- the bytes the
 * raw_value writer gives that value.  Stops at the first other value (stop < len(batch)):
 * Python decodes and writes that one record as before (non-ASCII text, bytes, anything its
 * writer refuses, with the reference's error), then calls again from stop + 1.  Key groups
 * are counted by comparing key bytes with the previous record's (last_key: the last key
 * of the previous call, or None). */
static PyObject *core_raw_value_lines(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3 || !PyList_CheckExact(args[0]) || (args[2] != Py_None && !PyBytes_CheckExact(args[2]))) {
        PyErr_SetString(PyExc_TypeError, "raw_value_lines(batch: list, start: int, last_key: bytes | None)");
        return NULL;
    }
    PyObject *batch = args[0], *last = args[2];
    Py_ssize_t start = PyLong_AsSsize_t(args[1]);
    if (start == -1 && PyErr_Occurred()) return NULL;
    Py_ssize_t n = PyList_GET_SIZE(batch);
    if (start < 0 || start > n) { PyErr_SetString(PyExc_ValueError, "start out of range"); return NULL; }
    Buf b;
    buf_init(&b);
    Py_ssize_t i = start, groups = 0;
    for (; i < n; i++) {
        PyObject *rec = PyList_GET_ITEM(batch, i);
        if (!is_record(rec)) { buf_free(&b); bad_record("raw_value_lines", rec); return NULL; }
        PyObject *kb = PyTuple_GET_ITEM(rec, 0), *vb = PyTuple_GET_ITEM(rec, 1);
        const unsigned char *v = (const unsigned char *)PyBytes_AS_STRING(vb);
        Py_ssize_t vl = PyBytes_GET_SIZE(vb), hl, len;
        if (vl < 1) break;
        if ((v[0] & 0xE0) == 0xA0) { hl = 1; len = v[0] & 0x1F; }
        else if (v[0] == 0xD9 && vl >= 2) { hl = 2; len = v[1]; }
        else if (v[0] == 0xDA && vl >= 3) { hl = 3; len = ((Py_ssize_t)v[1] << 8) | v[2]; }
        else if (v[0] == 0xDB && vl >= 5) {
            hl = 5; len = ((Py_ssize_t)v[1] << 24) | ((Py_ssize_t)v[2] << 16) | ((Py_ssize_t)v[3] << 8) | v[4];
        } else break;
        if (hl + len != vl) break;
        const unsigned char *s = v + hl;
        int ascii = 1;
        for (Py_ssize_t j = 0; j < len; j++) if (s[j] & 0x80) { ascii = 0; break; }
        if (!ascii) break;
        if (last == Py_None || (last != kb && cmp_bytes(last, kb) != 0)) groups++;
        last = kb;
        if (buf_reserve(&b, len + 1) < 0) { buf_free(&b); return NULL; }
        memcpy(b.p + b.len, s, len);
        b.p[b.len + len] = '\n';
        b.len += len + 1;
    }
    PyObject *out = Py_BuildValue("(y#nnO)", (const char *)b.p, b.len, i, groups, last);
    buf_free(&b);
    return out;
}

/* ---- combining buffer / grouping ---- */
/* ======================================================================================
 * Group: one distinct key's buffered values (CombiningBuffer.groups' dict values)
 *
 * Group(kb, value) -> a group holding the key's encoding `kb` and one value;
 * g.append(value); len(g) (the values held); g.kb; g.values() -> an iterator over the
 * values, in the order they were appended, each the very object appended.
 *
 * A key's values are most often one and the same object over and over (word count's 1,
 * any small int, True, an interned str): while every value appended is the first one
 * (identity, `is`), the group keeps that object and a count, and values() is
 * itertools.repeat(value, count) -- no list, no 8-byte slot and no list growth per value.
 * The first different value turns it into a list ([value] * count + the new one), and
 * values() iterates that list.  Either way values() yields exactly the objects a list
 * of every appended value would hold, in order, so the combiner sees what it saw before;
 * it is a single-pass iterator, as the list_iterator it replaced was.
 *
 * The buffer's accounting does not change with the representation (VALUE_SLOT_SIZE per
 * value, as before), so spills fall where they fell and the Python core (kernel.PyGroup,
 * a list subclass with the same interface and no compaction) spills the same bytes.
 *
 * Not a GC type, as the untracked group lists before it (see "The cyclic GC" below):
 * nothing a group holds refers back to it.  The list a group turns into is untracked too.
 * ====================================================================================== */
typedef struct {
    PyObject_HEAD
    PyObject *kb;       /* the key's encoding (bytes) */
    PyObject *value;    /* compact: the value held `count` times; NULL once a list */
    PyObject *list;     /* NULL while compact; then every value, in order */
    Py_ssize_t count;   /* values held */
} Group;

static PyTypeObject GroupType;
static PyObject *itertools_repeat = NULL;   /* itertools.repeat, looked up at import */

static Group *group_new_with(PyObject *kb, PyObject *value) {
    Group *g = PyObject_New(Group, &GroupType);
    if (g == NULL) return NULL;
    Py_INCREF(kb);
    g->kb = kb;
    Py_INCREF(value);
    g->value = value;
    g->list = NULL;
    g->count = 1;
    return g;
}

/* 0 or -1 (an exception set) */
static int group_add(Group *g, PyObject *value) {
    if (g->list == NULL) {
        if (value == g->value) { g->count++; return 0; }
        PyObject *list = PyList_New(g->count);   /* the first different value: a list */
        if (list == NULL) return -1;
        PyObject_GC_UnTrack(list);   /* as the group itself: see above */
        for (Py_ssize_t i = 0; i < g->count; i++) {
            Py_INCREF(g->value);
            PyList_SET_ITEM(list, i, g->value);
        }
        if (PyList_Append(list, value) < 0) { Py_DECREF(list); return -1; }
        Py_CLEAR(g->value);
        g->list = list;
        g->count++;
        return 0;
    }
    if (PyList_Append(g->list, value) < 0) return -1;
    g->count++;
    return 0;
}

static PyObject *group_tp_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    PyObject *kb, *value;
    if (kwds != NULL && PyDict_GET_SIZE(kwds) != 0) {
        PyErr_SetString(PyExc_TypeError, "Group(kb, value) takes no keyword arguments");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "SO:Group", &kb, &value)) return NULL;
    return (PyObject *)group_new_with(kb, value);
}

static void group_dealloc(Group *g) {
    Py_XDECREF(g->kb);
    Py_XDECREF(g->value);
    Py_XDECREF(g->list);
    PyObject_Free(g);
}

static PyObject *group_append(Group *g, PyObject *value) {
    if (group_add(g, value) < 0) return NULL;
    Py_RETURN_NONE;
}

static PyObject *group_values(Group *g, PyObject *unused) {
    if (g->list != NULL) return PyObject_GetIter(g->list);
    PyObject *n = PyLong_FromSsize_t(g->count);
    if (n == NULL) return NULL;
    PyObject *call_args[2] = {g->value, n};
    PyObject *it = PyObject_Vectorcall(itertools_repeat, call_args, 2, NULL);
    Py_DECREF(n);
    return it;
}

static Py_ssize_t group_len(Group *g) { return g->count; }

static PyObject *group_get_kb(Group *g, void *c) { Py_INCREF(g->kb); return g->kb; }

static PyObject *group_repr(Group *g) {
    if (g->list != NULL) return PyUnicode_FromFormat("Group(%R, %R)", g->kb, g->list);
    return PyUnicode_FromFormat("Group(%R, [%R] * %zd)", g->kb, g->value, g->count);
}

static PyMethodDef group_methods[] = {
    {"append", (PyCFunction)group_append, METH_O, "append(value): one more value."},
    {"values", (PyCFunction)group_values, METH_NOARGS,
     "values() -> an iterator over the values in order (itertools.repeat while they are "
     "all one object)."},
    {NULL}
};

static PyGetSetDef group_getset[] = {
    {"kb", (getter)group_get_kb, NULL, "the key's encoding", NULL},
    {NULL}
};

static PySequenceMethods group_as_sequence = {.sq_length = (lenfunc)group_len};

static PyTypeObject GroupType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "mapreduce._core.Group",
    .tp_basicsize = sizeof(Group),
    .tp_dealloc = (destructor)group_dealloc,
    .tp_repr = (reprfunc)group_repr,
    .tp_as_sequence = &group_as_sequence,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "One key's buffered values in a CombiningBuffer (see _core.c, \"Group\").",
    .tp_methods = group_methods,
    .tp_getset = group_getset,
    .tp_new = group_tp_new,
};

/* ======================================================================================
 * group_values: CombiningBuffer.extend's per-pair path for the common pair (kernel.py)
 *
 * group_values(groups, iterator, size, limit, end, full) -> (taken, size, item)
 *
 * Pulls pairs from `iterator` (tp_iternext: no Python frame of ours per pair) and does
 * for each what CombiningBuffer._add_grouped does, while the pair is the common case: an
 * exact 2-tuple whose value is an exact int in -5..256 (a shared small int: nothing to
 * snapshot, VALUE_SLOT_SIZE to account) and whose key already has a Group in `groups`
 * (one that is not a Group -- kernel.PyGroup -- is handed back) or is an ASCII exact str
 * (a new Group(key bytes, value), its key encoded as encode_key does, charged len +
 * GROUP_OVERHEAD).  `size` is the buffer's accounted size, returned
 * updated; `taken` the values appended (records).  It returns at once, handing back to
 * Python:
 *   - the first item that is anything else (another key or value type, an unhashable
 *     key, a non-tuple), untouched, as `item` -- the Python path then treats it exactly
 *     as it always did (its errors, its accounting);
 *   - `full` when the pair just taken brought size to `limit` or beyond: the caller
 *     spills, as _add_grouped does right after such a pair;
 *   - `end` at the end of the iterator.
 * An exception from the iterator (the mapper's own) or from a key's __hash__/__eq__
 * propagates; the values appended by this call are then not counted (the task fails).
 * The Python twin is kernel.py_group_values; tests/test_combining_core.py compares them.
 *
 * The cyclic GC: a Group is not a GC type (and the list it may turn into is untracked).
 * When groups were tracked lists, a buffer held millions of values in ~100,000 of them,
 * and every full collection (several per spill, triggered by the new lists themselves)
 * walked every value: about 12% of a word count's map CPU.  An untracked group
 * cannot be part of a collected cycle, and nothing it holds can form one through it: it
 * holds its key bytes, shared small ints, immutable scalars and fresh msgpack snapshots,
 * none of which refers back to it.  A tracked object in it only looks externally
 * referenced to the GC, so it is kept alive, never freed early.
 * ====================================================================================== */
#define VALUE_SLOT_SIZE 9     /* kernel.VALUE_SLOT_SIZE (checked by the tests) */
#define GROUP_OVERHEAD 200    /* kernel.GROUP_OVERHEAD (checked by the tests) */

/* 1: taken (*size updated); 0: hand back; -1: error */
static int take_pair(PyObject *groups, PyObject *item, Py_ssize_t *size) {
    if (!PyTuple_CheckExact(item) || PyTuple_GET_SIZE(item) != 2) return 0;
    PyObject *key = PyTuple_GET_ITEM(item, 0), *value = PyTuple_GET_ITEM(item, 1);
    if (!PyLong_CheckExact(value)) return 0;
    int overflow;
    long v = PyLong_AsLongAndOverflow(value, &overflow);
    if (overflow || v < -5 || v > 256) return 0;
    PyObject *group = PyDict_GetItemWithError(groups, key);
    if (group != NULL) {
        if (Py_TYPE(group) != &GroupType) return 0;
        Group *g = (Group *)group;
        if (g->value == value) g->count++;   /* the common case: the same small int again */
        else {
            /* group_add allocates, which can run the cyclic GC and a finalizer that drops
             * the dict's reference to this group: hold one of our own meanwhile. */
            Py_INCREF(g);
            int failed = group_add(g, value);
            Py_DECREF(g);
            if (failed < 0) return -1;
        }
        *size += VALUE_SLOT_SIZE;
        return 1;
    }
    if (PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_TypeError)) return -1;
        PyErr_Clear();   /* unhashable (a list key): the Python path canonicalises it */
        return 0;
    }
    if (!PyUnicode_CheckExact(key) || !PyUnicode_IS_ASCII(key)) return 0;
    PyObject *kb = core_encode_key(NULL, key);   /* ASCII str: never delegated */
    if (kb == NULL) return -1;
    Py_ssize_t klen = PyBytes_GET_SIZE(kb);
    group = (PyObject *)group_new_with(kb, value);
    Py_DECREF(kb);
    if (group == NULL) return -1;
    int failed = PyDict_SetItem(groups, key, group);
    Py_DECREF(group);
    if (failed) return -1;
    *size += VALUE_SLOT_SIZE + klen + GROUP_OVERHEAD;
    return 1;
}

static PyObject *core_group_values(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError, "group_values(groups, iterator, size, limit, end, full)");
        return NULL;
    }
    PyObject *groups = args[0], *it = args[1], *end = args[4], *full = args[5];
    if (!PyDict_CheckExact(groups) || !PyIter_Check(it)) {
        PyErr_SetString(PyExc_TypeError, "group_values: expected a dict and an iterator");
        return NULL;
    }
    Py_ssize_t size = PyLong_AsSsize_t(args[2]), limit = PyLong_AsSsize_t(args[3]);
    if ((size == -1 || limit == -1) && PyErr_Occurred()) return NULL;
    iternextfunc next = Py_TYPE(it)->tp_iternext;
    Py_ssize_t taken = 0;
    PyObject *item;
    while ((item = next(it)) != NULL) {
        int r = take_pair(groups, item, &size);
        if (r < 0) { Py_DECREF(item); return NULL; }
        if (r == 0) return Py_BuildValue("(nnN)", taken, size, item);
        Py_DECREF(item);
        taken++;
        if (size >= limit) return Py_BuildValue("(nnO)", taken, size, full);
    }
    if (PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_StopIteration)) return NULL;
        PyErr_Clear();
    }
    return Py_BuildValue("(nnO)", taken, size, end);
}

/* ======================================================================================
 * map_group: run_map's loop for a step with a combiner (CombiningBuffer.map_records)
 *
 * map_group(records, mapper, groups, size, limit, progress, end, full)
 *     -> (index, taken, size, out, item)
 *
 * For each record (an exact (key, value) tuple) of the iterator `records` it calls
 * `mapper(key, value)` and, when the result is a generator, takes its pairs as
 * group_values does.  It returns at once, handing back to Python, on:
 *   - a pair group_values would hand back: out = the generator, item = that pair (Python
 *     treats it, then extends with the rest of `out`);
 *   - a full buffer: out = the generator, item = `full` (Python spills, then extends
 *     with the rest of `out`);
 *   - a mapper result that is neither None nor a generator: out = it, item = `end`
 *     (Python extends with it, which raises the right error for a non-iterable);
 *   - a record that is not an exact 2-tuple: out = None, item = the record;
 *   - the end of `records`: out = None, item = `end`.
 * `index` is the index of the last record whose mapper was called (progress[0] on entry
 * is the one before the first).  progress[0] is set to each record's index before its
 * mapper is called, so on an exception (the mapper's, its generator's, the input's) it
 * names the record at fault, and a task that times out can say where it is.
 * The Python twin is kernel.py_map_group.
 * ====================================================================================== */
static PyObject *core_map_group(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 8) {
        PyErr_SetString(PyExc_TypeError,
                        "map_group(records, mapper, groups, size, limit, progress, end, full)");
        return NULL;
    }
    PyObject *records = args[0], *mapper = args[1], *groups = args[2];
    PyObject *progress = args[5], *end = args[6], *full = args[7];
    if (!PyIter_Check(records) || !PyDict_CheckExact(groups) || !PyList_CheckExact(progress)
            || PyList_GET_SIZE(progress) < 1) {
        PyErr_SetString(PyExc_TypeError,
                        "map_group: expected an iterator, a dict and a non-empty list");
        return NULL;
    }
    Py_ssize_t size = PyLong_AsSsize_t(args[3]), limit = PyLong_AsSsize_t(args[4]);
    if ((size == -1 || limit == -1) && PyErr_Occurred()) return NULL;
    Py_ssize_t index = PyLong_AsSsize_t(PyList_GET_ITEM(progress, 0));
    if (index == -1 && PyErr_Occurred()) return NULL;
    iternextfunc next_record = Py_TYPE(records)->tp_iternext;
    Py_ssize_t taken = 0;
    PyObject *rec;
    while ((rec = next_record(records)) != NULL) {
        if (!PyTuple_CheckExact(rec) || PyTuple_GET_SIZE(rec) != 2)
            return Py_BuildValue("(nnnON)", index, taken, size, Py_None, rec);
        index++;
        /* progress[0]: the record being mapped, for an error and for a timed-out task's
         * report (kernel.position reads it from another thread) */
        PyObject *at = PyLong_FromSsize_t(index);
        if (at == NULL) { Py_DECREF(rec); return NULL; }
        PyList_SetItem(progress, 0, at);   /* steals */
        PyObject *call_args[2] = {PyTuple_GET_ITEM(rec, 0), PyTuple_GET_ITEM(rec, 1)};
        PyObject *out = PyObject_Vectorcall(mapper, call_args, 2, NULL);
        Py_DECREF(rec);
        if (out == NULL) return NULL;
        if (out == Py_None) { Py_DECREF(out); continue; }
        if (!PyGen_CheckExact(out))
            return Py_BuildValue("(nnnNO)", index, taken, size, out, end);
        iternextfunc next_pair = Py_TYPE(out)->tp_iternext;
        PyObject *item;
        while ((item = next_pair(out)) != NULL) {
            int r = take_pair(groups, item, &size);
            if (r < 0) { Py_DECREF(item); Py_DECREF(out); return NULL; }
            if (r == 0) return Py_BuildValue("(nnnNN)", index, taken, size, out, item);
            Py_DECREF(item);
            taken++;
            if (size >= limit) return Py_BuildValue("(nnnNO)", index, taken, size, out, full);
        }
        Py_DECREF(out);
        if (PyErr_Occurred()) {
            if (!PyErr_ExceptionMatches(PyExc_StopIteration)) return NULL;
            PyErr_Clear();
        }
    }
    if (PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_StopIteration)) return NULL;
        PyErr_Clear();
    }
    return Py_BuildValue("(nnnOO)", index, taken, size, Py_None, end);
}

/* ---- reduce-side grouping ---- */
/* ======================================================================================
 * GroupBy: the reduce loop's grouping by key bytes, with batched value decoding
 * (shuffle.group_values; run_reduce's reducer and identity-reducer paths)
 *
 * GroupBy(batches, decode, max_records, max_bytes) iterates over the merged batches (lists
 * of (key bytes, value bytes) records, in key order) and yields (key bytes, values) once
 * per run of equal keys, where values is a GroupValues: a lazy iterator over the group's
 * decoded values.  Its Python twin (shuffle.py_group_values) is
 *
 *     for kb, group in groupby(decoded_records(batches, False), itemgetter(0)):
 *         yield kb, map(itemgetter(1), group)
 *
 * and GroupBy keeps its semantics exactly, including when values are decoded (so a value
 * that fails to decode raises at the same point, under the same key):
 *
 *   - one cursor: the lookahead record batch[pos], pulled only when the reducer
 *     asks for a value after the last one, or when the groups advance (itertools.groupby's
 *     currkey/currvalue);
 *   - values are decoded a slice at a time when the cursor first reaches the slice: the
 *     slices shuffle.decode_slices / value_payloads cut (at most max_records values and
 *     max_bytes of them, a larger value alone, greedily from the batch's start), each one
 *     msgpack array given to `decode` (codec.unpack_values), one call per slice;
 *   - advancing to the next group skips what the reducer left of the current one (decoding
 *     the slices it crosses, as groupby does); a GroupValues of an earlier group yields
 *     nothing (a generation number, groupby's currgrouper);
 *   - an error from the batches or from decode propagates and ends the grouping (the
 *     reference's generator and chain end the same way).
 * A group is never collected: memory is one batch and one decoded slice, whatever a
 * group's size.  Each access re-checks the cursor against the batch's length and the
 * record's type, since the reducer's Python code runs between accesses.
 *
 * Both types are tracked by the cyclic GC: with the engine's batches no cycle runs
 * through them, but batches that are Python code of any kind could hold a group's values
 * iterator (a GroupValues keeps its GroupBy alive), and such a cycle must be collected as
 * itertools.groupby's is.  GroupBy is not re-entrant: a batches iterator or decoder that
 * advances the same GroupBy gets ValueError (a generator's "already executing"), so the
 * iterator GroupBy is calling into is never released under it.
 * ====================================================================================== */
typedef struct {
    PyObject_HEAD
    PyObject *batches;       /* iterator of batches; NULL once exhausted or failed */
    PyObject *decode;        /* msgpack array payload -> tuple of values */
    Py_ssize_t max_records, max_bytes;
    PyObject *batch;         /* the current batch (a list), or NULL */
    Py_ssize_t start, stop;  /* the decoded slice batch[start:stop] ... */
    PyObject *values;        /* ... and its values (a tuple of stop - start), or NULL */
    Py_ssize_t pos;          /* the cursor: the next record to look at */
    PyObject *key;           /* the current group's key bytes; NULL before the first */
    uint64_t gen;            /* bumped per group: an older GroupValues is stale */
    int busy;                /* inside gb_peek: Python code it calls must not re-enter */
} GroupBy;

typedef struct {
    PyObject_HEAD
    GroupBy *owner;
    uint64_t gen;
} GroupValues;

static PyTypeObject GroupValuesType;

static void gb_release(GroupBy *g) {   /* the end, after the last batch or an error */
    Py_CLEAR(g->batches);
    Py_CLEAR(g->batch);
    Py_CLEAR(g->values);
    g->pos = g->start = g->stop = 0;
}

static inline int same_key(PyObject *a, PyObject *b) {
    return a == b || (PyBytes_GET_SIZE(a) == PyBytes_GET_SIZE(b)
                      && memcmp(PyBytes_AS_STRING(a), PyBytes_AS_STRING(b), PyBytes_GET_SIZE(a)) == 0);
}

/* Decode the slice starting at the cursor: value_payloads' cut and bytes, one decode call. */
static int gb_decode_slice(GroupBy *g) {
    Py_ssize_t start = g->pos, stop;
    PyObject *data = value_slice(g->batch, start, g->max_records, g->max_bytes, "GroupBy",
                                 &stop);
    if (!data) return -1;
    PyObject *values = PyObject_CallOneArg(g->decode, data);
    Py_DECREF(data);
    if (!values) return -1;
    if (!PyTuple_CheckExact(values) || PyTuple_GET_SIZE(values) != stop - start) {
        PyErr_Format(PyExc_TypeError, "GroupBy: decode returned %.100s, not a tuple of %zd values",
                     Py_TYPE(values)->tp_name, stop - start);
        Py_DECREF(values);
        return -1;
    }
    Py_XSETREF(g->values, values);
    g->start = start;
    g->stop = stop;
    return 0;
}

/* The lookahead record (borrowed), pulling the next slice or batch if needed; NULL at the
 * end (no exception set) or on an error (the grouping is then over). */
static PyObject *gb_peek_unlocked(GroupBy *g) {
    for (;;) {
        if (g->batch) {
            Py_ssize_t n = PyList_GET_SIZE(g->batch);
            if (g->pos < n && g->pos < g->stop && g->pos >= g->start && g->values) {
                PyObject *rec = PyList_GET_ITEM(g->batch, g->pos);
                if (!is_record(rec)) { bad_record("GroupBy", rec); break; }
                return rec;
            }
            if (g->pos < n) {
                if (gb_decode_slice(g) < 0) break;
                continue;
            }
            Py_CLEAR(g->values);
            Py_CLEAR(g->batch);
        }
        if (!g->batches) return NULL;
        PyObject *b = PyIter_Next(g->batches);
        if (!b) {
            if (PyErr_Occurred()) break;
            gb_release(g);
            return NULL;
        }
        if (!PyList_CheckExact(b)) {  /* as the reference's list(batch) */
            Py_SETREF(b, PySequence_List(b));
            if (!b) break;
        }
        g->batch = b;
        g->pos = g->start = g->stop = 0;
    }
    gb_release(g);
    return NULL;
}

/* gb_peek_unlocked, refusing re-entry from the Python code it calls (the batches
 * iterator, list(batch), the decoder): that code could otherwise release the iterator
 * that is running, or replace the batch being read. */
static PyObject *gb_peek(GroupBy *g) {
    if (g->busy) {
        PyErr_SetString(PyExc_ValueError, "GroupBy already executing");
        return NULL;
    }
    g->busy = 1;
    PyObject *rec = gb_peek_unlocked(g);
    g->busy = 0;
    return rec;
}

static PyObject *gb_next(GroupBy *g) {
    g->gen++;  /* the current group's values are stale from here on */
    PyObject *rec;
    for (;;) {  /* skip what the reducer left of the current group */
        rec = gb_peek(g);
        if (!rec) return NULL;
        if (!g->key || !same_key(PyTuple_GET_ITEM(rec, 0), g->key)) break;
        g->pos++;
    }
    PyObject *kb = PyTuple_GET_ITEM(rec, 0);
    Py_INCREF(kb);
    Py_XSETREF(g->key, kb);
    GroupValues *v = PyObject_GC_New(GroupValues, &GroupValuesType);
    if (!v) return NULL;
    Py_INCREF(g);
    v->owner = g;
    v->gen = g->gen;
    PyObject_GC_Track(v);
    PyObject *out = PyTuple_Pack(2, kb, (PyObject *)v);
    Py_DECREF(v);
    return out;
}

static PyObject *gv_next(GroupValues *v) {
    GroupBy *g = v->owner;
    if (v->gen != g->gen) return NULL;
    PyObject *rec = gb_peek(g);
    if (!rec || !same_key(PyTuple_GET_ITEM(rec, 0), g->key)) return NULL;
    PyObject *value = PyTuple_GET_ITEM(g->values, g->pos - g->start);
    g->pos++;
    return Py_NewRef(value);
}

static int gv_traverse(GroupValues *v, visitproc visit, void *arg) {
    Py_VISIT(v->owner);
    return 0;
}

static void gv_dealloc(GroupValues *v) {
    PyObject_GC_UnTrack(v);
    Py_DECREF(v->owner);
    PyObject_GC_Del(v);
}

static PyTypeObject GroupValuesType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "mapreduce._core.GroupValues",
    .tp_basicsize = sizeof(GroupValues),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_traverse = (traverseproc)gv_traverse,
    .tp_doc = "The decoded values of one GroupBy group (lazy; empty once the group is left).",
    .tp_dealloc = (destructor)gv_dealloc,
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = (iternextfunc)gv_next,
};

static PyObject *gb_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"batches", "decode", "max_records", "max_bytes", NULL};
    PyObject *batches, *decode;
    Py_ssize_t max_records, max_bytes;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOnn", kwlist, &batches, &decode,
                                     &max_records, &max_bytes)) return NULL;
    if (!PyCallable_Check(decode)) {
        PyErr_SetString(PyExc_TypeError, "GroupBy: decode must be callable");
        return NULL;
    }
    PyObject *it = PyObject_GetIter(batches);
    if (!it) return NULL;
    GroupBy *g = (GroupBy *)type->tp_alloc(type, 0);
    if (!g) { Py_DECREF(it); return NULL; }
    g->batches = it;
    Py_INCREF(decode);
    g->decode = decode;
    g->max_records = max_records < 1 ? 1 : max_records;
    g->max_bytes = max_bytes;
    return (PyObject *)g;
}

static int gb_traverse(GroupBy *g, visitproc visit, void *arg) {
    Py_VISIT(g->batches);
    Py_VISIT(g->decode);
    Py_VISIT(g->batch);
    Py_VISIT(g->values);
    return 0;
}

static int gb_clear(GroupBy *g) {
    gb_release(g);
    Py_CLEAR(g->decode);
    Py_CLEAR(g->key);
    return 0;
}

static void gb_dealloc(GroupBy *g) {
    PyObject_GC_UnTrack(g);
    gb_clear(g);
    Py_TYPE(g)->tp_free((PyObject *)g);
}

static PyTypeObject GroupByType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "mapreduce._core.GroupBy",
    .tp_basicsize = sizeof(GroupBy),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "GroupBy(batches, decode, max_records, max_bytes): (key bytes, lazy decoded "
              "values) per group of equal keys (see its section in _core.c).",
    .tp_new = gb_new,
    .tp_traverse = (traverseproc)gb_traverse,
    .tp_clear = (inquiry)gb_clear,
    .tp_dealloc = (destructor)gb_dealloc,
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = (iternextfunc)gb_next,
};

/* ======================================================================================
 * sort_groups: CombiningBuffer.spill's sort of its groups by key bytes (kernel.py)
 *
 * sort_groups(groups: list of Group) sorts the list in place by each group's key bytes,
 * stably (two distinct dict keys can encode alike: two NaN objects), as
 * list.sort(key=attrgetter("kb")) does -- kernel.py_sort_groups, the Python twin.  The
 * same merge sort as sort_records, on an 8-byte prefix of the key bytes and then memcmp:
 * no key list, no bytes_richcompare call per comparison.  A list holding anything but
 * Groups is a TypeError (the engine passes only Groups when the C core runs).
 * ====================================================================================== */
typedef struct { uint64_t prefix; Group *g; } GroupItem;

static inline int group_item_less(const GroupItem *a, const GroupItem *b, int unused) {
    if (a->prefix != b->prefix) return a->prefix < b->prefix;
    return cmp_bytes(a->g->kb, b->g->kb) < 0;
}

DEFINE_STABLE_MERGE_SORT(merge_sort_groups, GroupItem, group_item_less)

static PyObject *core_sort_groups(PyObject *self, PyObject *list) {
    if (!PyList_CheckExact(list)) {
        PyErr_SetString(PyExc_TypeError, "sort_groups(groups: list)");
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(list);
    GroupItem *items = PyMem_Malloc((2 * n + 1) * sizeof *items);
    if (!items) return PyErr_NoMemory();
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *g = PyList_GET_ITEM(list, i);
        if (Py_TYPE(g) != &GroupType) {
            PyMem_Free(items);
            PyErr_Format(PyExc_TypeError, "sort_groups: expected Group objects, got %.100s",
                         Py_TYPE(g)->tp_name);
            return NULL;
        }
        items[i].g = (Group *)g;
        items[i].prefix = prefix_of(((Group *)g)->kb);
    }
    merge_sort_groups(items, items + n, n, 0);
    /* the same references in a new order: no reference count changes */
    for (Py_ssize_t i = 0; i < n; i++) PyList_SET_ITEM(list, i, (PyObject *)items[i].g);
    PyMem_Free(items);
    Py_RETURN_NONE;
}

/* ======================================================================================
 * module
 * ====================================================================================== */
static PyObject *core_set_reference(PyObject *self, PyObject *args) {
    PyObject *enc, *dec;
    if (!PyArg_ParseTuple(args, "OO", &enc, &dec)) return NULL;
    Py_INCREF(enc); Py_XSETREF(ref_encode_key, enc);
    Py_INCREF(dec); Py_XSETREF(ref_decode_key, dec);
    Py_RETURN_NONE;
}

static PyMethodDef core_methods[] = {
    {"encode_key", core_encode_key, METH_O, "codec.encode_key in C (see the module docstring)."},
    {"decode_key", core_decode_key, METH_O, "codec.decode_key in C (see the module docstring)."},
    {"partition_of", (PyCFunction)(void (*)(void))core_partition_of, METH_FASTCALL,
     "partition_of(key_bytes, n): zlib.crc32(key_bytes) % n."},
    {"sort_records", (PyCFunction)(void (*)(void))core_sort_records, METH_FASTCALL,
     "sort_records(records, sort_values): stable in-place sort of (key, value) byte pairs "
     "by key bytes (by the whole record under sort_values)."},
    {"unpack_pairs", (PyCFunction)(void (*)(void))core_unpack_pairs, METH_FASTCALL,
     "unpack_pairs(data, count): a block payload as [(k, v), ...], or None if it is not "
     "exactly an array of 2 * count bin objects."},
    {"unpack_flat", (PyCFunction)(void (*)(void))core_unpack_flat, METH_FASTCALL,
     "unpack_flat(data, count): a block payload as [k0, v0, ...], or None (as unpack_pairs)."},
    {"value_payloads", (PyCFunction)(void (*)(void))core_value_payloads, METH_FASTCALL,
     "value_payloads(batch, max_records, max_bytes): [(start, stop, msgpack array of the "
     "values batch[start:stop])], the slices shuffle.decode_slices cuts."},
    {"set_reference", core_set_reference, METH_VARARGS,
     "set_reference(encode_key, decode_key): the Python functions C delegates to."},
    {"raw_value_lines", (PyCFunction)(void (*)(void))core_raw_value_lines, METH_FASTCALL,
     "raw_value_lines(batch, start, last_key) -> (lines, stop, new_groups, last_key): the "
     "identity reducer's raw_value lines for batch[start:] up to the first value that is not "
     "an ASCII msgpack str."},
    {"group_values", (PyCFunction)(void (*)(void))core_group_values, METH_FASTCALL,
     "group_values(groups, iterator, size, limit, end, full) -> (taken, size, item): "
     "CombiningBuffer's per-pair path for the common pair (see its section)."},
    {"map_group", (PyCFunction)(void (*)(void))core_map_group, METH_FASTCALL,
     "map_group(records, mapper, groups, size, limit, progress, end, full) -> "
     "(index, taken, size, out, item): "
     "run_map's loop for a step with a combiner (see its section)."},
    {"sort_groups", (PyCFunction)core_sort_groups, METH_O,
     "sort_groups(groups): sort a list of Group objects in place by key bytes, stably."},
    {NULL}
};

static struct PyModuleDef core_module = {
    PyModuleDef_HEAD_INIT, "mapreduce._core",
    "The compiled per-record kernels of mapreduce (see mapreduce/core.py and docs/core.md).",
    -1, core_methods,
};

PyMODINIT_FUNC PyInit__core(void) {
    crc_init();
    if (itertools_repeat == NULL) {
        PyObject *itertools = PyImport_ImportModule("itertools");
        if (itertools == NULL) return NULL;
        itertools_repeat = PyObject_GetAttrString(itertools, "repeat");
        Py_DECREF(itertools);
        if (itertools_repeat == NULL) return NULL;
    }
    /* GroupValues is made only by GroupBy: readied, not exported. */
    if (PyType_Ready(&GroupValuesType) < 0) return NULL;
    PyObject *m = PyModule_Create(&core_module);
    if (!m) return NULL;
    /* PyModule_AddType readies each type and adds a reference of its own. */
    PyTypeObject *exported[] = {&PackerType, &MergeType, &SortBufType, &GroupType, &GroupByType};
    for (size_t i = 0; i < sizeof exported / sizeof exported[0]; i++) {
        if (PyModule_AddType(m, exported[i]) < 0) {
            Py_DECREF(m);
            return NULL;
        }
    }
    if (PyModule_AddObject(m, "COMBINE_SIZES",
                           Py_BuildValue("(ii)", VALUE_SLOT_SIZE, GROUP_OVERHEAD)) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}

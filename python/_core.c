/*
 * _core.c - the C half of the Python package `ratelimit`: thin types over the public API
 * (include/ratelimit.h), nothing more. ratelimit/__init__.py builds the Python API on them.
 *
 * - Table owns an rl_table. It counts the calls that run with the GIL released
 *   (`busy`); close() refuses while one runs, so no handle is freed under a sleeper.
 * - Bucket holds a handle and a reference to its Table; every method checks that the
 *   table is still open. try_acquire() is the hot path: no objects made, one C call.
 * - Errors become the exception classes ratelimit/__init__.py registers with
 *   _set_errors(): one class per RL_E* code, with the code, rl_strerror() and
 *   rl_errdetail() text.
 * - Calls that may sleep (acquire, call) release the GIL; call() takes it back only to
 *   run the Python callback.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "ratelimit.h"

static PyObject *error_classes; /* dict: code -> exception class (set by _set_errors) */

/* Raise the exception registered for `code`, with rl_errdetail() when it has one. */
static PyObject *raise_rl(int code, bool with_detail)
{
    const char *detail = with_detail ? rl_errdetail() : "";
    PyObject *cls = NULL, *key = PyLong_FromLong(code);
    if (key && error_classes)
        cls = PyDict_GetItemWithError(error_classes, key);
    Py_XDECREF(key);
    if (PyErr_Occurred())
        return NULL;
    if (!cls)
        cls = PyExc_RuntimeError;
    PyObject *exc = PyObject_CallFunction(cls, "iss", code, rl_strerror(code), detail);
    if (exc) {
        PyErr_SetObject(cls, exc);
        Py_DECREF(exc);
    }
    return NULL;
}

/* rl_errdetail() is meaningful for every code but these (see ratelimit.h). */
static PyObject *raise_code(int code)
{
    return raise_rl(code, code != RL_ELIMITED && code != RL_ETIMEDOUT && code != RL_EPARSE);
}

static PyObject *raise_parse(const struct rl_parse_error *pe, const char *text)
{
    char detail[256];
    snprintf(detail, sizeof detail, "rule text '%.60s', column %u: %s", text, pe->column,
             pe->message);
    PyObject *cls = NULL, *key = PyLong_FromLong(RL_EPARSE);
    if (key && error_classes)
        cls = PyDict_GetItemWithError(error_classes, key);
    Py_XDECREF(key);
    if (PyErr_Occurred())
        return NULL;
    PyObject *exc = PyObject_CallFunction(cls ? cls : PyExc_ValueError, "iss", RL_EPARSE,
                                          rl_strerror(RL_EPARSE), detail);
    if (exc) {
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
        Py_DECREF(exc);
    }
    return NULL;
}

/* Seconds (float, None = for ever) to a timeout in ns. */
static int timeout_ns(PyObject *obj, uint64_t *out)
{
    if (obj == NULL || obj == Py_None) {
        *out = UINT64_MAX;
        return 0;
    }
    double s = PyFloat_AsDouble(obj);
    if (s == -1.0 && PyErr_Occurred())
        return -1;
    if (!(s >= 0)) {
        PyErr_SetString(PyExc_ValueError, "timeout must be a number of seconds >= 0, or None");
        return -1;
    }
    *out = s >= 1.8e10 ? UINT64_MAX : (uint64_t)(s * 1e9);
    return 0;
}

static int cost_arg(PyObject *obj, uint32_t *out)
{
    if (obj == NULL) {
        *out = 1;
        return 0;
    }
    unsigned long v = PyLong_AsUnsignedLong(obj);
    if (v == (unsigned long)-1 && PyErr_Occurred()) {
        PyErr_Clear();
        PyErr_SetString(PyExc_ValueError, "cost must be an integer in 1..4294967295");
        return -1;
    }
    if (v == 0 || v > UINT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "cost must be an integer in 1..4294967295");
        return -1;
    }
    *out = (uint32_t)v;
    return 0;
}

static PyObject *decision_tuple(bool admitted, const struct rl_decision *d)
{
    return Py_BuildValue("(OKKKO)", admitted ? Py_True : Py_False, (unsigned long long)d->at_ns,
                         (unsigned long long)d->wait_ns, (unsigned long long)d->remaining,
                         d->dry_run_rejected ? Py_True : Py_False);
}

/* ------------------------------------------------------------------ Table */

typedef struct {
    PyObject_HEAD rl_table *t;
    Py_ssize_t busy; /* calls running with the GIL released */
} TableObject;

static PyTypeObject TableType;

static int table_open_check(TableObject *self)
{
    if (self->t)
        return 0;
    PyErr_SetString(PyExc_ValueError, "the table is closed");
    return -1;
}

static int Table_init(TableObject *self, PyObject *args, PyObject *kw)
{
    static char *names[] = {"path", "create", "readonly", "capacity", "mode", NULL};
    const char *path = NULL;
    int create = 1, readonly = 0;
    unsigned int capacity = 1024, mode = 0600;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|zppII", names, &path, &create, &readonly,
                                     &capacity, &mode))
        return -1;
    if (self->t) {
        PyErr_SetString(PyExc_ValueError, "the table is already open");
        return -1;
    }
    struct rl_table_opts o = RL_TABLE_OPTS_INIT;
    o.path = path;
    o.flags = (create ? RL_OPEN_CREATE : 0) | (readonly ? RL_OPEN_READONLY : 0);
    o.capacity = capacity;
    o.mode = mode;
    PyThreadState *ts = PyEval_SaveThread();
    int rc = rl_table_open(&o, &self->t);
    PyEval_RestoreThread(ts);
    if (rc < 0) {
        raise_code(rc);
        return -1;
    }
    return 0;
}

static void Table_dealloc(TableObject *self)
{
    rl_table_close(self->t); /* no Bucket is left: each holds a reference */
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Table_close(TableObject *self, PyObject *unused)
{
    if (self->busy) {
        PyErr_Format(PyExc_RuntimeError, "the table is in use by %zd call(s) of other threads",
                     self->busy);
        return NULL;
    }
    rl_table_close(self->t);
    self->t = NULL;
    Py_RETURN_NONE;
}

static PyObject *Table_path(TableObject *self, PyObject *unused)
{
    if (table_open_check(self))
        return NULL;
    return PyUnicode_DecodeFSDefault(rl_table_path(self->t));
}

static PyObject *Table_check(TableObject *self, PyObject *unused)
{
    if (table_open_check(self))
        return NULL;
    int rc = rl_table_check(self->t);
    return rc < 0 ? raise_code(rc) : (Py_INCREF(Py_None), Py_None);
}

static int policy_arg(const char *rules, struct rl_policy *p)
{
    struct rl_parse_error pe;
    if (rl_policy_parse(rules, p, &pe) < 0) {
        raise_parse(&pe, rules);
        return -1;
    }
    return 0;
}

/* define(name, rules, parent=None, template=False) */
static PyObject *Table_define(TableObject *self, PyObject *args, PyObject *kw)
{
    static char *names[] = {"name", "rules", "parent", "template", "expire_ns", NULL};
    const char *name, *rules, *parent = NULL;
    int is_template = 0;
    unsigned long long expire_ns = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "ss|zpK", names, &name, &rules, &parent,
                                     &is_template, &expire_ns))
        return NULL;
    if (table_open_check(self))
        return NULL;
    struct rl_policy p;
    if (policy_arg(rules, &p))
        return NULL;
    rl_bucket *b;
    int rc = is_template ? rl_template_define_expire(self->t, name, &p, parent, expire_ns)
                         : rl_bucket_define(self->t, name, &p, parent, &b);
    return rc < 0 ? raise_code(rc) : (Py_INCREF(Py_None), Py_None);
}

static void note_line(void *arg, const char *line)
{
    PyObject *s = PyUnicode_DecodeUTF8(line, (Py_ssize_t)strlen(line), "backslashreplace");
    if (s) {
        PyList_Append((PyObject *)arg, s);
        Py_DECREF(s);
    }
}

static PyObject *config_error(int rc, const char *path, char *errors)
{
    if (errors) {
        PyObject *cls = NULL, *key = PyLong_FromLong(rc);
        if (key && error_classes)
            cls = PyDict_GetItemWithError(error_classes, key);
        Py_XDECREF(key);
        PyObject *exc =
            PyObject_CallFunction(cls ? cls : PyExc_ValueError, "iss", rc, rl_strerror(rc), errors);
        free(errors);
        if (exc) {
            PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
            Py_DECREF(exc);
        }
        return NULL;
    }
    return raise_code(rc);
}

/* _open_config(cls, path or None, readonly, apply) -> (Table of class cls, notes) */
static PyObject *open_config(PyObject *mod, PyObject *args)
{
    PyTypeObject *cls;
    const char *path;
    int readonly, apply;
    if (!PyArg_ParseTuple(args, "O!zpp", &PyType_Type, &cls, &path, &readonly, &apply))
        return NULL;
    if (!PyType_IsSubtype(cls, &TableType)) {
        PyErr_SetString(PyExc_TypeError, "_open_config: not a Table class");
        return NULL;
    }
    const char *file = rl_config_default_path(path);
    rl_config *c;
    char *errors = NULL;
    int rc = rl_config_load(file, &c, &errors);
    if (rc < 0)
        return config_error(rc, file, errors);
    free(errors);
    TableObject *t = (TableObject *)cls->tp_alloc(cls, 0);
    if (!t) {
        rl_config_free(c);
        return NULL;
    }
    t->t = NULL;
    t->busy = 0;
    rc = rl_config_open_table(c, readonly ? RL_OPEN_READONLY : RL_OPEN_CREATE, &t->t);
    PyObject *notes = PyList_New(0);
    if (rc == 0 && notes && apply)
        rc = rl_config_apply(c, t->t, note_line, notes);
    rl_config_free(c);
    if (rc < 0 || !notes) {
        Py_XDECREF(notes);
        Py_DECREF(t);
        return rc < 0 ? raise_code(rc) : NULL;
    }
    return Py_BuildValue("(NN)", (PyObject *)t, notes);
}

static PyMethodDef Table_methods[] = {
    {"close", (PyCFunction)Table_close, METH_NOARGS, "Detach from the table (idempotent)."},
    {"path", (PyCFunction)Table_path, METH_NOARGS, "The path the table was opened from."},
    {"check", (PyCFunction)Table_check, METH_NOARGS,
     "Raise Stale if the path now names another file."},
    {"define", (PyCFunction)(void (*)(void))Table_define, METH_VARARGS | METH_KEYWORDS,
     "define(name, rules, parent=None, template=False, expire_ns=0)"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject TableType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "ratelimit._core.Table",
    .tp_basicsize = sizeof(TableObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = "Table(path=None, create=True, readonly=False, capacity=1024, mode=0o600)",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Table_init,
    .tp_dealloc = (destructor)Table_dealloc,
    .tp_methods = Table_methods,
};

/* ------------------------------------------------------------------ Bucket */

typedef struct {
    PyObject_HEAD TableObject *table;
    rl_bucket *b;
    int make; /* made by get(): follows its tenant (follow) */
} BucketObject;

/* The handle, or NULL with an exception if the table was closed. */
static rl_bucket *handle(BucketObject *self)
{
    if (self->table && self->table->t && self->b)
        return self->b;
    PyErr_SetString(PyExc_ValueError, "the bucket's table is closed");
    return NULL;
}

/* Bucket(table, name, make=False): rl_bucket_lookup, or rl_bucket_get when make. */
static int Bucket_init(BucketObject *self, PyObject *args, PyObject *kw)
{
    static char *names[] = {"table", "name", "make", NULL};
    TableObject *t;
    const char *name;
    int make = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O!s|p", names, &TableType, &t, &name, &make))
        return -1;
    if (table_open_check(t))
        return -1;
    rl_bucket *b;
    int rc = make ? rl_bucket_get(t->t, name, &b) : rl_bucket_lookup(t->t, name, &b);
    if (rc < 0) {
        raise_code(rc);
        return -1;
    }
    Py_INCREF(t);
    Py_XSETREF(self->table, t);
    self->b = b;
    self->make = make;
    return 0;
}

/* A handle made by get() follows its bucket: after RL_ENOENT (the bucket was deleted, e.g.
 * an idle tenant its template's expiry removed) the name is looked up again, which makes
 * the tenant anew from its template with its full budget, what the idle one had. True if
 * *b is the new handle and the call is to be made again (once). The old handle stays valid
 * memory until the table closes, so a thread still using it is safe. Holds the GIL. */
static bool follow(BucketObject *self, int rc, rl_bucket **b)
{
    rl_bucket *nb;
    if (rc != RL_ENOENT || !self->make || !self->table || !self->table->t)
        return false;
    if (rl_bucket_get(self->table->t, rl_bucket_name(*b), &nb) < 0 || nb == *b)
        return false;
    self->b = *b = nb;
    return true;
}

static void Bucket_dealloc(BucketObject *self)
{
    Py_XDECREF(self->table);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* The one optional argument `cost` of the fast calls, positional or by keyword. */
static int fast_cost(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames, uint32_t *cost)
{
    PyObject *obj = NULL;
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    if (nargs + nkw > 1) {
        PyErr_SetString(PyExc_TypeError, "takes at most one argument (cost)");
        return -1;
    }
    if (nargs == 1)
        obj = args[0];
    else if (nkw == 1) {
        if (!PyUnicode_Check(PyTuple_GET_ITEM(kwnames, 0)) ||
            PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(kwnames, 0), "cost") != 0) {
            PyErr_SetString(PyExc_TypeError, "the only keyword argument is cost");
            return -1;
        }
        obj = args[0];
    }
    return cost_arg(obj, cost);
}

static PyObject *Bucket_try_acquire(BucketObject *self, PyObject *const *args, Py_ssize_t nargs,
                                    PyObject *kwnames)
{
    uint32_t cost;
    rl_bucket *b = handle(self);
    if (!b || fast_cost(args, nargs, kwnames, &cost))
        return NULL;
    int rc = rl_try_acquire(b, cost, NULL);
    if (follow(self, rc, &b))
        rc = rl_try_acquire(b, cost, NULL);
    if (rc == 0)
        Py_RETURN_TRUE;
    if (rc == RL_ELIMITED)
        Py_RETURN_FALSE;
    return raise_code(rc);
}

/* decide(cost=1) -> (admitted, at_ns, wait_ns, remaining, dry_run_rejected) */
static PyObject *Bucket_decide(BucketObject *self, PyObject *const *args, Py_ssize_t nargs,
                               PyObject *kwnames)
{
    uint32_t cost;
    rl_bucket *b = handle(self);
    if (!b || fast_cost(args, nargs, kwnames, &cost))
        return NULL;
    struct rl_decision d = {0};
    int rc = rl_try_acquire(b, cost, &d);
    if (follow(self, rc, &b))
        rc = rl_try_acquire(b, cost, &d);
    if (rc < 0 && rc != RL_ELIMITED)
        return raise_code(rc);
    return decision_tuple(rc == 0, &d);
}

/* _acquire(cost, timeout) -> decision tuple; raises Timeout. Releases the GIL. */
static PyObject *Bucket_acquire(BucketObject *self, PyObject *args)
{
    PyObject *cost_obj, *timeout_obj;
    uint32_t cost;
    uint64_t timeout;
    if (!PyArg_ParseTuple(args, "OO", &cost_obj, &timeout_obj))
        return NULL;
    rl_bucket *b = handle(self);
    if (!b || cost_arg(cost_obj, &cost) || timeout_ns(timeout_obj, &timeout))
        return NULL;
    struct rl_decision d = {0};
    int rc;
    for (int again = 1;; again = 0) {
        self->table->busy++;
        PyThreadState *ts = PyEval_SaveThread();
        rc = rl_acquire(b, cost, timeout, &d);
        PyEval_RestoreThread(ts);
        self->table->busy--;
        if (!again || !follow(self, rc, &b))
            break;
    }
    if (rc < 0 && rc != RL_ETIMEDOUT)
        return raise_code(rc);
    return decision_tuple(rc == 0, &d);
}

/* _recheck(cost, timeout, at_ns, dry_run_rejected) -> a fresh decision tuple, or None: the
 * admission stands. Releases the GIL (a fresh turn may be slept for). */
static PyObject *Bucket_recheck(BucketObject *self, PyObject *args)
{
    PyObject *cost_obj, *timeout_obj;
    unsigned long long at;
    int dry;
    uint32_t cost;
    uint64_t timeout;
    if (!PyArg_ParseTuple(args, "OOKp", &cost_obj, &timeout_obj, &at, &dry))
        return NULL;
    rl_bucket *b = handle(self);
    if (!b || cost_arg(cost_obj, &cost) || timeout_ns(timeout_obj, &timeout))
        return NULL;
    struct rl_decision d = {.at_ns = at, .dry_run_rejected = dry};
    self->table->busy++;
    PyThreadState *ts = PyEval_SaveThread();
    int rc = rl_acquire_recheck(b, cost, timeout, &d);
    PyEval_RestoreThread(ts);
    self->table->busy--;
    if (rc < 0)
        return raise_code(rc);
    if (rc == 0)
        Py_RETURN_NONE;
    return decision_tuple(true, &d);
}

/* _reserve(cost, timeout) -> decision tuple (admitted False: not within timeout). */
static PyObject *Bucket_reserve(BucketObject *self, PyObject *args)
{
    PyObject *cost_obj, *timeout_obj;
    uint32_t cost;
    uint64_t timeout;
    if (!PyArg_ParseTuple(args, "OO", &cost_obj, &timeout_obj))
        return NULL;
    rl_bucket *b = handle(self);
    if (!b || cost_arg(cost_obj, &cost) || timeout_ns(timeout_obj, &timeout))
        return NULL;
    struct rl_decision d = {0};
    int rc = rl_reserve(b, cost, timeout, &d);
    if (follow(self, rc, &b))
        rc = rl_reserve(b, cost, timeout, &d);
    if (rc < 0 && rc != RL_ETIMEDOUT)
        return raise_code(rc);
    return decision_tuple(rc == 0, &d);
}

/* _reserve_check(cost, at_ns) -> 0 (the turn stands) or the instant to reserve again at */
static PyObject *Bucket_reserve_check(BucketObject *self, PyObject *args)
{
    PyObject *cost_obj;
    unsigned long long at;
    uint32_t cost;
    uint64_t resume;
    if (!PyArg_ParseTuple(args, "OK", &cost_obj, &at))
        return NULL;
    rl_bucket *b = handle(self);
    if (!b || cost_arg(cost_obj, &cost))
        return NULL;
    int rc = rl_reserve_check(b, cost, at, &resume);
    if (rc < 0 && rc != RL_ELIMITED)
        return raise_code(rc);
    return PyLong_FromUnsignedLongLong(resume);
}

static PyObject *feedback_tuple(const struct rl_feedback *f)
{
    return Py_BuildValue("(KIOIO)", (unsigned long long)f->cooldown_ns, f->backoff,
                         f->tightened ? Py_True : Py_False, f->ignored,
                         f->widened ? Py_True : Py_False);
}

/* Header values (str or None) of a response, in struct rl_response's order. */
struct values {
    int status;
    PyObject *bytes[6];
};

static const char *value_at(struct values *v, int i)
{
    return v->bytes[i] ? PyBytes_AS_STRING(v->bytes[i]) : NULL;
}

static void values_clear(struct values *v)
{
    for (int i = 0; i < 6; i++)
        Py_CLEAR(v->bytes[i]);
}

/* (status, retry_after, limit, remaining, reset, ratelimit, ratelimit_policy) */
static int values_from(PyObject *tuple, struct values *v)
{
    values_clear(v);
    if (!PyTuple_Check(tuple) || PyTuple_GET_SIZE(tuple) != 7) {
        PyErr_SetString(PyExc_TypeError, "response fields: a 7-tuple");
        return -1;
    }
    long status = PyLong_AsLong(PyTuple_GET_ITEM(tuple, 0));
    if (status == -1 && PyErr_Occurred())
        return -1;
    v->status = status < 0 || status > 999 ? 0 : (int)status;
    for (int i = 0; i < 6; i++) {
        PyObject *o = PyTuple_GET_ITEM(tuple, i + 1);
        if (o == Py_None)
            continue;
        if (!PyUnicode_Check(o)) {
            PyErr_SetString(PyExc_TypeError, "header values must be str or None");
            return -1;
        }
        v->bytes[i] = PyUnicode_AsEncodedString(o, "latin-1", "replace");
        if (!v->bytes[i])
            return -1;
    }
    return 0;
}

static void response_fill(struct rl_response *r, struct values *v, uint64_t max_cooldown)
{
    r->status = v->status;
    r->retry_after = value_at(v, 0);
    r->limit = value_at(v, 1);
    r->remaining = value_at(v, 2);
    r->reset = value_at(v, 3);
    r->ratelimit = value_at(v, 4);
    r->ratelimit_policy = value_at(v, 5);
    r->max_cooldown_ns = max_cooldown;
}

/* _report(fields 7-tuple, max_cooldown_ns, decided_ns=0) -> (cooldown_ns, backoff,
 * tightened, ignored). decided_ns: the request's admission instant (rl_decision.at_ns), or
 * 0 if unknown. */
static PyObject *Bucket_report(BucketObject *self, PyObject *args)
{
    PyObject *fields;
    unsigned long long max_cooldown, decided = 0;
    if (!PyArg_ParseTuple(args, "OK|K", &fields, &max_cooldown, &decided))
        return NULL;
    rl_bucket *b = handle(self);
    if (!b)
        return NULL;
    struct values v = {0};
    if (values_from(fields, &v)) {
        values_clear(&v);
        return NULL;
    }
    struct rl_response r = RL_RESPONSE_INIT;
    struct rl_feedback f = {0};
    response_fill(&r, &v, max_cooldown);
    r.decided_ns = decided;
    int rc = rl_report(b, &r, &f);
    if (follow(self, rc, &b))
        rc = rl_report(b, &r, &f);
    values_clear(&v);
    return rc < 0 ? raise_code(rc) : feedback_tuple(&f);
}

/* The state rl_call's callback needs: the Python function and what it returned. */
struct call_ctx {
    PyThreadState *ts; /* the saved thread state while the GIL is released */
    PyObject *fn;      /* returns (result, fields 7-tuple) */
    PyObject *result;  /* the latest result */
    struct values v;   /* the latest header values (live until the next attempt) */
    uint64_t max_cooldown;
    bool failed; /* fn raised: the exception is set */
};

#define CALL_RAISED (-1000)

static int call_fn(void *arg, struct rl_response *r)
{
    struct call_ctx *c = arg;
    PyEval_RestoreThread(c->ts);
    int rc = 0;
    PyObject *out = PyObject_CallNoArgs(c->fn);
    if (!out || !PyTuple_Check(out) || PyTuple_GET_SIZE(out) != 2 ||
        values_from(PyTuple_GET_ITEM(out, 1), &c->v)) {
        if (out && !PyErr_Occurred())
            PyErr_SetString(PyExc_TypeError, "the call's helper must return (result, fields)");
        c->failed = true;
        rc = CALL_RAISED;
    } else {
        Py_XSETREF(c->result, Py_NewRef(PyTuple_GET_ITEM(out, 0)));
        response_fill(r, &c->v, c->max_cooldown);
    }
    Py_XDECREF(out);
    c->ts = PyEval_SaveThread();
    return rc;
}

/* _call(fn, cost, timeout, attempts, max_cooldown_ns) -> (rc, result) */
static PyObject *Bucket_call(BucketObject *self, PyObject *args)
{
    PyObject *fn, *cost_obj, *timeout_obj;
    unsigned int attempts;
    unsigned long long max_cooldown;
    uint32_t cost;
    uint64_t timeout;
    if (!PyArg_ParseTuple(args, "OOOIK", &fn, &cost_obj, &timeout_obj, &attempts, &max_cooldown))
        return NULL;
    rl_bucket *b = handle(self);
    if (!b || cost_arg(cost_obj, &cost) || timeout_ns(timeout_obj, &timeout))
        return NULL;
    struct call_ctx c = {.fn = fn, .max_cooldown = max_cooldown};
    struct rl_response r = RL_RESPONSE_INIT;
    int rc;
    for (int again = 1;; again = 0) {
        self->table->busy++;
        c.ts = PyEval_SaveThread();
        rc = rl_call(b, cost, timeout, attempts, call_fn, &c, &r);
        PyEval_RestoreThread(c.ts);
        self->table->busy--;
        /* Again only if the function was never called: a request is never sent twice. */
        if (!again || c.result || c.failed || !follow(self, rc, &b))
            break;
    }
    values_clear(&c.v);
    if (c.failed) {
        Py_XDECREF(c.result);
        return NULL;
    }
    if (rc < 0 && rc != RL_ELIMITED && rc != RL_ETIMEDOUT) {
        Py_XDECREF(c.result);
        return raise_code(rc);
    }
    return Py_BuildValue("(iN)", rc, c.result ? c.result : Py_NewRef(Py_None));
}

static PyObject *Bucket_reset(BucketObject *self, PyObject *unused)
{
    rl_bucket *b = handle(self);
    if (!b)
        return NULL;
    int rc = rl_bucket_reset(b);
    return rc < 0 ? raise_code(rc) : (Py_INCREF(Py_None), Py_None);
}

static PyObject *Bucket_name(BucketObject *self, PyObject *unused)
{
    rl_bucket *b = handle(self);
    return b ? PyUnicode_FromString(rl_bucket_name(b)) : NULL;
}

static PyObject *rules_list(const struct rl_bucket_info *in)
{
    PyObject *list = PyList_New(0);
    for (unsigned i = 0; list && i < in->policy.nrules; i++) {
        const struct rl_rule_state *s = &in->rules[i];
        static const char *kinds[] = {"sliding", "gcra", "fixed"};
        PyObject *t =
            Py_BuildValue("(sKKKKKK)", kinds[s->rule.kind % 3], (unsigned long long)s->rule.limit,
                          (unsigned long long)s->rule.period_ns, (unsigned long long)s->rule.burst,
                          (unsigned long long)s->used, (unsigned long long)s->remaining,
                          (unsigned long long)s->next_free_ns);
        if (!t || PyList_Append(list, t)) {
            Py_XDECREF(t);
            Py_CLEAR(list);
        }
        Py_XDECREF(t);
    }
    return list;
}

/* _info() -> dict of the rl_bucket_info fields */
static PyObject *Bucket_info(BucketObject *self, PyObject *unused)
{
    rl_bucket *b = handle(self);
    if (!b)
        return NULL;
    struct rl_bucket_info in;
    int rc = rl_bucket_info(b, &in);
    if (rc < 0)
        return raise_code(rc);
    char policy[512];
    rl_policy_format(&in.policy, policy, sizeof policy);
    const struct rl_counters *c = &in.counters;
    const struct rl_feedback_state *f = &in.feedback;
    return Py_BuildValue(
        "{s:s,s:s,s:s,s:N,s:(KKKKKKKK),s:(KKIKK),s:O,s:K}", "name", in.name, "parent", in.parent,
        "policy", policy, "rules", rules_list(&in), "counters", (unsigned long long)c->admitted,
        (unsigned long long)c->admitted_units, (unsigned long long)c->rejected,
        (unsigned long long)c->waited, (unsigned long long)c->waited_ns,
        (unsigned long long)c->dry_run_rejected, (unsigned long long)c->resets,
        (unsigned long long)c->reported_429, "feedback", (unsigned long long)f->cooldown_ns,
        (unsigned long long)f->last_429_ns, f->backoff, (unsigned long long)f->server_remaining,
        (unsigned long long)f->server_reset_ns, "is_template", in.is_template ? Py_True : Py_False,
        "now_ns", (unsigned long long)in.now_ns);
}

static PyMethodDef Bucket_methods[] = {
    {"try_acquire", (PyCFunction)(void (*)(void))Bucket_try_acquire, METH_FASTCALL | METH_KEYWORDS,
     "try_acquire(cost=1) -> bool\n\nTake `cost` units now if the budget allows it, all or "
     "nothing.\nTrue: admitted. False: not now (nothing taken). Never sleeps."},
    {"_decide", (PyCFunction)(void (*)(void))Bucket_decide, METH_FASTCALL | METH_KEYWORDS, NULL},
    {"_acquire", (PyCFunction)Bucket_acquire, METH_VARARGS, NULL},
    {"_recheck", (PyCFunction)Bucket_recheck, METH_VARARGS, NULL},
    {"_reserve", (PyCFunction)Bucket_reserve, METH_VARARGS, NULL},
    {"_reserve_check", (PyCFunction)Bucket_reserve_check, METH_VARARGS, NULL},
    {"_report", (PyCFunction)Bucket_report, METH_VARARGS, NULL},
    {"_call", (PyCFunction)Bucket_call, METH_VARARGS, NULL},
    {"_info", (PyCFunction)Bucket_info, METH_NOARGS, NULL},
    {"reset", (PyCFunction)Bucket_reset, METH_NOARGS,
     "Restore the bucket's full budget and forget its cool-down."},
    {"_name", (PyCFunction)Bucket_name, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef Bucket_members[] = {
    {"_table", T_OBJECT, offsetof(BucketObject, table), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject BucketType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "ratelimit._core.Bucket",
    .tp_basicsize = sizeof(BucketObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = "Bucket(table, name, make=False)",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Bucket_init,
    .tp_dealloc = (destructor)Bucket_dealloc,
    .tp_methods = Bucket_methods,
    .tp_members = Bucket_members,
};

/* ------------------------------------------------------------------ module */

static PyObject *set_errors(PyObject *mod, PyObject *dict)
{
    if (!PyDict_Check(dict)) {
        PyErr_SetString(PyExc_TypeError, "_set_errors takes a dict");
        return NULL;
    }
    Py_INCREF(dict);
    Py_XSETREF(error_classes, dict);
    Py_RETURN_NONE;
}

static PyObject *error_table(PyObject *mod, PyObject *unused)
{
    PyObject *list = PyList_New(0);
#define RL_ERROR_ITEM(name, value, msg)                                                            \
    if (list) {                                                                                    \
        PyObject *t = Py_BuildValue("(sis)", #name, value, msg);                                   \
        if (!t || PyList_Append(list, t))                                                          \
            Py_CLEAR(list);                                                                        \
        Py_XDECREF(t);                                                                             \
    }
    RL_ERRORS(RL_ERROR_ITEM)
#undef RL_ERROR_ITEM
    return list;
}

static PyObject *now_ns(PyObject *mod, PyObject *unused)
{
    return PyLong_FromUnsignedLongLong(rl_now_ns());
}

static PyObject *version(PyObject *mod, PyObject *unused)
{
    return PyUnicode_FromString(rl_version());
}

static PyObject *check_rules(PyObject *mod, PyObject *arg)
{
    const char *text = PyUnicode_AsUTF8(arg);
    struct rl_policy p;
    char buf[512];
    if (!text || policy_arg(text, &p))
        return NULL;
    rl_policy_format(&p, buf, sizeof buf);
    return PyUnicode_FromString(buf);
}

static PyObject *guard_install(PyObject *mod, PyObject *unused)
{
    int rc = rl_guard_install();
    return rc < 0 ? raise_code(rc) : (Py_INCREF(Py_None), Py_None);
}

static PyMethodDef module_methods[] = {
    {"_set_errors", set_errors, METH_O, NULL},
    {"_error_table", error_table, METH_NOARGS, NULL},
    {"_open_config", open_config, METH_VARARGS, NULL},
    {"now_ns", now_ns, METH_NOARGS, "CLOCK_MONOTONIC now, in ns (the clock of every decision)."},
    {"version", version, METH_NOARGS, "The C library's version, e.g. '0.1.0'."},
    {"check_rules", check_rules, METH_O,
     "check_rules(text) -> canonical text; raises ParseError for invalid rule text."},
    {"guard_install", guard_install, METH_NOARGS,
     "Contain the SIGBUS of a table file truncated under this process (rl_guard_install)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "ratelimit._core",
    .m_doc = "C bindings of libratelimit (use the package `ratelimit`).",
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC PyInit__core(void); /* the module entry point */
PyMODINIT_FUNC PyInit__core(void)
{
    if (PyType_Ready(&TableType) < 0 || PyType_Ready(&BucketType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m)
        return NULL;
    if (PyModule_AddObjectRef(m, "Table", (PyObject *)&TableType) < 0 ||
        PyModule_AddObjectRef(m, "Bucket", (PyObject *)&BucketType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}

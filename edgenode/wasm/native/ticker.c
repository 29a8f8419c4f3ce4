/* The epoch ticker: a native thread that advances every registered engine's epoch, so CPU
 * deadlines cut off a runaway guest even though guest calls keep the GIL. */
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include "hostcore.h"

#define MAX_ENGINES 64

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static wasm_engine_t *engines[MAX_ENGINES];
static PyObject *owners[MAX_ENGINES]; /* the Python Engine objects, kept alive */
static int nengines = 0;
static long interval_ns = 5000000;
static pid_t started = 0; /* the process whose thread ticks (a forked child starts its own) */

static void *run(void *unused) {
    struct timespec ts;
    for (;;) {
        ts.tv_sec = interval_ns / 1000000000L;
        ts.tv_nsec = interval_ns % 1000000000L;
        nanosleep(&ts, NULL);
        pthread_mutex_lock(&lock);
        for (int i = 0; i < nengines; i++) WT.engine_increment_epoch(engines[i]);
        pthread_mutex_unlock(&lock);
    }
    return NULL;
}

/* ticker_add(engine, engine_ptr, interval_seconds): tick this engine (once) from now on */
PyObject *hc_ticker_add(PyObject *self, PyObject *args) {
    PyObject *owner;
    unsigned long long ptr;
    double interval;
    if (!PyArg_ParseTuple(args, "OKd", &owner, &ptr, &interval)) return NULL;
    pthread_mutex_lock(&lock);
    int known = 0;
    for (int i = 0; i < nengines; i++) known |= engines[i] == (wasm_engine_t *)(uintptr_t)ptr;
    if (known && started == getpid()) {
        pthread_mutex_unlock(&lock);
        Py_RETURN_NONE;
    }
    if (!known && nengines == MAX_ENGINES) {
        pthread_mutex_unlock(&lock);
        PyErr_SetString(PyExc_RuntimeError, "too many wasm engines for the epoch ticker");
        return NULL;
    }
    if (!known) {
        Py_INCREF(owner);
        owners[nengines] = owner;
        engines[nengines++] = (wasm_engine_t *)(uintptr_t)ptr;
    }
    interval_ns = (long)(interval * 1e9);
    int start = started != getpid();
    started = getpid();
    pthread_mutex_unlock(&lock);
    if (start) {
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        int rc = pthread_create(&t, &attr, run, NULL);
        pthread_attr_destroy(&attr);
        if (rc != 0) {
            PyErr_SetString(PyExc_RuntimeError, "cannot start the epoch ticker thread");
            return NULL;
        }
    }
    Py_RETURN_NONE;
}

/* ticker_remove(engine_ptr): stop ticking an engine (before it is dropped) */
PyObject *hc_ticker_remove(PyObject *self, PyObject *arg) {
    unsigned long long ptr = PyLong_AsUnsignedLongLong(arg);
    if (PyErr_Occurred()) return NULL;
    PyObject *owner = NULL;
    pthread_mutex_lock(&lock);
    for (int i = 0; i < nengines; i++) {
        if (engines[i] == (wasm_engine_t *)(uintptr_t)ptr) {
            owner = owners[i];
            engines[i] = engines[nengines - 1];
            owners[i] = owners[nengines - 1];
            nengines--;
            break;
        }
    }
    pthread_mutex_unlock(&lock);
    Py_XDECREF(owner);
    Py_RETURN_NONE;
}

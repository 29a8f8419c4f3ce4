/* HTTP dates (RFC 9110 §5.6.7) read in C: a miss of a new object parses its
 * Last-Modified (every object has its own, so no memo helps), and the three regular
 * expressions with the integer conversions around them cost ~5 µs per date in Python.
 *
 * ``http_date(value)`` accepts exactly what cache/directives.py's expressions accept
 * on a str of Latin-1 characters (every field value read from the wire): leading and
 * trailing whitespace as ``\s`` has it there (\t-\r, \x1c-\x20, \x85, \xa0), the
 * letters of day and month names in any case, ``GMT`` in any case, fixed field widths,
 * single spaces; a day the month lacks, year 0, hour 24, minute 60 or second 61 is
 * invalid.  A str beyond Latin-1 raises ValueError: the caller's expressions decide it
 * (tests/cache/test_dates_native.py holds the two to the same answers).
 *
 * ``freshness_facts(...)`` reads an entry's freshness facts (cache/policy.py
 * ``_set_facts``: Date, Age, the lifetime from s-maxage, max-age, Expires or the
 * heuristic, the stale windows, the validators) from the stored fields' pairs and the
 * directives in one call, where Python made five calls and three multidict lookups per
 * stored response.  It raises ValueError for what it does not read as Python does (a
 * name or an Age beyond ASCII, a date beyond Latin-1): the caller then runs
 * the Python reading (``policy._facts``), which tests/cache/test_facts_native.py holds
 * it to.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>
#include <time.h>

#include "_facts.h"

static int is_space(Py_UCS1 c) {
    return (c >= 9 && c <= 13) || (c >= 28 && c <= 32) || c == 0x85 || c == 0xa0;
}

static int is_alpha(Py_UCS1 c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int is_digit(Py_UCS1 c) {
    return c >= '0' && c <= '9';
}

/* ``n`` digits at ``s`` as a number, or -1 when one is not a digit. */
static int digits(const Py_UCS1 *s, int n) {
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!is_digit(s[i])) {
            return -1;
        }
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

static int lower(Py_UCS1 c) {
    return (c >= 'A' && c <= 'Z') ? c + 32 : c;
}

/* The month (1-12) three letters name, in any case; 0 when none. */
static int month_of(const Py_UCS1 *s) {
    static const char names[] = "janfebmaraprmayjunjulaugsepoctnovdec";
    int a = lower(s[0]), b = lower(s[1]), c = lower(s[2]);
    for (int m = 0; m < 12; m++) {
        if (names[3 * m] == a && names[3 * m + 1] == b && names[3 * m + 2] == c) {
            return m + 1;
        }
    }
    return 0;
}

/* Whether ``s[0:3]`` spells GMT in any case. */
static int is_gmt(const Py_UCS1 *s) {
    return lower(s[0]) == 'g' && lower(s[1]) == 'm' && lower(s[2]) == 't';
}

/* ``hh:mm:ss`` at ``s`` into the three numbers; 0 when malformed. */
static int clock_at(const Py_UCS1 *s, int *h, int *mi, int *sec) {
    if (s[2] != ':' || s[5] != ':') {
        return 0;
    }
    *h = digits(s, 2);
    *mi = digits(s + 3, 2);
    *sec = digits(s + 6, 2);
    return *h >= 0 && *mi >= 0 && *sec >= 0;
}

static int leap(int y) {
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* Days from 1970-01-01 to the civil date (proleptic Gregorian, as ``date.toordinal``). */
static long long days_from_civil(int y, int m, int d) {
    y -= m <= 2;
    long long era = (y >= 0 ? y : y - 399) / 400;
    long long yoe = y - era * 400;
    long long doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    long long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* The seconds since the epoch into ``out``; 0 when a value is out of its range. */
static int seconds(int year, int month, int day, int h, int mi, int sec, double *out) {
    static const int month_days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (year < 1 || year > 9999 || day < 1) {
        return 0;
    }
    if (day > month_days[month - 1] + (month == 2 && leap(year))) {
        return 0;
    }
    if (!(h < 24 && mi < 60 && sec <= 60)) {
        return 0;
    }
    *out = (double)(days_from_civil(year, month, day) * 86400 + h * 3600 + mi * 60 + sec);
    return 1;
}

/* RFC 9110: a two-digit year that would be more than 50 years in the future is the most
 * recent past year with the same last two digits (``rfc850_year`` in directives.py). */
static int rfc850_year(int yy) {
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    int this_year = tm.tm_year + 1900;
    int year = this_year - this_year % 100 + yy;
    if (year > this_year + 50) {
        year -= 100;
    } else if (year + 100 <= this_year + 50) {
        year += 100;
    }
    return year;
}

/* ``s[:n]`` is one date without its surrounding whitespace: its seconds into ``out``;
 * 0 when it is not a valid date. */
static int parse(const Py_UCS1 *s, Py_ssize_t n, double *out) {
    int h, mi, sec, month, day, year;
    /* IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT */
    if (n == 29 && s[3] == ',') {
        if (!is_alpha(s[0]) || !is_alpha(s[1]) || !is_alpha(s[2]) || s[4] != ' ' || s[7] != ' '
                || s[11] != ' ' || s[16] != ' ' || s[25] != ' ' || !is_gmt(s + 26)) {
            return 0;
        }
        day = digits(s + 5, 2);
        month = month_of(s + 8);
        year = digits(s + 12, 4);
        if (day < 0 || month == 0 || year < 0 || !clock_at(s + 17, &h, &mi, &sec)) {
            return 0;
        }
        return seconds(year, month, day, h, mi, sec, out);
    }
    /* asctime: Sun Nov  6 08:49:37 1994 */
    if (n == 24 && s[3] == ' ') {
        if (!is_alpha(s[0]) || !is_alpha(s[1]) || !is_alpha(s[2]) || s[7] != ' ' || s[10] != ' '
                || s[19] != ' ') {
            return 0;
        }
        month = month_of(s + 4);
        day = s[8] == ' ' ? digits(s + 9, 1) : digits(s + 8, 2);
        year = digits(s + 20, 4);
        if (month == 0 || day < 0 || year < 0 || !clock_at(s + 11, &h, &mi, &sec)) {
            return 0;
        }
        return seconds(year, month, day, h, mi, sec, out);
    }
    /* RFC 850: Sunday, 06-Nov-94 08:49:37 GMT (a weekday of 6 to 9 letters) */
    Py_ssize_t w = n - 24;
    if (w >= 6 && w <= 9 && s[w] == ',') {
        for (Py_ssize_t i = 0; i < w; i++) {
            if (!is_alpha(s[i])) {
                return 0;
            }
        }
        const Py_UCS1 *t = s + w + 1;  /* " 06-Nov-94 08:49:37 GMT" */
        if (t[0] != ' ' || t[3] != '-' || t[7] != '-' || t[10] != ' ' || t[19] != ' '
                || !is_gmt(t + 20)) {
            return 0;
        }
        day = digits(t + 1, 2);
        month = month_of(t + 4);
        int yy = digits(t + 8, 2);
        if (day < 0 || month == 0 || yy < 0 || !clock_at(t + 11, &h, &mi, &sec)) {
            return 0;
        }
        return seconds(rfc850_year(yy), month, day, h, mi, sec, out);
    }
    return 0;
}

PyDoc_STRVAR(http_date_doc,
"http_date(value: str) -> float | None\n\n"
"Seconds since the epoch of an HTTP-date in one of its three formats; None if invalid.\n"
"ValueError for a str holding a character beyond Latin-1.");

/* ``parse_http_date(value)`` for a field value (borrowed, or NULL when absent), for
 * ``http_date`` and the freshness facts: 1 with the seconds in ``out``, 0 when absent or
 * invalid, -1 with TypeError for a value that is not a str or ValueError for a character
 * beyond Latin-1 (the expressions decide that). */
static int date_value(PyObject *value, double *out) {
    if (value == NULL) {
        return 0;
    }
    if (!PyUnicode_Check(value)) {
        PyErr_SetString(PyExc_TypeError, "an HTTP date must be a str");
        return -1;
    }
    if (PyUnicode_KIND(value) != PyUnicode_1BYTE_KIND) {
        PyErr_SetString(PyExc_ValueError, "a character beyond Latin-1");
        return -1;
    }
    const Py_UCS1 *s = PyUnicode_1BYTE_DATA(value);
    Py_ssize_t start = 0, end = PyUnicode_GET_LENGTH(value);
    while (start < end && is_space(s[start])) {
        start++;
    }
    while (end > start && is_space(s[end - 1])) {
        end--;
    }
    return parse(s + start, end - start, out);
}

static PyObject *http_date(PyObject *module, PyObject *value) {
    double ts;
    int found = date_value(value, &ts);
    if (found < 0) {
        return NULL;
    }
    if (!found) {
        Py_RETURN_NONE;
    }
    return PyFloat_FromDouble(ts);
}

/* RFC 9111 §1.2.2: delta-seconds beyond this are read as this (directives.MAX_DELTA) */
#define MAX_DELTA 2147483648.0

/* ``float(delta_seconds(s[:n]) or 0)`` for ASCII text (``isdigit``, then the clamp). */
static double delta_of(const Py_UCS1 *s, Py_ssize_t n) {
    double v = 0.0;
    if (n == 0) {
        return 0.0;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        if (!is_digit(s[i])) {
            return 0.0;
        }
        if (v < MAX_DELTA) {
            v = v * 10 + (s[i] - '0');
        }
    }
    return v < MAX_DELTA ? v : MAX_DELTA;
}

/* ``float(delta_seconds(value) or 0)`` for a directive's argument (borrowed; None,
 * NULL or a str beyond ASCII: 0). */
static int delta_value(PyObject *value, double *out) {
    *out = 0.0;
    if (value == NULL || value == Py_None) {
        return 0;
    }
    if (!PyUnicode_Check(value)) {
        PyErr_SetString(PyExc_TypeError, "directive arguments must be str");
        return -1;
    }
    if (PyUnicode_IS_ASCII(value)) {
        *out = delta_of(PyUnicode_1BYTE_DATA(value), PyUnicode_GET_LENGTH(value));
    }
    return 0;
}

/* ``initial_age``'s Age value: the first member of the first Age line, stripped
 * (``age.split(",", 1)[0].strip()``), as delta-seconds; 0 when absent or invalid;
 * -1 with ValueError beyond ASCII (``str.strip`` takes other spaces: Python decides). */
static int age_value(PyObject *age, double *out) {
    *out = 0.0;
    if (age == Py_None) {
        return 0;
    }
    if (!PyUnicode_Check(age) || !PyUnicode_IS_ASCII(age)) {
        PyErr_SetString(PyExc_ValueError, "an Age beyond ASCII");
        return -1;
    }
    const Py_UCS1 *s = PyUnicode_1BYTE_DATA(age);
    Py_ssize_t n = PyUnicode_GET_LENGTH(age), end = 0, start = 0;
    while (end < n && s[end] != ',') {
        end++;
    }
    while (start < end && is_space(s[start])) {
        start++;
    }
    while (end > start && is_space(s[end - 1])) {
        end--;
    }
    *out = delta_of(s + start, end - start);
    return 0;
}

/* Whether the ASCII str ``name`` is ``want`` (lower-case, ``len`` long) in any case. */
static int named(PyObject *name, const char *want, Py_ssize_t len) {
    if (PyUnicode_GET_LENGTH(name) != len) {
        return 0;
    }
    const Py_UCS1 *s = PyUnicode_1BYTE_DATA(name);
    for (Py_ssize_t i = 0; i < len; i++) {
        if (lower(s[i]) != want[i]) {
            return 0;
        }
    }
    return 1;
}

/* The first values of Date, ETag, Expires and Last-Modified among ``pairs`` (borrowed,
 * NULL when absent), as a case-insensitive multidict's ``get`` finds them. */
typedef struct {
    PyObject *date, *etag, *expires, *last_modified;
} Found;

static int find_fields(PyObject *pairs, Found *f) {
    memset(f, 0, sizeof(*f));
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(pairs); i++) {
        PyObject *pair = PyList_GET_ITEM(pairs, i);
        if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2
                || !PyUnicode_Check(PyTuple_GET_ITEM(pair, 0))) {
            PyErr_SetString(PyExc_TypeError, "fields must be (name, value) str pairs");
            return -1;
        }
        PyObject *name = PyTuple_GET_ITEM(pair, 0), *value = PyTuple_GET_ITEM(pair, 1);
        if (!PyUnicode_IS_ASCII(name)) {
            PyErr_SetString(PyExc_ValueError, "a field name beyond ASCII");
            return -1;
        }
        PyObject **slot = NULL;
        if (named(name, "date", 4)) {
            slot = &f->date;
        } else if (named(name, "etag", 4)) {
            slot = &f->etag;
        } else if (named(name, "expires", 7)) {
            slot = &f->expires;
        } else if (named(name, "last-modified", 13)) {
            slot = &f->last_modified;
        }
        if (slot != NULL && *slot == NULL) {
            *slot = value;
        }
    }
    return 0;
}

/* the directive names read here, interned at import */
static PyObject *s_maxage, *max_age, *swr_name, *sie_name, *must_revalidate, *proxy_revalidate,
    *no_cache, *public_name;

/* ``cc[name]`` borrowed, NULL when absent (-1 on an error) */
static int directive(PyObject *cc, PyObject *name, PyObject **out) {
    *out = PyDict_GetItemWithError(cc, name);
    return *out == NULL && PyErr_Occurred() ? -1 : 0;
}

/* ``freshness_facts`` without its Python objects: 0 with ``out`` filled, -1 with an
 * exception (ValueError for what Python reads differently).  Exported as the capsule
 * ``_compute_facts`` for cache/_entry.c. */
static int compute_facts(PyObject *pairs, PyObject *cc, int targeted, int heuristic, PyObject *age_arg,
                         double request_time, double response_time, double fraction, double hmax,
                         double default_ttl, Facts *out) {
    Found f;
    if (find_fields(pairs, &f) < 0) {
        return -1;
    }
    double date, age, lifetime = 0.0, expires, last_ts = 0.0;
    int dated = date_value(f.date, &date);
    int has_last = date_value(f.last_modified, &last_ts);
    if (dated < 0 || has_last < 0 || age_value(age_arg, &age) < 0) {
        return -1;
    }
    if (!dated) {
        date = response_time;
    }
    PyObject *smax, *maxage, *swr_arg, *sie_arg, *mustr, *proxyr, *nocache, *pub;
    if (directive(cc, s_maxage, &smax) < 0 || directive(cc, max_age, &maxage) < 0
            || directive(cc, swr_name, &swr_arg) < 0 || directive(cc, sie_name, &sie_arg) < 0
            || directive(cc, must_revalidate, &mustr) < 0 || directive(cc, proxy_revalidate, &proxyr) < 0
            || directive(cc, no_cache, &nocache) < 0 || directive(cc, public_name, &pub) < 0) {
        return -1;
    }
    /* freshness_lifetime: s-maxage, max-age, Expires - Date, then the heuristic */
    if (smax != NULL) {
        if (delta_value(smax, &lifetime) < 0) {
            return -1;
        }
    } else if (maxage != NULL) {
        if (delta_value(maxage, &lifetime) < 0) {
            return -1;
        }
    } else if (f.expires != NULL && !targeted) {
        int ok = date_value(f.expires, &expires);
        if (ok < 0) {
            return -1;
        }
        lifetime = ok && expires - date > 0.0 ? expires - date : 0.0;
    } else if (heuristic || pub != NULL) {
        if (has_last) {
            double h = (date - last_ts) * fraction;
            lifetime = h > 0.0 ? h : 0.0;
            lifetime = hmax < lifetime ? hmax : lifetime;
        } else {
            lifetime = default_ttl;
        }
    }
    if (delta_value(swr_arg, &out->swr) < 0 || delta_value(sie_arg, &out->sie) < 0) {
        return -1;
    }
    /* initial_age: max(apparent age, Age + the response delay) */
    double apparent = response_time - date > 0.0 ? response_time - date : 0.0;
    double corrected = age + (response_time - request_time);
    double age0 = corrected > apparent ? corrected : apparent;
    int no_cache_all = 0;
    if (nocache != NULL) {
        int arg = PyObject_IsTrue(nocache);
        if (arg < 0) {
            return -1;
        }
        no_cache_all = !arg;
    }
    out->date = date;
    out->age0 = age0;
    out->lifetime = lifetime;
    out->fresh_until = response_time + lifetime - age0;
    out->no_stale = mustr || proxyr || smax;
    out->no_cache = no_cache_all;
    out->auth_ok = pub || smax || mustr;
    out->etag = f.etag;
    out->last_modified = f.last_modified;
    out->has_last = has_last;
    out->last_ts = last_ts;
    out->dated = dated;
    return 0;
}

PyDoc_STRVAR(freshness_facts_doc,
"freshness_facts(fields, cc, targeted, heuristic, age, request_time, response_time,\n"
"                heuristic_fraction, heuristic_max, default_ttl) -> tuple\n\n"
"An entry's freshness facts from its stored ``fields`` ((name, value) str pairs) and the\n"
"directives ``cc`` (a dict), as cache/policy.py ``_facts`` computes them: ``(date, age0,\n"
"lifetime, fresh_until, swr, sie, no_stale, no_cache, auth_ok, etag, last_modified,\n"
"last_modified_ts, dated)``; ``dated`` is False when the fields hold no valid Date (then\n"
"``date`` is ``response_time``).  ``heuristic``: the status allows a heuristic lifetime;\n"
"``age``: the response's first Age line or None.  ValueError for a name or an Age beyond\n"
"ASCII or a date beyond Latin-1.");

static PyObject *freshness_facts(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 10 || !PyList_Check(args[0]) || !PyDict_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "freshness_facts(list, dict, targeted, heuristic, age, "
                                         "request_time, response_time, fraction, max, default_ttl)");
        return NULL;
    }
    int targeted = PyObject_IsTrue(args[2]), heuristic = PyObject_IsTrue(args[3]);
    double request_time = PyFloat_AsDouble(args[5]), response_time = PyFloat_AsDouble(args[6]);
    double fraction = PyFloat_AsDouble(args[7]), hmax = PyFloat_AsDouble(args[8]);
    double default_ttl = PyFloat_AsDouble(args[9]);
    if (targeted < 0 || heuristic < 0 || PyErr_Occurred()) {
        return NULL;
    }
    Facts x;
    if (compute_facts(args[0], args[1], targeted, heuristic, args[4], request_time, response_time,
                      fraction, hmax, default_ttl, &x) < 0) {
        return NULL;
    }
    PyObject *last = x.has_last ? PyFloat_FromDouble(x.last_ts) : Py_NewRef(Py_None);
    if (last == NULL) {
        return NULL;
    }
    return Py_BuildValue("(dddddd" "OOO" "OON" "O)", x.date, x.age0, x.lifetime, x.fresh_until,
                         x.swr, x.sie, x.no_stale ? Py_True : Py_False,
                         x.no_cache ? Py_True : Py_False, x.auth_ok ? Py_True : Py_False,
                         x.etag ? x.etag : Py_None, x.last_modified ? x.last_modified : Py_None,
                         last, x.dated ? Py_True : Py_False);
}

static PyMethodDef methods[] = {
    {"http_date", (PyCFunction)http_date, METH_O, http_date_doc},
    {"freshness_facts", (PyCFunction)(void (*)(void))freshness_facts, METH_FASTCALL, freshness_facts_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "edgenode.cache._dates",
    "HTTP dates read in C (the Last-Modified of every new object a miss stores).", -1, methods,
};

PyMODINIT_FUNC PyInit__dates(void) {
    struct { PyObject **slot; const char *text; } names[] = {
        {&s_maxage, "s-maxage"}, {&max_age, "max-age"}, {&swr_name, "stale-while-revalidate"},
        {&sie_name, "stale-if-error"}, {&must_revalidate, "must-revalidate"},
        {&proxy_revalidate, "proxy-revalidate"}, {&no_cache, "no-cache"}, {&public_name, "public"},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (*names[i].slot == NULL && (*names[i].slot = PyUnicode_InternFromString(names[i].text)) == NULL) {
            return NULL;
        }
    }
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) {
        return NULL;
    }
    PyObject *capsule = PyCapsule_New((void *)compute_facts, FACTS_CAPSULE, NULL);
    if (capsule == NULL || PyModule_AddObject(m, "_compute_facts", capsule) < 0) {
        Py_XDECREF(capsule);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}

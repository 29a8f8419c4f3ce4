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
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <time.h>

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

static PyObject *http_date(PyObject *module, PyObject *value) {
    if (!PyUnicode_Check(value)) {
        PyErr_SetString(PyExc_TypeError, "an HTTP date must be a str");
        return NULL;
    }
    if (PyUnicode_KIND(value) != PyUnicode_1BYTE_KIND) {
        PyErr_SetString(PyExc_ValueError, "a character beyond Latin-1");
        return NULL;
    }
    const Py_UCS1 *s = PyUnicode_1BYTE_DATA(value);
    Py_ssize_t start = 0, end = PyUnicode_GET_LENGTH(value);
    while (start < end && is_space(s[start])) {
        start++;
    }
    while (end > start && is_space(s[end - 1])) {
        end--;
    }
    double ts;
    if (!parse(s + start, end - start, &ts)) {
        Py_RETURN_NONE;
    }
    return PyFloat_FromDouble(ts);
}

static PyMethodDef methods[] = {
    {"http_date", (PyCFunction)http_date, METH_O, http_date_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "edgenode.cache._dates",
    "HTTP dates read in C (the Last-Modified of every new object a miss stores).", -1, methods,
};

PyMODINIT_FUNC PyInit__dates(void) {
    return PyModule_Create(&module);
}

/*
 * SecLang engine: shared types, and each unit's functions.
 *
 * A ruleset (waf_rules) is parsed and compiled once from SecLang text (parse.c)
 * and is read-only afterwards; a transaction (waf_tx) holds one request's
 * variables, collections and matches, allocated from a per-request arena that
 * is reset between requests.  No Proxy-Wasm calls in the engine files: only
 * filter.c talks to the host, so the engine also builds natively.
 *
 * The units, in layers: each uses only units on lines below its own
 * (tests/layout/test_c_unit_cycles.py fails on a cycle).
 *   filter.c                    the Proxy-Wasm glue (over filters/sdk)
 *   parse.c, warmup.c           compiling the rules; the first pass's warm-up requests
 *   exec.c, intake.c            the phase runner; the request into the transaction
 *   operator.c, firstpass.c, body.c    operators; the first pass; body processors
 *   expand.c                    a target's values, and macros
 *   tx.c, tcache.c              the transaction's state; values after transformation chains
 *   rx.c, transform.c           compiled patterns; transformations
 *   vars.c, ac.c, inject.c      variable names; Aho-Corasick; libinjection's cheap answers
 *   util.c (util.h), wordlibc.c arena, buffers, strings, collections; memchr/memcmp/strlen
 * This header holds declarations and inline helpers that call nothing but util.c; an
 * inline helper that calls into a unit stands in that unit's own header (expand.h:
 * tv_push; tcache.h: transform), so no header depends on a unit above it.
 */
#ifndef WAF_H
#define WAF_H

#include "util.h"

/* ------------------------------------------------------------------ variables */

enum {
    /* collections (key -> value, ordered) */
    V_ARGS = 1, V_ARGS_GET, V_ARGS_POST, V_ARGS_NAMES, V_ARGS_GET_NAMES, V_ARGS_POST_NAMES,
    V_REQUEST_HEADERS, V_REQUEST_HEADERS_NAMES, V_REQUEST_COOKIES, V_REQUEST_COOKIES_NAMES,
    V_FILES, V_FILES_NAMES, V_FILES_SIZES, V_FILES_TMPNAMES, V_FILES_TMP_CONTENT,
    V_MULTIPART_PART_HEADERS, V_XML, V_MATCHED_VARS, V_MATCHED_VARS_NAMES, V_ENV, V_RULE,
    V_TX, V_GEO, V_IP, V_SESSION, V_USER, V_GLOBAL, V_RESOURCE,
    V_RESPONSE_HEADERS, V_RESPONSE_HEADERS_NAMES,
    V_LAST_COLLECTION = V_RESPONSE_HEADERS_NAMES,
    /* scalars */
    V_REQUEST_FILENAME, V_REQUEST_BASENAME, V_REQUEST_URI, V_REQUEST_URI_RAW, V_REQUEST_LINE,
    V_REQUEST_METHOD, V_REQUEST_PROTOCOL, V_QUERY_STRING, V_REQUEST_BODY, V_REQUEST_BODY_LENGTH,
    V_REQBODY_ERROR, V_REQBODY_ERROR_MSG, V_REQBODY_PROCESSOR, V_REQBODY_PROCESSOR_ERROR,
    V_REQBODY_PROCESSOR_ERROR_MSG, V_INBOUND_DATA_ERROR, V_URLENCODED_ERROR,
    V_MULTIPART_BOUNDARY_QUOTED, V_MULTIPART_BOUNDARY_WHITESPACE, V_MULTIPART_DATA_AFTER,
    V_MULTIPART_DATA_BEFORE, V_MULTIPART_FILE_LIMIT_EXCEEDED, V_MULTIPART_HEADER_FOLDING,
    V_MULTIPART_INVALID_HEADER_FOLDING, V_MULTIPART_INVALID_PART, V_MULTIPART_INVALID_QUOTING,
    V_MULTIPART_LF_LINE, V_MULTIPART_CRLF_LF_LINES, V_MULTIPART_MISSING_SEMICOLON,
    V_MULTIPART_STRICT_ERROR, V_MULTIPART_UNMATCHED_BOUNDARY, V_MULTIPART_FILENAME,
    V_MULTIPART_NAME, V_MULTIPART_BOUNDARY_INVALID,
    V_UNIQUE_ID, V_MATCHED_VAR, V_MATCHED_VAR_NAME, V_REMOTE_ADDR, V_REMOTE_HOST,
    V_REMOTE_PORT, V_REMOTE_USER, V_SERVER_ADDR, V_SERVER_NAME, V_SERVER_PORT,
    V_ARGS_COMBINED_SIZE, V_FILES_COMBINED_SIZE, V_FULL_REQUEST, V_FULL_REQUEST_LENGTH,
    V_AUTH_TYPE, V_DURATION, V_HIGHEST_SEVERITY, V_STATUS_LINE, V_RESPONSE_STATUS,
    V_RESPONSE_BODY, V_RESPONSE_PROTOCOL, V_RESPONSE_CONTENT_TYPE, V_RESPONSE_CONTENT_LENGTH,
    V_OUTBOUND_DATA_ERROR, V_TIME, V_TIME_DAY, V_TIME_EPOCH, V_TIME_HOUR, V_TIME_MIN,
    V_TIME_MON, V_TIME_SEC, V_TIME_WDAY, V_TIME_YEAR, V_WEBSERVER_ERROR_LOG, V_USERID,
    V_SESSIONID, V_WEBAPPID, V_PATH_INFO, V_SCRIPT_FILENAME, V_MODSEC_BUILD,
    V_COUNT
};

#define IS_COLLECTION(v) ((v) <= V_LAST_COLLECTION)
/* vars.c: the variables' names */
const char *var_name(int v);
/* var_name with its length, counted once per variable: every match names its variable
 * (MATCHED_VAR_NAME), and a strlen per match is a loop with an epoch check in Wasm */
wstr var_name_w(int v);
int var_lookup(const char *name, size_t n);   /* 0 when unknown */

/* ------------------------------------------------------------------ rules */

struct pcre2_real_code_8;
typedef struct pcre2_real_code_8 rx_code;

typedef struct {
    rx_code *code;
    wstr src;
    /* a pattern that is only a literal: ^lit (RX_LIT_PREFIX) or ^lit$ (RX_LIT_EXACT), or
     * starts with one (RX_LIT_LEAD: a subject must start with lit), or lit anywhere
     * (RX_LIT_ANY), for pcre2_match_simple's fast path */
    int lit_mode;
    wstr lit;
    /* `^.*$`, which the engine's options (dot-all, multiline) make match every subject
     * whole (CRS 920450 captures each header name with it): answered without PCRE2 */
    bool match_all;
} regex;
enum { RX_LIT_NONE = 0, RX_LIT_PREFIX, RX_LIT_EXACT, RX_LIT_LEAD, RX_LIT_ANY };

/* A string with %{...} macros, split at compile time. */
typedef struct { wstr lit; int var; wstr key; uint32_t key_hash; } macro_part;   /* var 0: literal; key_hash: hash_ci(key) */
typedef struct { macro_part *parts; int n; wstr raw; bool has_macro; } macro_str;

typedef struct {
    int var;
    bool count;                  /* &VAR */
    bool exclude;                /* !VAR:key */
    wstr key;                    /* empty: whole collection */
    uint32_t key_hash;           /* hash_ci(key): collection lookups by key */
    wstr key_lc;                 /* key in lower case: keys set in lower case compare as they are */
    regex *key_rx;               /* VAR:/regex/ */
    wstr full;                   /* "ARGS:foo" as written (for ctl target removal) */
} target;

enum {
    OP_RX = 1, OP_PM, OP_PMFROMFILE, OP_STREQ, OP_CONTAINS, OP_CONTAINSWORD, OP_BEGINSWITH,
    OP_ENDSWITH, OP_WITHIN, OP_EQ, OP_GE, OP_GT, OP_LE, OP_LT, OP_IPMATCH, OP_IPMATCHFROMFILE,
    OP_VALIDATEBYTERANGE, OP_VALIDATEURLENCODING, OP_VALIDATEUTF8ENCODING, OP_UNCONDITIONAL,
    OP_NOMATCH, OP_DETECTSQLI, OP_DETECTXSS, OP_STRMATCH, OP_RBL, OP_GEOLOOKUP,
    OP_VALIDATEDTD, OP_VALIDATESCHEMA, OP_VERIFYCC, OP_VERIFYSSN, OP_VERIFYCPF, OP_INSPECTFILE,
    OP_FUZZYHASH, OP_GSBLOOKUP, OP_RSUB
};

/* Case-insensitive Aho-Corasick automaton (ac.c): @pm phrases and what they matched. */
typedef struct ac_automaton ac_automaton;
ac_automaton *ac_create(void);
void ac_add(ac_automaton *ac, const char *p, size_t n);
void ac_finalize(ac_automaton *ac);
void ac_destroy(ac_automaton *ac);
/* First phrase found: offset and length. */
bool ac_first(const ac_automaton *ac, wstr v, size_t *at, size_t *len);

typedef struct { uint8_t addr[16]; int bits; bool v6; } ip_net;

typedef struct {
    int kind;
    bool negate;
    macro_str param;             /* raw parameter, macros expanded at run time when needed */
    regex rx;                    /* OP_RX (param without macros) */
    ac_automaton *ac;            /* OP_PM / OP_PMFROMFILE */
    wstr pm_phrases;             /* the same phrases, each after its length (uint32_t) */
    ip_net *nets; int n_nets;    /* OP_IPMATCH */
    uint8_t byte_ok[32];         /* OP_VALIDATEBYTERANGE bitmap */
    uint8_t byte_floor;          /* every byte from it up is allowed (0: no such floor <= 128) */
    long long num;               /* numeric comparisons without macros */
    bool num_static;
} oper;

enum {
    T_NONE = 1, T_LOWERCASE, T_UPPERCASE, T_URLDECODE, T_URLDECODEUNI, T_HTMLENTITYDECODE,
    T_JSDECODE, T_CSSDECODE, T_CMDLINE, T_COMPRESSWHITESPACE, T_REMOVEWHITESPACE,
    T_REMOVENULLS, T_REPLACENULLS, T_REPLACECOMMENTS, T_REMOVECOMMENTS, T_REMOVECOMMENTSCHAR,
    T_NORMALIZEPATH, T_NORMALIZEPATHWIN, T_UTF8TOUNICODE, T_BASE64DECODE, T_BASE64DECODEEXT,
    T_BASE64ENCODE, T_HEXDECODE, T_HEXENCODE, T_SQLHEXDECODE, T_LENGTH, T_TRIM, T_TRIMLEFT,
    T_TRIMRIGHT, T_ESCAPESEQDECODE, T_URLENCODE, T_MD5, T_SHA1, T_PARITYEVEN7BIT,
    T_PARITYODD7BIT, T_PARITYZERO7BIT, T_COUNT
};

enum { SV_SET = 1, SV_ADD, SV_SUB, SV_DEL };
typedef struct { int coll; macro_str key; int op; macro_str val; uint32_t key_hash; } setvar_act;   /* key_hash: hash_ci(key) without macros */

enum {
    CTL_RULE_ENGINE = 1, CTL_REMOVE_BY_ID, CTL_REMOVE_BY_TAG, CTL_REMOVE_TARGET_BY_ID,
    CTL_REMOVE_TARGET_BY_TAG, CTL_BODY_PROCESSOR, CTL_BODY_ACCESS, CTL_FORCE_BODY_VAR,
    CTL_IGNORED
};
typedef struct {
    int kind;
    int ival;                    /* engine mode, body processor, on/off */
    uint32_t id_lo, id_hi;       /* remove by id (range) */
    wstr str;                    /* tag, or target spec "ARGS:foo" */
    wstr tag;                    /* ruleRemoveTargetByTag */
    regex *tag_rx;
} ctl_act;

enum { D_NONE = 0, D_PASS, D_DENY, D_DROP, D_BLOCK, D_ALLOW, D_REDIRECT };
enum { ENGINE_OFF = 0, ENGINE_ON, ENGINE_DETECT };
enum { BP_NONE = 0, BP_URLENCODED, BP_MULTIPART, BP_JSON, BP_XML };

typedef struct rule {
    uint32_t id;
    int phase;
    const char *file; int line;
    target *targets; int n_targets;
    oper op;
    uint8_t tfns[24]; int n_tfns;
    uint16_t tchain;             /* id of the transformation chain (cache key) */
    bool has_tfn_none;
    int disruptive;              /* D_*, D_NONE when absent */
    int allow_scope;             /* allow: 0 all, 1 phase, 2 request */
    int status;
    bool chain, capture, multi_match, log, nolog, auditlog, noauditlog, log_set;
    int severity;                /* -1 absent */
    macro_str msg, logdata, redirect_url;
    wstr *tags; int n_tags;
    setvar_act *setvars; int n_setvars;
    ctl_act *ctls; int n_ctls;
    wstr skip_after; int skip_after_idx; /* index in the phase list, -1: end */
    int skip;
    struct rule *next_link;      /* chained rule */
    struct rule *parent;         /* chain head for links */
    bool is_marker; wstr marker;
    bool is_action;              /* SecAction */
    bool removed;                /* SecRuleRemoveBy* at configure time */
    uint32_t hits;               /* metric id (filter) */
    uint32_t metric;
    bool metric_defined;
    struct pf_slot *pf;          /* firstpass.c: the sets holding the rule's pattern, one per */
    int n_pf;                    /* chain it is scanned after (multiMatch: every prefix); 0: none */
    bool pf_all;                 /* every target is a source the sets scan: one look decides */
    bool has_exclusions;         /* some target is a !VAR:key exclusion */
    bool tx_check;               /* a chain head on one TX key or &TX:key count, no transformation,
                                    outside the regex sets: exec.c evaluates it without the value list */
} rule;

/* Default actions per phase (SecDefaultAction). */
typedef struct {
    int disruptive, status;
    uint8_t tfns[8]; int n_tfns;
    bool log, auditlog, set;
    wstr *tags; int n_tags;
} default_act;

typedef struct {
    wstr name;
    char *text; size_t len;
} waf_file;

typedef struct {
    int engine;                  /* SecRuleEngine */
    bool body_access;
    size_t body_limit, body_nofiles_limit;
    bool body_limit_reject;      /* SecRequestBodyLimitAction Reject */
    int args_limit;
    int json_depth_limit;
    unsigned long pcre_match_limit, pcre_match_limit_recursion;
    char *component_signature;
    rule **phase[6]; int n_phase[6]; int cap_phase[6];
    rule **all; int n_all, cap_all;
    default_act defaults[6];
    int n_rules;                 /* ids */
    int n_tchains;
    uint8_t (*tchain_def)[25];   /* per chain id: [len, tfns...] */
    int16_t *tchain_parent;      /* chain id of the prefix without the last step, -1 for none */
    uint64_t *tchain_steps;      /* per chain id: its transformations, bit T_* */
    arena mem;
    uint32_t n_regex;
    double compile_ms, warm_up_ms;
    struct pf_group *pf_groups;  /* firstpass.c: the regex sets */
    int n_pf_groups, n_pf_rules;
    struct RxSet **pf_unions;    /* firstpass.c: per phase, the sets without literals the warm-up reached */
    int n_pf_unions;
    int n_pf_blocks;             /* firstpass.c: control points counted over the phases */
    struct RxGate *pf_gate;      /* firstpass.c: the literal pass over every set's literals */
    struct RxGate *pf_gate_body; /* firstpass.c: the same over those of the sets targeting REQUEST_BODY */
    int16_t *pf_sources;         /* firstpass.c: every set's sources, 2 * variable + names */
    wstr *pf_header_keys;        /* firstpass.c: request headers targeted by name */
    uint32_t *pf_header_hashes;  /* firstpass.c: hash_ci of each */
    int n_pf_header_keys;
} waf_rules;

/* Parse and compile. files[] are the files the directives may Include / @pmFromFile.
 * On error returns NULL and writes "file:line: reason" to err. */
waf_rules *waf_compile(const char *directives, size_t len, const waf_file *files, int n_files,
                       char *err, size_t err_len);
void waf_rules_free(waf_rules *r);

/* ------------------------------------------------------------------ transaction */

typedef struct {
    const rule *r;
    wstr var_name, var_val, msg, logdata;
    int severity;
    bool disruptive;
} waf_match;

/* firstpass.c: a set's inputs per (source list, chain): its sources' values after the chain
 * (parts), and their join once a set asks for it */
#define INPUTS_CACHE 64
typedef struct { uint32_t epoch; int list, chain, live, only; size_t total; wstr *parts; wstr joined; } set_input;

typedef struct waf_tx {
    const waf_rules *rules;
    arena a;
    wstr sc[V_COUNT];            /* scalars */
    uint8_t sc_set[V_COUNT];
    coll c[V_LAST_COLLECTION + 1];
    coll extra_colls[8]; wstr extra_names[8]; int n_extra; /* initcol'd collections */
    int engine;
    int body_processor;
    bool body_access;
    bool force_body_var;
    /* runtime exclusions (ctl) */
    uint32_t (*rm_ids)[2]; int n_rm_ids, cap_rm_ids;
    struct { uint32_t id; wstr tag; wstr target; } *rm_targets; int n_rm_targets, cap_rm_targets;
    wstr *rm_tags; int n_rm_tags, cap_rm_tags;
    /* state */
    int phase;
    bool allow_all, allow_phase, allow_request;
    bool intercepted;            /* a disruptive action ran (or would, in detect mode) */
    int status; wstr redirect; const rule *disruptive_rule;
    waf_match *matches; int n_matches, cap_matches;
    struct src_state *src[2 * (V_COUNT + 1)]; /* tcache.c: per source (variable, names?) */
    uint32_t src_epoch;          /* bumped whenever a source of values may have changed */
    struct pf_scan *pf_scans;    /* firstpass.c: per set, its scan over all its sources */
    set_input inputs[INPUTS_CACHE];
    struct lit_memo *lit_memo;   /* firstpass.c: the literal pass's answers per input */
    struct union_memo *union_memo; /* firstpass.c: the block unions' answers per large input */
    const rule *cur_rule;        /* for %{RULE.*} */
    void *scratch; int scratch_cap;  /* exec.c: a rule's target values, reused across rules */
    int skip_n;
    uint32_t pcre_limit_hits;
    void *match_data;            /* pcre2_match_data */
    void *match_ctx;             /* pcre2_match_context */
    bool body_processed;
    int highest_severity;
    long long args_size;         /* ARGS_COMBINED_SIZE */
} waf_tx;

/* tx.c: the transaction's state */
void waf_tx_init(waf_tx *tx, const waf_rules *rules);
void waf_tx_reset(waf_tx *tx);
void waf_tx_free(waf_tx *tx);
/* TX value by name (case-insensitive); NULL when unset. */
const wstr *tx_get_var(waf_tx *tx, int coll_var, wstr key);
void tx_set_var(waf_tx *tx, int coll_var, wstr key, wstr val);
static inline void source_changed(waf_tx *tx, int base);   /* the sources, below */
/* Set a scalar variable (REQUEST_BODY, MULTIPART_* flags, ...).  Inline: each match sets two. */
static inline void tx_set_sc(waf_tx *tx, int v, wstr val) {
    tx->sc[v] = val;
    tx->sc_set[v] = 1;
    source_changed(tx, v);
}
wstr tx_num(waf_tx *tx, long long v);
void tx_add_arg(waf_tx *tx, int coll_var, wstr key, wstr val);
void tx_body_error(waf_tx *tx, const char *msg);
/* key's item in the collection, added (empty) when missing (setvar, captures) */
kv *var_slot(waf_tx *tx, int coll_var, wstr key, uint32_t hash, bool copy);
/* The collection a variable (TX, IP, SESSION, ...) names in this transaction */
static inline coll *named_coll(waf_tx *tx, int var, bool create) {
    if (var == V_TX || var < V_GEO || var > V_RESOURCE) return &tx->c[var];
    /* IP, SESSION, USER, GLOBAL, RESOURCE, GEO: per-transaction collections */
    return &tx->c[var];
    (void)create;
}
/* a copy in the transaction's arena */
static inline wstr dupw(waf_tx *tx, const char *p, size_t n) { return (wstr){ar_dup(&tx->a, p, n), n}; }

/* intake.c: request input (filter.c fills these, then runs the phases). */
void tx_set_connection(waf_tx *tx, wstr client_ip, int client_port, wstr server_ip, int server_port);
void tx_set_request_line(waf_tx *tx, wstr method, wstr uri, wstr protocol);
void tx_add_header(waf_tx *tx, wstr name, wstr value);
void tx_set_unique_id(waf_tx *tx, wstr id);
void tx_headers_done(waf_tx *tx);      /* cookies, REQUEST_HEADERS-derived variables */
/* The body (possibly cut at the limit); `truncated` when it was longer. */
void tx_process_body(waf_tx *tx, const char *body, size_t len, bool truncated);
void body_urlencoded(waf_tx *tx, wstr body, int target_coll);

/* exec.c: run one phase; true when a disruptive action intercepted the request. */
bool waf_run_phase(waf_tx *tx, int phase);

/* transformations (transform.c); out may alias nothing, result in arena */
wstr tfn_apply(arena *a, int t, wstr in);
/* A set of bytes (bit b) and, beyond them, TFN_SPACE_PAIR (some text holds two ' ' in a
 * row; only with ' ') and TFN_FINAL_DOT (some text ends in '.') */
enum { TFN_SPACE_PAIR = 256, TFN_FINAL_DOT };
typedef struct { uint64_t w[5]; } tfn_set;
/* t returns any text made only of the bytes in `present` unchanged */
bool tfn_keeps(int t, const tfn_set *present);
uint64_t tfn_keeps_all(const tfn_set *present);   /* bit T_*: tfn_keeps(T_*, present) */
/* The same promise per text: t returns a text unchanged when none of its bytes has
 * TFN_ACTS_ANY in the table and its last byte no TFN_ACTS_LAST.  NULL: no such promise. */
enum { TFN_ACTS_ANY = 1, TFN_ACTS_LAST = 2 };
const uint8_t *tfn_acts(int t);
int tfn_lookup(const char *name, size_t n);
const char *tfn_name(int t);

/* operators (operator.c) */
int op_lookup(const char *name, size_t n);
bool op_compile(waf_rules *r, rule *ru, const char *param, size_t n, const char *dir,
                const waf_file *files, int n_files, char *err, size_t err_len);
bool op_exec(waf_tx *tx, const rule *ru, wstr val, wstr *matched_data);
/* Whether the operator misses every value made of the bytes in `present` alone (a pure
 * operator's test, asked once per source instead of once per value). */
bool op_misses_bytes(const oper *o, const tfn_set *present);
void op_free(oper *o);
int rx_match(waf_tx *tx, const regex *re, wstr subject, bool want_captures);

/* rx.c: patterns compiled, freed, and matched without a transaction */
bool pcre2_match_simple(const regex *re, wstr s);
bool rx_compile(regex *out, const char *pat, size_t n, bool caseless, char *err, size_t err_len);
void rx_free(regex *re);

/* Request values by source: a source is a request collection's values or names, or a
 * scalar, stable once set.  A value id (vid) names one value of a source; 0: not stable. */
#define VID(base, idx, names) ((((uint32_t)(base)) << 24) | ((uint32_t)(idx) << 1) | (names))
/* a value after a transformation chain: tcache.h */
/* Every value of a source after `chain`, joined by '\n' (NULL when the source is empty). */
const wstr *source_joined(waf_tx *tx, int base, bool names, int chain);
/* The distinct values of a collection source (repeats left out, deleted items too): their
 * count and their indices in the collection, in order. */
uint32_t source_distinct(waf_tx *tx, int base, bool names, const uint32_t **idx);
/* The results of `chain` for the distinct values of a collection source, by item index;
 * NULL when the chain changes no value (the results are the values themselves). */
const wstr *source_column(waf_tx *tx, int base, bool names, int chain);
/* The bytes the distinct values of a collection source hold. */
const tfn_set *source_present(waf_tx *tx, int base, bool names);
/* A scalar was set: its state is dropped, and so is what was computed from the sources (but
 * for MATCHED_VAR(_NAME), which every match sets).  Inline: each match sets two. */
static inline void source_changed(waf_tx *tx, int base) {
    tx->src[2 * base] = tx->src[2 * base + 1] = NULL;
    if (base != V_MATCHED_VAR && base != V_MATCHED_VAR_NAME) tx->src_epoch++;
}
static inline bool source_empty(const waf_tx *tx, int base) {
    return IS_COLLECTION(base) ? !tx->c[base].n : !tx->sc_set[base];
}
/* An operator that is a function of the value alone (libinjection, validators) need not run
 * again on a value equal to an earlier value of the same source it did not match: the owner
 * (a rule) records its misses, and asks before running on a repeated value. */
void value_no_match(waf_tx *tx, const void *op_owner, uint32_t vid);
bool value_known_no_match(waf_tx *tx, const void *op_owner, uint32_t vid);
/* firstpass.c's per-request scan results for a source: [group] masks, valid where the
 * [group / 8] bitmap *done says so */
uint64_t *source_masks(waf_tx *tx, int base, bool names, uint8_t **done);

/* firstpass.c: regex sets over each source's joined values, to skip rules that cannot match */
void firstpass_build(waf_rules *r);
void firstpass_free(waf_rules *r);
/* reached[block] set for each block (waf_rules.n_pf_blocks) whose sets tx scanned */
void firstpass_mark_reached(const waf_tx *tx, bool *reached);
/* The unions of the sets of the reached blocks, built and compiled */
void firstpass_build_unions(waf_rules *r, const bool *reached);
/* false when no value of any target of rule ru (pf_all) can match its operator */
bool firstpass_rule_may_match(waf_tx *tx, const rule *ru);
/* false when no value of target t can match rule ru's operator */
bool firstpass_may_match(waf_tx *tx, const rule *ru, const target *t);
/* false when v, a value after transformation chain `chain`, cannot match rule ru's regex */
bool firstpass_value_may_match(waf_tx *tx, const rule *ru, int chain, wstr v);

/* inject.c: values libinjection_sqli / libinjection_xss would call benign, told cheaply */
bool sqli_impossible(wstr v);
/* libinjection_sqli(s, n, fp), its keyword lookups answered from kept answers */
int sqli_detect(const char *s, size_t n, char fp[8]);
bool xss_impossible(wstr v);

/* expand.c: macros, and a target's values */
bool macro_parse(arena *a, macro_str *m, const char *p, size_t n, char *err, size_t err_len);
/* macro_expand and a target's values: expand.h */

/* body processors (body.c) */
void body_multipart(waf_tx *tx, wstr body);
void body_json(waf_tx *tx, wstr body);
void body_xml(waf_tx *tx, wstr body);

/* warmup.c: run ordinary requests through the rules once, so the regex sets they reach are
 * compiled (and their DFAs warm) before the first real request; through `tx` (the caller's,
 * kept for the first real request: its arena and per-set tables are then part of the
 * configured instance, not a heap growth) */
void firstpass_warm_up(waf_rules *r, waf_tx *tx);

#endif

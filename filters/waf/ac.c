/*
 * Case-insensitive Aho-Corasick automaton: ASCII letters fold to lower case,
 * other bytes compare as they are.  Children are sorted arrays (binary search)
 * so large word lists (@pmFromFile) stay compact; the root has a direct table.
 * Layer: a leaf (operator.c builds @pm lists into it).
 */
#include <stdlib.h>
#include <string.h>

#include "waf.h"

typedef struct {
    uint32_t edge_start;
    uint16_t n_edges;
    bool out;                    /* a phrase ends here or at a suffix (via fail links) */
    uint32_t fail;
    uint32_t out_len;            /* shortest phrase ending here */
    uint32_t first, sibling;     /* build time: linked children */
    uint8_t c;
} ac_node;

typedef struct { uint8_t c; uint32_t to; } ac_edge;

struct ac_automaton {
    ac_node *nodes; uint32_t n, cap;
    ac_edge *edges;
    uint32_t root_table[256];
};

static uint32_t node_new(ac_automaton *ac, uint8_t c) {
    if (ac->n == ac->cap) {
        ac->cap = ac->cap ? ac->cap * 2 : 256;
        ac->nodes = realloc(ac->nodes, ac->cap * sizeof(ac_node));
        if (!ac->nodes) abort();
    }
    ac_node *nd = &ac->nodes[ac->n];
    memset(nd, 0, sizeof *nd);
    nd->c = c;
    return ac->n++;
}

ac_automaton *ac_create(void) {
    ac_automaton *ac = calloc(1, sizeof *ac);
    if (!ac) abort();
    node_new(ac, 0);
    return ac;
}

void ac_destroy(ac_automaton *ac) {
    if (!ac) return;
    free(ac->nodes);
    free(ac->edges);
    free(ac);
}

static inline uint8_t fold(uint8_t c) { return (c >= 'A' && c <= 'Z') ? (uint8_t)(c + 32) : c; }

void ac_add(ac_automaton *ac, const char *p, size_t n) {
    if (n == 0) return;
    uint32_t s = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = fold((uint8_t)p[i]);
        uint32_t ch = ac->nodes[s].first, found = 0;
        while (ch) {
            if (ac->nodes[ch].c == c) { found = ch; break; }
            ch = ac->nodes[ch].sibling;
        }
        if (!found) {
            found = node_new(ac, c);
            ac->nodes[found].sibling = ac->nodes[s].first;
            ac->nodes[s].first = found;
        }
        s = found;
    }
    if (!ac->nodes[s].out || ac->nodes[s].out_len > n) ac->nodes[s].out_len = (uint32_t)n;
    ac->nodes[s].out = true;
}

static uint32_t step(const ac_automaton *ac, uint32_t s, uint8_t c) {
    for (;;) {
        if (s == 0) return ac->root_table[c];
        const ac_node *nd = &ac->nodes[s];
        const ac_edge *e = ac->edges + nd->edge_start;
        int lo = 0, hi = (int)nd->n_edges - 1;
        while (lo <= hi) {
            int mid = (lo + hi) >> 1;
            if (e[mid].c == c) return e[mid].to;
            if (e[mid].c < c) lo = mid + 1; else hi = mid - 1;
        }
        s = nd->fail;
    }
}

static int edge_cmp(const void *a, const void *b) {
    return (int)((const ac_edge *)a)->c - (int)((const ac_edge *)b)->c;
}

void ac_finalize(ac_automaton *ac) {
    uint32_t total = 0;
    for (uint32_t i = 0; i < ac->n; i++) {
        uint32_t k = 0;
        for (uint32_t ch = ac->nodes[i].first; ch; ch = ac->nodes[ch].sibling) k++;
        ac->nodes[i].edge_start = total;
        ac->nodes[i].n_edges = (uint16_t)k;
        total += k;
    }
    ac->edges = malloc((total ? total : 1) * sizeof(ac_edge));
    if (!ac->edges) abort();
    for (uint32_t i = 0; i < ac->n; i++) {
        uint32_t k = ac->nodes[i].edge_start;
        for (uint32_t ch = ac->nodes[i].first; ch; ch = ac->nodes[ch].sibling) ac->edges[k++] = (ac_edge){ac->nodes[ch].c, ch};
        qsort(ac->edges + ac->nodes[i].edge_start, ac->nodes[i].n_edges, sizeof(ac_edge), edge_cmp);
    }
    memset(ac->root_table, 0, sizeof ac->root_table);
    for (uint32_t ch = ac->nodes[0].first; ch; ch = ac->nodes[ch].sibling) ac->root_table[ac->nodes[ch].c] = ch;
    /* breadth first: fail links, inherited outputs */
    uint32_t *q = malloc(ac->n * sizeof(uint32_t));
    if (!q) abort();
    uint32_t qh = 0, qt = 0;
    for (uint32_t ch = ac->nodes[0].first; ch; ch = ac->nodes[ch].sibling) q[qt++] = ch;
    while (qh < qt) {
        uint32_t s = q[qh++];
        ac_node *nd = &ac->nodes[s];
        uint32_t f = nd->fail;
        if (!nd->out && ac->nodes[f].out) { nd->out = true; nd->out_len = ac->nodes[f].out_len; }
        for (uint32_t ch = nd->first; ch; ch = ac->nodes[ch].sibling) {
            uint32_t t = s == 0 ? 0 : step(ac, f, ac->nodes[ch].c);
            if (s != 0 && t == ch) t = 0;
            ac->nodes[ch].fail = s == 0 ? 0 : t;
            q[qt++] = ch;
        }
    }
    free(q);
}

bool ac_first(const ac_automaton *ac, wstr v, size_t *at, size_t *len) {
    uint32_t s = 0;
    for (size_t i = 0; i < v.n; i++) {
        s = step(ac, s, fold((uint8_t)v.p[i]));
        if (ac->nodes[s].out) {
            *len = ac->nodes[s].out_len;
            *at = i + 1 - *len;
            return true;
        }
    }
    return false;
}

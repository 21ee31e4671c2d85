/*
 * tensor_index.c: see tensor_index.h.
 */
#include "tensor/tensor_index.h"

#include <stdlib.h>
#include <string.h>

#include "base/fc_base.h"

void fc_tensor_index_add(fc_tensor_index *ix, char *name, const fc_tensor *t, int file)
{
    if (ix->n == ix->cap) {
        ix->cap = ix->cap ? ix->cap * 2 : 64;
        ix->ents = fc_xrealloc(ix->ents, (size_t)ix->cap * sizeof *ix->ents);
    }
    ix->ents[ix->n++] = (fc_tensor_entry){name, *t, file};
}

static int cmp_entry(const void *a, const void *b)
{
    return strcmp(((const fc_tensor_entry *)a)->name, ((const fc_tensor_entry *)b)->name);
}

bool fc_tensor_index_finish(fc_tensor_index *ix, const char *what)
{
    if (ix->n > 1) qsort(ix->ents, (size_t)ix->n, sizeof *ix->ents, cmp_entry);
    for (int64_t i = 1; i < ix->n; i++) {
        if (strcmp(ix->ents[i - 1].name, ix->ents[i].name) == 0) {
            FC_LOG_ERROR("%s: tensor '%s' appears more than once", what, ix->ents[i].name);
            return false;
        }
    }
    return true;
}

const fc_tensor_entry *fc_tensor_index_find(const fc_tensor_index *ix, const char *name)
{
    int64_t lo = 0, hi = ix->n;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        int c = strcmp(ix->ents[mid].name, name);
        if (c == 0) return &ix->ents[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

void fc_tensor_index_free(fc_tensor_index *ix)
{
    for (int64_t i = 0; i < ix->n; i++) free(ix->ents[i].name);
    free(ix->ents);
    memset(ix, 0, sizeof *ix);
}

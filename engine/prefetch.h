/* Tree prefetch: a take reads its parent's trees one directory at a time,
 * in order, as it compares them with what it walked. Started before the
 * walk, background threads read them meanwhile (depth first, the order they
 * are asked for), so the comparison finds them decoded: on a local
 * repository that takes the trees off the critical path, on a remote one it
 * also turns thousands of sequential reads into parallel ones. Memory is
 * bounded: past max_entries entries read and not yet taken, the threads
 * wait, and a tree not read yet is read by the caller itself. */
#ifndef CAIRN_PREFETCH_H
#define CAIRN_PREFETCH_H

#include "repo.h"
#include "tree.h"

#define PREFETCH_MAX_ENTRIES (256u * 1024u)

typedef struct tree_prefetch tree_prefetch;

/* Start reading the trees under root with nthreads threads. On failure
 * *out is NULL (and trees are read on demand): never an error. */
void prefetch_start(tree_prefetch **out, cairn_repo *r, const oid *root, int nthreads, size_t max_entries);
/* Tree id, decoded: the prefetched one (waiting while it is being read), or
 * read now. p may be NULL. The caller owns *out (tree_free). */
int prefetch_load(tree_prefetch *p, cairn_repo *r, const oid *id, tree *out);
/* Stop the threads and free what was not taken. */
void prefetch_free(tree_prefetch *p);

#endif

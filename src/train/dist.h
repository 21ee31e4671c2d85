/*
 * dist.h: data-parallel training over MPI (`mpirun -np N fastchat train`),
 * with the optimizer state sharded across the processes (ZeRO stage 1's
 * memory saving, with stage 2's reduce-scatter communication).
 *
 * Each step, every rank computes the gradient of its slice of the global batch
 * (per-device batch x accumulation x world size = the global batch) into its
 * full gradient buffer; fc_dist_step then
 *   1. reduce-scatters the gradients (MPI_Reduce_scatter, summed): rank r ends
 *      with the global gradient of its shard, floats [lo_r, lo_r + n_r) of the
 *      flat parameter buffer (contiguous slices, n / W each, not aligned to
 *      parameter boundaries);
 *   2. clips with the global norm (the shards' squared norms all-reduced), as
 *      torch.nn.utils.clip_grad_norm_ over the whole model;
 *   3. runs AdamW on the shard with the rank's own moments (fc_adamw over
 *      [lo_r, lo_r + n_r): 2 n / W floats of optimizer state per process
 *      instead of 2 n);
 *   4. all-gathers the updated parameters (MPI_Allgatherv) so every rank holds
 *      the whole model for the next forward.
 * Parameters and the gradient buffer stay whole on every rank (each rank's
 * backward writes the whole gradient before the reduce-scatter; sharding
 * them is ZeRO-2/3 / full FSDP, not done here).
 *
 * Build: with OpenMPI's development package present (pkg-config ompi-c), the
 * Makefile compiles this file against it (FC_HAVE_MPI) and links libmpi;
 * without it, a single-process stub that refuses to run under mpirun.
 * Launch: MPI_Init is called only when the process was started by a launcher
 * (mpirun / srun set OMPI_COMM_WORLD_SIZE, PMIX_RANK or PMI_RANK), so the same
 * binary runs alone without MPI's start-up cost; everything below then sees a
 * world of 1.
 *
 * Threads: call everything from the main thread (MPI_THREAD_FUNNELED).
 * Collectives (marked so): every rank must call them, in the same order.
 */
#ifndef FC_TRAIN_DIST_H
#define FC_TRAIN_DIST_H

#include <stdbool.h>
#include <stddef.h>
#include "base/fc_base.h"
#include "train/train.h"

/* Initialises MPI when launched by mpirun (see above). FC_OK, or an error
 * (logged) when launched by mpirun with several processes and this build has
 * no MPI, or MPI_Init fails. Idempotent. */
enum fc_status fc_dist_init(int *argc, char ***argv);
/* MPI_Finalize when fc_dist_init initialised MPI; a no-op otherwise. */
void fc_dist_finalize(void);
/* MPI_Abort(COMM_WORLD): ends every rank (a rank that failed alone would
 * leave the others waiting in a collective). Returns only without MPI. */
void fc_dist_abort(int code);

bool fc_dist_enabled(void);  /* this build has MPI */
int fc_dist_rank(void);      /* 0 without MPI */
int fc_dist_world(void);     /* 1 without MPI */

/* Rank r's slice of n floats: [*lo, *lo + *cnt), lo = floor(n r / W). */
void fc_dist_shard(size_t n, int rank, int world, size_t *lo, size_t *cnt);

/* Collective: sums v[0..n) over the ranks, in place. */
void fc_dist_sum(double *v, int n);
/* Collective: the worst (lowest) status over the ranks, so all take the
 * same branch after an I/O step that only rank 0 did. */
enum fc_status fc_dist_agree(enum fc_status st);

/* Collective: one optimizer step (steps 1-4 above) on a model whose gradient
 * buffer holds this rank's part of the step's gradient, with `o` initialised
 * by fc_adamw_init_shard over this rank's fc_dist_shard. Returns the global
 * gradient norm before clipping (max_norm <= 0: no clipping). The gradient
 * buffer is scratch afterwards. NAN on an MPI error (logged). */
double fc_dist_step(fc_train_model *tm, fc_adamw *o, double max_norm, double lr);

/* Collective: writes dir/optimizer.safetensors from the sharded moments, in
 * fc_train_save_optimizer's format (so a checkpoint resumes at any world
 * size): rank 0 writes, receiving the other ranks' shards one chunk at a
 * time (it never holds more than its own shard and one chunk). The result is
 * rank 0's status; call fc_dist_agree after. */
enum fc_status fc_dist_save_optimizer(fc_train_model *tm, const fc_adamw *o, const char *dir);

/* Collective: this process's peak resident set (getrusage ru_maxrss, KiB)
 * for every rank into out[0..world) on rank 0 (other ranks: out untouched). */
void fc_dist_peak_rss(long *out);

#endif

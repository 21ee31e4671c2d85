/*
 * np_random.h: numpy's legacy global generator (np.random.seed(s) followed by
 * np.random.shuffle / np.random.permutation), bit for bit, so that `fastchat
 * data sample` and `split-train-test` pick the conversations FastChat's
 * scripts pick for the same seed.
 *
 * numpy's RandomState is MT19937 seeded with init_genrand(seed) (the seed is
 * an integer in [0, 2^32)); shuffle and permutation run Fisher-Yates from the
 * end, drawing j in [0, i] with random_interval(): the smallest all-ones mask
 * >= i, 32-bit draws masked until one is <= i (numpy/random/src/distributions,
 * legacy path; i < 2^32 here). Nothing else of numpy is reproduced.
 */
#ifndef FC_DATA_NP_RANDOM_H
#define FC_DATA_NP_RANDOM_H

#include <stddef.h>
#include <stdint.h>

typedef struct fc_np_random {
    uint32_t mt[624];
    int mti;
} fc_np_random;

/* np.random.seed(seed) */
void fc_np_random_seed(fc_np_random *r, uint32_t seed);
/* the next 32-bit output of MT19937 */
uint32_t fc_np_random_u32(fc_np_random *r);
/* np.random.shuffle(x) on a list of n items, applied to idx (any contents). */
void fc_np_random_shuffle(fc_np_random *r, size_t *idx, size_t n);

#endif

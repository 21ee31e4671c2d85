/*
 * np_random.c: MT19937 (Matsumoto & Nishimura 1998, init_genrand seeding) and
 * numpy's legacy shuffle on top of it; see np_random.h.
 */
#include "data/np_random.h"

void fc_np_random_seed(fc_np_random *r, uint32_t seed)
{
    r->mt[0] = seed;
    for (int i = 1; i < 624; i++)
        r->mt[i] = 1812433253u * (r->mt[i - 1] ^ (r->mt[i - 1] >> 30)) + (uint32_t)i;
    r->mti = 624;
}

uint32_t fc_np_random_u32(fc_np_random *r)
{
    if (r->mti >= 624) {
        for (int k = 0; k < 624; k++) {
            uint32_t y = (r->mt[k] & 0x80000000u) | (r->mt[(k + 1) % 624] & 0x7fffffffu);
            r->mt[k] = r->mt[(k + 397) % 624] ^ (y >> 1) ^ ((y & 1u) ? 0x9908b0dfu : 0u);
        }
        r->mti = 0;
    }
    uint32_t y = r->mt[r->mti++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    y ^= y >> 18;
    return y;
}

/* numpy's random_interval(max) for max < 2^32 */
static uint32_t interval(fc_np_random *r, uint32_t max)
{
    if (max == 0) return 0;
    uint32_t mask = max;
    mask |= mask >> 1;
    mask |= mask >> 2;
    mask |= mask >> 4;
    mask |= mask >> 8;
    mask |= mask >> 16;
    uint32_t v;
    while ((v = fc_np_random_u32(r) & mask) > max) {}
    return v;
}

void fc_np_random_shuffle(fc_np_random *r, size_t *idx, size_t n)
{
    for (size_t i = n > 0 ? n - 1 : 0; i >= 1; i--) {
        size_t j = interval(r, (uint32_t)i);
        size_t t = idx[i];
        idx[i] = idx[j];
        idx[j] = t;
    }
}

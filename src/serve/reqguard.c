/*
 * reqguard.c: see reqguard.h.
 */
#include "serve/reqguard.h"

#include <string.h>

bool fc_json_has_nul(const char *s, size_t n)
{
    if (memchr(s, 0, n)) return true;
    bool in_str = false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!in_str) {
            if (c == '"') in_str = true;
            continue;
        }
        if (c == '"') {
            in_str = false;
        } else if (c == '\\') {
            if (i + 1 >= n) return false;
            if (s[i + 1] == 'u' && i + 5 < n && s[i + 2] == '0' && s[i + 3] == '0' && s[i + 4] == '0' &&
                s[i + 5] == '0')
                return true;
            i++; /* the escaped character (\" or \\ among them) */
        }
    }
    return false;
}

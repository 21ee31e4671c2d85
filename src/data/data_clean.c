/* data_clean.c: placeholder (being written) */
#include "data/data_impl.h"
#include "base/fc_base.h"
bool fc_data_clean_sharegpt(const char *in_file, const char *out_file, long long begin,
                            bool has_begin, long long end, bool has_end, const fc_data_opts *o)
{
    FC_LOG_ERROR("clean-sharegpt: not written yet");
    return false;
}

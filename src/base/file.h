/*
 * file.h: reading a whole file and replacing one atomically, the two file
 * chores every layer has. For large read-only inputs (weights) use
 * fc_mmap_open (fc_base.h) instead.
 */
#ifndef FC_FILE_H
#define FC_FILE_H

#include <stddef.h>

#include "base/fc_base.h"

/* Reads the whole file at path ("-" reads standard input) into a malloc'd
 * buffer with a NUL after the last byte (not counted in *len); the caller
 * frees it with free(). Returns NULL and logs "path: reason" with
 * FC_LOG_ERROR when the file cannot be opened or read, or holds more than
 * max bytes (max == 0: no limit). len may be NULL. Works on pipes too. */
char *fc_file_read(const char *path, size_t *len, size_t max);

/* Replaces the file at path with data[0..len) so that a reader (or a crash)
 * sees the old content or the new one, never a part: writes path.tmp.<pid>
 * in the same folder, fsyncs it, renames it over path, fsyncs the folder.
 * The new file gets mode 0644 (minus the umask). Returns FC_OK, or
 * FC_ERR_IO with FC_LOG_ERROR (the temporary file removed). */
enum fc_status fc_file_write_atomic(const char *path, const void *data, size_t len);

#endif

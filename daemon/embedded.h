/*
 * daemon/embedded.h — files compiled into the binary by daemon/embed.cmake: the SQL
 * migrations of sql/ (sorted by name, so by number) and the demo's sample CSVs.
 */
#ifndef SSMD_EMBEDDED_H
#define SSMD_EMBEDDED_H

typedef struct ssmd_embedded_file {
    const char *name;   /* file name, e.g. "001_schema.sql"; NULL ends a table */
    const char *text;   /* contents, NUL-terminated */
} ssmd_embedded_file;

extern const ssmd_embedded_file ssmd_migrations[];
extern const ssmd_embedded_file ssmd_demo_data[];

#endif

/*
 * tests/integration/harness.h — helpers for integration tests: the fixture's PostgreSQL
 * server, a fresh database per test, running the real `ssmd` binary and capturing its
 * output, and one-value queries.
 */
#ifndef SSMD_IT_HARNESS_H
#define SSMD_IT_HARNESS_H

#include <libpq-fe.h>
#include <stddef.h>

/* Creates (dropping first) database `name` on the fixture's server; writes its DSN. */
void it_create_db(const char *name, char *dsn, size_t len);
PGconn *it_connect(const char *dsn);
/* Runs $SSMD_BIN with args (NULL-terminated); stdout/stderr captured into malloc'ed
 * strings (may be NULL to discard). Returns the exit status. */
int it_run(const char *const *args, char **out, char **err);
long it_query_long(PGconn *c, const char *sql);
/* First column of the first row, malloc'ed ("" when no row). */
char *it_query_text(PGconn *c, const char *sql);
void it_exec(PGconn *c, const char *sql);
void it_write_file(const char *path, const char *text);
/* A fresh folder under /tmp for this test's files. */
void it_tmpdir(char *out, size_t len);

#endif

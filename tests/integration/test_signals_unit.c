/*
 * tests/integration/test_signals_unit.c — etc/ssmd.service passes `systemd-analyze
 * verify` (with ExecStart pointed at the binary under test, since verify insists that
 * the program exists and /usr/local/bin/ssmd is only there once installed) and keeps
 * the settings the daemon relies on: Type=notify with a watchdog, reload by SIGHUP, a
 * stop timeout longer than ssmd's own --stop-timeout, and the hardening.
 * Skipped where systemd-analyze is not installed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"
#include "test_fleet_util.h"

#define UNIT SSMD_TEST_DATA "/../../etc/ssmd.service"

static void test_unit_verifies(void **state) {
    (void)state;
    if (system("command -v systemd-analyze >/dev/null 2>&1") != 0) skip();
    const char *bin = getenv("SSMD_BIN");
    assert_non_null(bin);
    char dir[256], copy[320], cmd[1200];
    it_tmpdir(dir, sizeof dir);
    snprintf(copy, sizeof copy, "%s/ssmd.service", dir);
    char *text = fu_slurp(UNIT);
    assert_non_null(strstr(text, "ExecStart=/usr/local/bin/ssmd "));
    FILE *f = fopen(copy, "w");
    assert_non_null(f);
    const char *p = text, *hit;
    while ((hit = strstr(p, "/usr/local/bin/ssmd")) != NULL) {
        fwrite(p, 1, (size_t)(hit - p), f);
        fputs(bin, f);
        p = hit + strlen("/usr/local/bin/ssmd");
    }
    fputs(p, f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "cd %s && systemd-analyze verify %s 2>&1", dir, copy);
    FILE *out = popen(cmd, "r");
    char buf[4096] = "";
    size_t n = fread(buf, 1, sizeof buf - 1, out);
    buf[n] = '\0';
    int st = pclose(out);
    if (st != 0 || n) fprintf(stderr, "systemd-analyze verify:\n%s\n", buf);
    assert_int_equal(st, 0);
    assert_int_equal(n, 0);

    const char *must[] = {"\nType=notify\n", "\nNotifyAccess=main\n", "\nWatchdogSec=", "\nExecReload=/bin/kill -HUP $MAINPID\n",
                          "--stop-timeout 30", "\nTimeoutStopSec=60s\n", "\nDynamicUser=yes\n", "\nProtectSystem=strict\n",
                          "\nNoNewPrivileges=yes\n", "\nPrivateTmp=yes\n", "\nProtectHome=yes\n", "\nCapabilityBoundingSet=\n",
                          NULL};
    for (const char **m = must; *m; m++) {
        if (!strstr(text, *m)) fprintf(stderr, "missing from the unit: %s\n", *m);
        assert_non_null(strstr(text, *m));
    }
    free(text);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_unit_verifies)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}

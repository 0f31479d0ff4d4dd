/*
 * tests/models/test_backtest_cmd.c — `ssmd backtest` over CSV files, driven through
 * ssmd_cmd_backtest with stdout captured: the JSON summary (keys, and numbers equal to a
 * direct ssm_backtest_run), spec lists with commas inside parentheses, the baselines
 * always present, CSV output, --out detail files, --plot, usage errors, and the progress
 * bar: drawn on a terminal (a pseudo-terminal here), absent when stderr is a pipe/file.
 */
#include <fcntl.h>
#include <math.h>
#include <pty.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "backtest.h"
#include "cli.h"
#include "test_util.h"

#define DATA SSMD_TEST_DATA "/"

/* Runs the command with stdout (and stderr when err_fd >= 0) redirected; returns the
 * exit status and the captured stdout (malloc'ed) in *out. */
static int run_cmd(char **argv, char **out, int err_fd) {
    int argc = 0;
    while (argv[argc]) argc++;
    char path[] = "/tmp/ssmd_bt_outXXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    fflush(stdout);
    fflush(stderr);
    int saved = dup(1), saved_err = dup(2);
    dup2(fd, 1);
    if (err_fd >= 0) dup2(err_fd, 2);
    ssmd_cli cli = {0};
    cli.config_path = "/nonexistent/ssmd.yaml";
    int rc = ssmd_cmd_backtest(argc, argv, &cli);
    fflush(stdout);
    fflush(stderr);
    dup2(saved, 1);
    dup2(saved_err, 2);
    close(saved);
    close(saved_err);
    off_t len = lseek(fd, 0, SEEK_END);
    lseek(fd, 0, SEEK_SET);
    *out = malloc((size_t)len + 1);
    assert_int_equal(read(fd, *out, (size_t)len), len);
    (*out)[len] = '\0';
    close(fd);
    unlink(path);
    return rc;
}

/* The number after "key": inside the object that starts at obj. */
static double json_field(const char *obj, const char *key) {
    char k[64];
    snprintf(k, sizeof k, "\"%s\":", key);
    const char *end = strchr(obj, '}');
    const char *p = strstr(obj, k);
    assert_non_null(p);
    assert_true(!end || p < end);
    return strtod(p + strlen(k), NULL);
}

static void test_json_summary(void **state) {
    (void)state;
    char *argv[] = {"backtest", "--csv", DATA "Nile.csv", "--csv", DATA "AirPassengers.csv", "--horizon", "6",
                    "--origins", "3", "--model", "auto(naive,drift),snaive(season=2)", "--format", "json", NULL};
    char *out;
    int null_fd = open("/dev/null", O_WRONLY);
    assert_int_equal(run_cmd(argv, &out, null_fd), 0);
    close(null_fd);
    /* one summary object per model: the two given (split at top-level commas only) and
     * the baselines that were not given */
    assert_non_null(strstr(out, "\"summary\":["));
    const char *models[] = {"auto(naive,drift)", "snaive(season=2)", "naive", "snaive", "drift"};
    for (size_t k = 0; k < 5; k++) {
        char key[96];
        snprintf(key, sizeof key, "{\"model\":\"%s\"", models[k]);
        const char *obj = strstr(out, key);
        if (!obj) print_error("missing %s in\n%s\n", key, out);
        assert_non_null(obj);
        for (const char *const *f = (const char *const[]){"mae", "rmse", "smape", "mase", "mase_median", "pinball",
                                                           "coverage_80", "coverage_95", "rank", NULL};
             *f; f++)
            assert_non_null(strstr(obj, *f));
    }
    /* the per-series numbers are those of the engine */
    const char *obj = strstr(out, "{\"series\":\"AirPassengers\",\"model\":\"naive\"");
    assert_non_null(obj);
    double *v = NULL;
    size_t n = read_csv_values(DATA "AirPassengers.csv", &v);
    ssm_series y = {"AirPassengers", {SSM_FREQ_MONTH, 1}, 0, n, v};
    ssm_backtest_opts o;
    memset(&o, 0, sizeof o);
    o.horizon = 6;
    o.origins = 3;
    ssm_backtest bt;
    ssm_error err;
    assert_int_equal(ssm_backtest_run(&y, "naive", &o, &bt, &err), SSM_OK);
    assert_double_equal(json_field(obj, "mase"), bt.overall.mase, 1e-12);
    assert_double_equal(json_field(obj, "coverage_95"), bt.overall.coverage[0], 1e-12);
    ssm_backtest_free(&bt);
    free(v);
    /* the summary's mase is the mean across the two series */
    const char *sn = strstr(out, "{\"model\":\"naive\"");
    const char *a = strstr(out, "{\"series\":\"Nile\",\"model\":\"naive\"");
    assert_double_equal(json_field(sn, "mase"), 0.5 * (json_field(a, "mase") + json_field(obj, "mase")), 1e-9);
    free(out);
}

static void test_csv_out_and_plot(void **state) {
    (void)state;
    char dir[] = "/tmp/ssmd_bt_dirXXXXXX";
    assert_non_null(mkdtemp(dir));
    char outdir[256], svg[256];
    snprintf(outdir, sizeof outdir, "%s/detail", dir);
    snprintf(svg, sizeof svg, "%s/plot.svg", dir);
    char *argv[] = {"backtest", "--csv", DATA "UKgas.csv", "--horizon", "4", "--origins", "2", "--format", "csv",
                    "--out", outdir, "--plot", svg, "--refit", "once", NULL};
    char *out;
    int null_fd = open("/dev/null", O_WRONLY);
    assert_int_equal(run_cmd(argv, &out, null_fd), 0);
    close(null_fd);
    assert_true(strncmp(out, "scope,series,model,step,n,mae,rmse,mape,smape,mase,pinball,coverage_95,width_95,"
                             "coverage_80,width_80,rank",
                        95) == 0);
    assert_non_null(strstr(out, "\nmean,,\"snaive\",all,"));
    assert_non_null(strstr(out, "\nseries,\"UKgas\",\"drift\",4,"));
    free(out);
    /* detail: header + 3 models x 2 origins x 4 steps */
    char path[512];
    snprintf(path, sizeof path, "%s/UKgas.csv", outdir);
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    char line[1024];
    size_t lines = 0;
    assert_non_null(fgets(line, sizeof line, fp));
    assert_string_equal(line, "model,origin,origin_ts,step,ts,actual,mean,q0.025,q0.1,q0.5,q0.9,q0.975\n");
    while (fgets(line, sizeof line, fp)) lines++;
    fclose(fp);
    assert_int_equal(lines, 3 * 2 * 4);
    fp = fopen(svg, "r");
    assert_non_null(fp);
    assert_non_null(fgets(line, sizeof line, fp));
    assert_non_null(strstr(line, "<?xml"));
    fclose(fp);
    unlink(path);
    unlink(svg);
    rmdir(outdir);
    rmdir(dir);
}

static void test_usage_errors(void **state) {
    (void)state;
    char *bad[][8] = {
        {"backtest", "--csv", DATA "Nile.csv", "--nosuch", NULL},
        {"backtest", "--csv", DATA "Nile.csv", "--refit", "sometimes", NULL},
        {"backtest", "--csv", DATA "Nile.csv", "--model", "sarima(1,1", NULL},
        {"backtest", "--csv", DATA "Nile.csv", "--model", "nosuchmodel", NULL},
        {"backtest", "--csv", DATA "Nile.csv", "--quantiles", "0.9,0.1", NULL},
        {"backtest", "--csv", DATA "Nile.csv", "--horizon", "0", NULL},
        {"backtest", "--csv", DATA "Nile.csv", "--series", "x", NULL},
    };
    int null_fd = open("/dev/null", O_WRONLY);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *out;
        int rc = run_cmd(bad[i], &out, null_fd);
        if (rc != 2) print_error("case %zu: status %d\n", i, rc);
        assert_int_equal(rc, 2);
        free(out);
    }
    /* a missing file is a failure (1), not a usage error */
    char *missing[] = {"backtest", "--csv", "/nonexistent/x.csv", NULL};
    char *out;
    assert_int_equal(run_cmd(missing, &out, null_fd), 1);
    free(out);
    /* too many origins: every model fails on the only series -> 1 */
    char *toolong[] = {"backtest", "--csv", DATA "Nile.csv", "--horizon", "50", "--origins", "9", NULL};
    assert_int_equal(run_cmd(toolong, &out, null_fd), 1);
    free(out);
    close(null_fd);
}

static void test_progress_bar(void **state) {
    (void)state;
    char *argv[] = {"backtest", "--csv", DATA "Nile.csv", "--csv", DATA "UKgas.csv", "--horizon", "4", "--origins", "3",
                    NULL};
    /* stderr a regular file: no bar, no carriage return */
    char path[] = "/tmp/ssmd_bt_errXXXXXX";
    int fd = mkstemp(path);
    char *out;
    assert_int_equal(run_cmd(argv, &out, fd), 0);
    free(out);
    off_t len = lseek(fd, 0, SEEK_END);
    lseek(fd, 0, SEEK_SET);
    char buf[8192] = {0};
    assert_true(read(fd, buf, sizeof buf - 1) == len);
    assert_null(strchr(buf, '\r'));
    assert_null(strstr(buf, "series  elapsed"));
    close(fd);
    unlink(path);
    /* stderr a terminal: the bar is drawn, and ends with the full count */
    int master, slave;
    assert_int_equal(openpty(&master, &slave, NULL, NULL, NULL), 0);
    assert_int_equal(run_cmd(argv, &out, slave), 0);
    free(out);
    close(slave);
    fcntl(master, F_SETFL, O_NONBLOCK);
    size_t got = 0;
    ssize_t r;
    memset(buf, 0, sizeof buf);
    while (got < sizeof buf - 1 && (r = read(master, buf + got, sizeof buf - 1 - got)) > 0) got += (size_t)r;
    close(master);
    assert_non_null(strchr(buf, '\r'));
    assert_non_null(strstr(buf, "2/2 series  elapsed"));
    assert_non_null(strstr(buf, "remaining"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_summary),
        cmocka_unit_test(test_csv_out_and_plot),
        cmocka_unit_test(test_usage_errors),
        cmocka_unit_test(test_progress_bar),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

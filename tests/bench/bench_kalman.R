#!/usr/bin/Rscript
# R's side of tests/bench/bench_kalman: the same fits with base R's StructTS and arima
# (what forecast's auto.arima / tbats build on), timed in-process in CPU seconds.
# Usage: Rscript tests/bench/bench_kalman.R DATA_DIR SIM_CSV [REPEATS]
# Prints "name median_seconds loglik nparams p1 p2 ..." with the parameters in ssmd's
# order: local level (irregular, level), BSM (irregular, level, slope, seasonal),
# SARIMA (ma.L1, ma.S.L12, sigma2). R's StructTS log-likelihood drops constants, so
# bench_kalman also evaluates ssmd's likelihood at these estimates.
args <- commandArgs(trailingOnly = TRUE)
data <- args[1]
sim <- args[2]
repeats <- if (length(args) > 2) as.integer(args[3]) else 5L
# median CPU seconds per call over reps batches; short fits run in batches of k calls
# (proc.time resolves 1 ms) so that a batch takes at least ~50 ms
timed <- function(fn, reps, calibrate = TRUE) {
  cpu <- function() { p <- proc.time(); p[["user.self"]] + p[["sys.self"]] }
  k <- 1L
  if (calibrate) {
    t0 <- cpu()
    fn()
    first <- cpu() - t0
    k <- if (first < 0.02) max(1L, as.integer(ceiling(0.05 / max(first, 0.0005)))) else 1L
  }
  ts <- numeric(reps)
  for (i in seq_len(reps)) {
    t0 <- cpu()
    for (j in seq_len(k)) res <- fn()
    ts[i] <- (cpu() - t0) / k
  }
  list(t = median(ts), res = res)
}
emit <- function(name, t, ll, p) {
  cat(sprintf("%s %.9g %.17g %d %s\n", name, t, ll, length(p),
              paste(sprintf("%.17g", p), collapse = " ")))
}
cat(sprintf("# %s\n", R.version.string))
nile <- ts(read.csv(file.path(data, "Nile.csv"))$value)
air <- ts(log(read.csv(file.path(data, "AirPassengers.csv"))$value), frequency = 12)
r <- timed(function() StructTS(nile, type = "level"), 4L * repeats)
emit("nile_local_level", r$t, r$res$loglik, r$res$coef[c("epsilon", "level")])
r <- timed(function() arima(air, order = c(0, 1, 1),
                            seasonal = list(order = c(0, 1, 1), period = 12)), repeats)
emit("airline_sarima", r$t, r$res$loglik, c(r$res$coef[c("ma1", "sma1")], r$res$sigma2))
r <- timed(function() StructTS(air, type = "BSM"), repeats)
emit("bsm_log_air", r$t, r$res$loglik, r$res$coef[c("epsilon", "level", "slope", "seas")])
Y <- as.matrix(read.csv(sim, header = FALSE))
for (i in seq_len(nrow(Y))) {
  y <- ts(as.numeric(Y[i, ]), frequency = 24)
  r <- timed(function() StructTS(y, type = "BSM"), 1L, FALSE)
  emit(sprintf("sim:%d", i - 1), r$t, r$res$loglik,
       r$res$coef[c("epsilon", "level", "slope", "seas")])
}

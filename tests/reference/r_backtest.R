#!/usr/bin/env Rscript
# tests/reference/r_backtest.R — the outside reference for `ssmd backtest`.
#
# Runs R's forecast package (naive, snaive, rwf(drift = TRUE), ets, auto.arima) over the
# same rolling origins ssmd uses (counted back from the end: origin i trains on the first
# n - H - (N-1-i)*K points) on the shared data sets, and scores the forecasts with the
# textbook definitions (Hyndman & Koehler 2006; M4), written out here independently of
# ssmd's C code. Writes, under tests/reference/fixtures/backtest/:
#   settings.csv   series, file, season, horizon, origins, step
#   forecasts.csv  series, model, origin, step, actual, mean, q025, q10, q50, q90, q975
#   metrics.csv    series, model, mae, rmse, mape, smape, mase, pinball, coverage_80,
#                  coverage_95, width_80, width_95
# Quantiles are the forecast package's 80% and 95% limits (q10/q90, q025/q975) and the
# point forecast as the median. Run from the repository root:
#   Rscript tests/reference/r_backtest.R
suppressPackageStartupMessages(library(forecast))

root <- "."
out_dir <- file.path(root, "tests/reference/fixtures/backtest")
dir.create(out_dir, recursive = TRUE, showWarnings = FALSE)

sets <- data.frame(
  series  = c("Nile", "AirPassengers", "UKgas", "taylor"),
  file    = c("Nile.csv", "AirPassengers.csv", "UKgas.csv", "taylor.csv"),
  season  = c(1, 12, 4, 48),
  horizon = c(10, 12, 8, 48),
  origins = c(5, 5, 5, 3),
  step    = c(10, 12, 8, 48),
  stringsAsFactors = FALSE)

levels <- c(0.025, 0.1, 0.5, 0.9, 0.975)

# --- metrics (see models/metrics.h for the same rules in words) ---------------------------
mase_scale <- function(x, m) {
  n <- length(x)
  lag <- if (m < 1) 1 else m
  if (lag >= n) lag <- 1
  d <- abs(x[(lag + 1):n] - x[1:(n - lag)])
  d <- d[!is.na(d)]
  if (length(d) == 0) NA else mean(d)
}
pinball <- function(y, q, tau) ifelse(y - q >= 0, tau * (y - q), (tau - 1) * (y - q))

score <- function(fc) {
  # fc: data frame of one series/model, columns actual, mean, q025..q975, scale
  y <- fc$actual; f <- fc$mean; e <- y - f
  nz <- y != 0
  d <- abs(y) + abs(f)
  sm <- ifelse(d > 0, abs(e) / d, 0)
  okm <- fc$scale > 0
  Q <- as.matrix(fc[, c("q025", "q10", "q50", "q90", "q975")])
  pb <- sapply(seq_along(levels), function(j) pinball(y, Q[, j], levels[j]))
  in80 <- y >= fc$q10 & y <= fc$q90
  in95 <- y >= fc$q025 & y <= fc$q975
  data.frame(
    mae = mean(abs(e)), rmse = sqrt(mean(e^2)),
    mape = if (any(nz)) 100 * mean(abs(e[nz] / y[nz])) else NA,
    smape = 200 * mean(sm),
    mase = if (any(okm)) mean(abs(e[okm]) / fc$scale[okm]) else NA,
    pinball = mean(pb),
    coverage_80 = mean(in80), coverage_95 = mean(in95),
    width_80 = mean(fc$q90 - fc$q10), width_95 = mean(fc$q975 - fc$q025))
}

# --- the models -----------------------------------------------------------------------------
run_model <- function(name, train, H) {
  fit <- switch(name,
    naive = naive(train, h = H, level = c(80, 95)),
    snaive = snaive(train, h = H, level = c(80, 95)),
    drift = rwf(train, h = H, drift = TRUE, level = c(80, 95)),
    ets = forecast(ets(train), h = H, level = c(80, 95)),
    auto.arima = forecast(auto.arima(train), h = H, level = c(80, 95)))
  data.frame(mean = as.numeric(fit$mean),
             q025 = as.numeric(fit$lower[, 2]), q10 = as.numeric(fit$lower[, 1]),
             q50 = as.numeric(fit$mean),
             q90 = as.numeric(fit$upper[, 1]), q975 = as.numeric(fit$upper[, 2]))
}

models <- c("naive", "snaive", "drift", "ets", "auto.arima")
all_fc <- list()
all_m <- list()
for (s in seq_len(nrow(sets))) {
  st <- sets[s, ]
  d <- read.csv(file.path(root, "tests/data", st$file), stringsAsFactors = FALSE)
  y <- d$value
  n <- length(y); H <- st$horizon; N <- st$origins; K <- st$step
  ends <- n - H - (N - 1 - (0:(N - 1))) * K
  for (name in models) {
    t0 <- Sys.time()
    rows <- list()
    for (i in seq_along(ends)) {
      e <- ends[i]
      train <- ts(y[1:e], frequency = st$season)
      f <- suppressWarnings(run_model(name, train, H))
      rows[[i]] <- data.frame(series = st$series, model = name, origin = i - 1, step = 1:H,
                              actual = y[(e + 1):(e + H)], f,
                              scale = mase_scale(y[1:e], st$season))
    }
    fc <- do.call(rbind, rows)
    all_fc[[length(all_fc) + 1]] <- fc
    all_m[[length(all_m) + 1]] <- data.frame(series = st$series, model = name, score(fc))
    cat(sprintf("%-14s %-11s %6.1fs  MASE %.4f\n", st$series, name,
                as.numeric(difftime(Sys.time(), t0, units = "secs")),
                tail(all_m, 1)[[1]]$mase))
  }
}

fmt <- function(df) {
  for (c in names(df)) if (is.double(df[[c]])) df[[c]] <- sprintf("%.17g", df[[c]])
  df
}
write.csv(sets, file.path(out_dir, "settings.csv"), row.names = FALSE, quote = FALSE)
fc <- do.call(rbind, all_fc)
fc$scale <- NULL
write.csv(fmt(fc), file.path(out_dir, "forecasts.csv"), row.names = FALSE, quote = FALSE)
write.csv(fmt(do.call(rbind, all_m)), file.path(out_dir, "metrics.csv"), row.names = FALSE,
          quote = FALSE)
cat(sprintf("R %s, forecast %s\n", getRversion(), packageVersion("forecast")))

#!/usr/bin/Rscript
# Regenerates tests/reference/fixtures/kalman/sarima_auto_R.txt: the orders R's
# forecast::auto.arima (stepwise, defaults) chooses for a few series, with its AICc and
# log-likelihood, for tests/kalman/test_auto.c. One line per case:
#   <case> p d q P D Q s constant loglik aicc
#
# Run from the repository root:  Rscript tests/reference/sarima_auto_R.R
suppressMessages(library(forecast))
out <- file.path("tests", "reference", "fixtures", "kalman", "sarima_auto_R.txt")
cases <- list(
  list("air_log", "AirPassengers.csv", TRUE, 12),
  list("nile", "Nile.csv", FALSE, 1)
)
lines <- c("# written by tests/reference/sarima_auto_R.R",
           sprintf("# R %s, forecast %s, auto.arima defaults", getRversion(),
                   packageVersion("forecast")))
for (cs in cases) {
  y <- read.csv(file.path("tests", "data", cs[[2]]))$value
  if (cs[[3]]) y <- log(y)
  y <- ts(y, frequency = cs[[4]])
  f <- auto.arima(y)
  a <- f$arma  # p, q, P, Q, s, d, D
  cst <- as.integer(any(names(coef(f)) %in% c("intercept", "drift")))
  lines <- c(lines, sprintf("%s %d %d %d %d %d %d %d %d %.17g %.17g", cs[[1]], a[1], a[6], a[2],
                            a[3], a[7], a[4], if (a[3] + a[4] + a[7] > 0) a[5] else 0, cst,
                            f$loglik, f$aicc))
}
writeLines(lines, out)
cat(lines, sep = "\n")

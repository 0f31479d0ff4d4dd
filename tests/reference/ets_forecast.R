#!/usr/bin/Rscript
# Regenerates tests/reference/fixtures/kalman/ets_<case>_R.txt: R's forecast::ets fits of
# the additive ETS models (the same cases as ets_statsmodels.py), bounds = "both" (R's
# defaults). R's ets reports loglik = -n/2 log(SSE) (constants dropped); we also write the
# full Gaussian log-likelihood -n/2 (log(2 pi SSE / n) + 1), the one ssmd and statsmodels
# report. Initial states are written in R's order: l, b, s1..sm where s1 is the most
# recent seasonal state (the season of the observation m steps after the first).
#
# Run from the repository root:  Rscript tests/reference/ets_forecast.R
suppressMessages(library(forecast))

out <- file.path("tests", "reference", "fixtures", "kalman")
cases <- list(
  list("ann_nile", "Nile.csv", FALSE, "ANN", FALSE, 1),
  list("aan_air", "AirPassengers.csv", TRUE, "AAN", FALSE, 1),
  list("aadn_air", "AirPassengers.csv", TRUE, "AAN", TRUE, 1),
  list("ana_ukgas", "UKgas.csv", TRUE, "ANA", FALSE, 4),
  list("aaa_air", "AirPassengers.csv", FALSE, "AAA", FALSE, 12),
  list("aada_ukgas", "UKgas.csv", TRUE, "AAA", TRUE, 4)
)
num <- function(x) paste(sprintf("%.17g", as.numeric(x)), collapse = " ")
for (cs in cases) {
  y <- read.csv(file.path("tests", "data", cs[[2]]))$value
  if (cs[[3]]) y <- log(y)
  y <- ts(y, frequency = cs[[6]])
  fit <- ets(y, model = cs[[4]], damped = cs[[5]])
  n <- length(y)
  sse <- sum(residuals(fit)^2)
  par <- fit$par
  sm <- c(par["alpha"], par["beta"], par["gamma"], par["phi"])
  sm[is.na(sm)] <- NaN
  lines <- c(
    "# ETS fixture written by tests/reference/ets_forecast.R",
    sprintf("# R %s, forecast %s, ets(model=\"%s\", damped=%s)", getRversion(),
            packageVersion("forecast"), cs[[4]], cs[[5]]),
    sprintf("data %s", cs[[2]]),
    sprintf("log %d", as.integer(cs[[3]])),
    sprintf("smoothing %s", num(sm)),
    sprintf("initstate %s", num(fit$initstate)),
    sprintf("loglik_r %s", num(fit$loglik)),
    sprintf("loglik %s", num(-n / 2 * (log(2 * pi * sse / n) + 1))),
    sprintf("sse %s", num(sse))
  )
  writeLines(lines, file.path(out, sprintf("ets_%s_R.txt", cs[[1]])))
  cat(cs[[1]], fit$method, fit$loglik, -n / 2 * (log(2 * pi * sse / n) + 1), "\n")
}

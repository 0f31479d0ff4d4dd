/*
 * kalman/kalman.h — the public API of ssmd's linear Gaussian state space library.
 *
 * Univariate observations in Durbin & Koopman's (2012) notation:
 *
 *     y_t     = d + Z a_t + e_t,          e_t ~ N(0, H)
 *     a_{t+1} = c + T a_t + R n_t,        n_t ~ N(0, Q)
 *     a_1     ~ N(a1, P1star + kappa * P1inf),  kappa -> infinity (exact diffuse)
 *
 * It provides the filter (exact diffuse initialization, missing observations as NaN,
 * steady-state switch), the log-likelihood as statsmodels reports it, the state and
 * disturbance smoothers, h-step forecasts, maximum likelihood estimation over a generic
 * "parametric model" (kalman_model) and the model builders (structural here; SARIMA,
 * ETS and automatic selection in sarima.c / ets.c / auto.c).
 *
 * It is a pure numerical library: arrays in, arrays out. No I/O, no global state, no
 * printing; every function that can fail returns 0 or a negative KALMAN_E* code and fills
 * a kalman_error (which may be NULL). Reentrant: one workspace per thread.
 *
 * Conventions: matrices are row-major double arrays; A[i*ncols + j]. Time t runs 0..n-1
 * in arrays (t = 1..n in the comments, as in the book). Names: kalman_ prefix.
 */
#ifndef KALMAN_H
#define KALMAN_H

#include <stddef.h>

/* ---- errors ------------------------------------------------------------------------ */

/* The codes equal models/model.h's SSM_E* codes so adapters can pass them through. */
enum {
    KALMAN_OK = 0,
    KALMAN_EINVAL = -1,       /* bad argument: NaN/inf parameter, bad dimension, bad spec */
    KALMAN_ENOMEM = -2,       /* allocation failed */
    KALMAN_ENUMERIC = -3,     /* numerical failure: not positive definite, no convergence */
    KALMAN_ETOOSHORT = -5,    /* series too short for the model */
    KALMAN_EUNSUPPORTED = -6  /* operation not available for this model / state */
};

typedef struct kalman_error {
    int code;
    char message[256];  /* short lower-case primary message, facts after a colon */
} kalman_error;

/* Sets code and message (printf-style); safe with err == NULL. Returns code. */
int kalman_error_set(kalman_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- the system ------------------------------------------------------------------------ */

#define KALMAN_MAX_STATES 128
#define KALMAN_MAX_PARAMS 64

/* Initialization kind of each state element. DIFFUSE: exact diffuse (P1inf = 1 on the
 * diagonal, kappa -> inf); STATIONARY: the unconditional distribution of the sub-vector
 * of all STATIONARY states (mean (I - T_ss)^-1 c_s, covariance solving the discrete
 * Lyapunov equation P = T_ss P T_ss' + (RQR')_ss); KNOWN: a1 / P1star as set by the
 * builder (P1inf = 0). */
enum { KALMAN_INIT_KNOWN = 0, KALMAN_INIT_DIFFUSE = 1, KALMAN_INIT_STATIONARY = 2 };

typedef struct kalman_ssm {
    int m;          /* state dimension (1..KALMAN_MAX_STATES) */
    int r;          /* state disturbance dimension (0..m) */
    double d;       /* observation intercept */
    double H;       /* observation noise variance (>= 0) */
    double *Z;      /* (m)   observation vector */
    double *T;      /* (m,m) transition */
    double *c;      /* (m)   state intercept (zeros when none) */
    double *R;      /* (m,r) selection */
    double *Q;      /* (r,r) state disturbance covariance */
    int *init;      /* (m)   KALMAN_INIT_* per state */
    double *a1;     /* (m)   initial mean (filled by kalman_ssm_initialize for DIFFUSE /
                             STATIONARY states; builders set KNOWN ones) */
    double *P1star; /* (m,m) initial covariance, finite part */
    double *P1inf;  /* (m,m) initial covariance, diffuse part (diagonal 0/1) */
} kalman_ssm;

/* Allocates all arrays (zeroed; init = KNOWN everywhere). Free with kalman_ssm_free. */
int kalman_ssm_alloc(kalman_ssm *s, int m, int r, kalman_error *err);
void kalman_ssm_free(kalman_ssm *s);
/* Copies dimensions-compatible contents src -> dst (both allocated with equal m, r). */
void kalman_ssm_copy(kalman_ssm *dst, const kalman_ssm *src);
/* Fills a1, P1star, P1inf from s->init (see KALMAN_INIT_*). KNOWN entries of a1/P1star
 * are kept. Fails with KALMAN_ENUMERIC when the stationary block is not stationary.
 * Needs a workspace of at least s's dimensions. */
struct kalman_workspace;
int kalman_ssm_initialize(kalman_ssm *s, struct kalman_workspace *ws, kalman_error *err);
/* Checks every number for NaN/inf, H >= 0, Q diagonal >= 0. */
int kalman_ssm_check(const kalman_ssm *s, kalman_error *err);

/* ---- workspace ------------------------------------------------------------------------- */

/* Scratch memory for systems of up to m states / r disturbances, allocated once, so the
 * filter, smoother, likelihood and forecast loops never allocate. Not shared between
 * threads. Opaque. */
typedef struct kalman_workspace kalman_workspace;
kalman_workspace *kalman_workspace_create(int m, int r, kalman_error *err);
void kalman_workspace_free(kalman_workspace *ws);

/* ---- the filter ------------------------------------------------------------------------- */

/* The filter's running state: the one-step prediction of a_t (and its variance) before
 * observation t is seen. Saving this struct (kalman_state_*) is all an incremental update
 * needs. */
typedef struct kalman_state {
    int m;
    long t;         /* observations processed so far */
    int diffuse;    /* 1 while Pinf != 0 (still in the exact diffuse phase) */
    int steady;     /* 1 once P has converged: K and F below are reused, P is fixed */
    double F;       /* steady-state forecast error variance */
    double *a;      /* (m)   a_{t+1|t} */
    double *P;      /* (m,m) P_{t+1} (finite part, P_star while diffuse) */
    double *Pinf;   /* (m,m) diffuse part (zero after the diffuse phase) */
    double *K;      /* (m)   steady-state gain T P Z' / F */
} kalman_state;

int kalman_state_alloc(kalman_state *st, int m, kalman_error *err);
void kalman_state_free(kalman_state *st);
/* Starts the state at (a1, P1star, P1inf) of s; t = 0. */
void kalman_state_start(kalman_state *st, const kalman_ssm *s);
void kalman_state_copy(kalman_state *dst, const kalman_state *src);

/* Likelihood pieces accumulated by the filter (added to, so incremental runs sum up;
 * zero the struct before the first run). */
typedef struct kalman_loglik_acc {
    double loglik;      /* statsmodels' log-likelihood (see README.md: diffuse steps
                           contribute -0.5 (log 2 pi + log F_inf)) */
    double sum_logF;    /* sum over non-diffuse steps of log F_t */
    double sum_v2F;     /* sum over non-diffuse steps of v_t^2 / F_t */
    double sum_logFinf; /* sum over diffuse steps with F_inf > 0 of log F_inf */
    long nobs;          /* non-missing observations */
    long ndiffuse;      /* observations processed in the diffuse phase (incl. missing) */
    long ndiffuse_obs;  /* diffuse-phase observations with F_inf > 0 */
    long nmissing;
} kalman_loglik_acc;

/* Optional per-step storage for the smoother and for tests; any pointer may be NULL.
 * Allocate with kalman_store_alloc (all arrays) or fill the pointers yourself. n steps. */
typedef struct kalman_store {
    size_t n;
    int m;
    double *a_pred;    /* (n+1,m)   a_t, t = 1..n+1 */
    double *P_pred;    /* (n+1,m,m) P_t (P_star during the diffuse phase) */
    double *Pinf_pred; /* (n+1,m,m) P_inf,t */
    double *a_filt;    /* (n,m)     a_{t|t} */
    double *P_filt;    /* (n,m,m)   P_{t|t} (star part) */
    double *v;         /* (n)       forecast errors (NaN when missing) */
    double *F;         /* (n)       F_t; F_star,t in diffuse steps */
    double *Finf;      /* (n)       F_inf,t (0 after the diffuse phase and when missing) */
    double *K;         /* (n,m)     gains K_t = T M_t / F_t; in diffuse steps with F_inf > 0
                                    K^(1) = T (M_* - M_inf F_* / F_inf) / F_inf; 0 if missing */
    double *Kinf;      /* (n,m)     K^(0) = T M_inf / F_inf in diffuse steps, else 0 */
    double *M;         /* (n,m)     M_t = P_t Z' (M_star in diffuse steps) */
    double *Minf;      /* (n,m)     M_inf,t = P_inf,t Z' */
    long ndiffuse;     /* number of diffuse steps d */
} kalman_store;

int kalman_store_alloc(kalman_store *st, size_t n, int m, kalman_error *err);
void kalman_store_free(kalman_store *st);

/* Runs the filter over y[0..n) from *st (advanced in place), adding to *acc (may be NULL)
 * and writing per-step output into *store (may be NULL; steps are stored at index
 * st->t - t0 where t0 is st->t on entry). The steady-state switch engages only when
 * store is NULL or keeps nothing but v, F, Finf, K and Kinf. Never allocates. */
int kalman_filter(const kalman_ssm *s, const double *y, size_t n, kalman_state *st,
                  kalman_loglik_acc *acc, kalman_store *store, kalman_workspace *ws,
                  kalman_error *err);

/* Log-likelihood of y under s (exact diffuse, statsmodels' convention). When
 * concentrated != 0 the scale is concentrated out: s's variances are taken as relative
 * to an unknown sigma2, *sigma2 gets its MLE sum(v^2/F)/(nobs - ndiffuse_obs) and the
 * returned loglik is the profile likelihood. sigma2 may be NULL. */
int kalman_loglik(const kalman_ssm *s, const double *y, size_t n, int concentrated,
                  kalman_workspace *ws, double *loglik, double *sigma2,
                  kalman_loglik_acc *acc_out, kalman_error *err);

/* ---- smoothing ------------------------------------------------------------------------ */

typedef struct kalman_smooth_out {
    double *ahat;     /* (n,m)    E[a_t | y]          (may be NULL) */
    double *V;        /* (n,m,m)  Var[a_t | y]        (may be NULL) */
    double *eps_hat;  /* (n)      E[e_t | y]          (may be NULL) */
    double *eps_var;  /* (n)      Var[e_t | y]        (may be NULL) */
    double *eta_hat;  /* (n,r)    E[n_t | y]          (may be NULL) */
    double *eta_var;  /* (n,r,r)  Var[n_t | y]        (may be NULL) */
} kalman_smooth_out;

/* State and disturbance smoother (D&K 4.4, 4.5, 5.3) from a filter run over all n
 * steps that stored a_pred, P_pred, Pinf_pred, v, F, Finf, K, Kinf, M, Minf. */
int kalman_smooth(const kalman_ssm *s, const double *y, const kalman_store *store,
                  kalman_smooth_out *out, kalman_workspace *ws, kalman_error *err);

/* ---- forecasting ---------------------------------------------------------------------- */

/* h-step forecasts of y_{t+1..t+h} from the filter state: mean[i], var[i] (i = 0..h-1).
 * KALMAN_EUNSUPPORTED while the state is still diffuse (infinite variance). */
int kalman_forecast(const kalman_ssm *s, const kalman_state *st, int h, double *mean,
                    double *var, kalman_workspace *ws, kalman_error *err);

/* ---- parametric models: the builder contract ------------------------------------------
 *
 * A kalman_model maps a parameter vector to a system. Builders (structural below;
 * kalman_sarima_create in sarima.c, kalman_ets_create in ets.c) return a heap-allocated
 * kalman_model with every field set, and the MLE (kalman_fit) and the models/ adapter use
 * nothing else. The contract:
 *
 *  - nparams, names[i]: the parameter vector in statsmodels' order and names
 *    ("sigma2.irregular", "ar.L1", "ma.S.L12", "sigma2", "smoothing_level", ...).
 *  - m, r: the system's dimensions; kalman_fit allocates one kalman_ssm with them and
 *    calls build() for every likelihood evaluation, so build must not allocate, must fill
 *    every entry it relies on (the ssm is reused: entries left from an earlier call stay)
 *    and must end with kalman_ssm_initialize() (or set a1/P1star/P1inf itself).
 *    build(ctx, params, ssm, ws, err): constrained params -> ssm. Returns 0 or KALMAN_E*
 *    (KALMAN_EINVAL for a non-admissible parameter, e.g. a negative variance).
 *  - transform(ctx, u, p): unconstrained R^nparams -> admissible constrained params;
 *    untransform(ctx, p, u) its inverse. The optimizer works on u.
 *  - start(ctx, y, n, params, err): starting values (constrained) from the data.
 *  - is_variance[i]: 1 when parameter i is a variance that enters H, Q (and through them
 *    P1star) linearly and nothing else (not T, Z, c, d, a1), and scales with the model's
 *    scale (every variance multiplied by s gives the same system up to scale s). kalman_fit
 *    differentiates the likelihood analytically with respect to such parameters (it
 *    checks that T, Z, c, d, a1, P1inf do not move). When concentrate_ok != 0 it may fix
 *    one variance to 1, treat the others as ratios and concentrate the scale out.
 *  - fixed[i]: 1 to hold parameter i at fixed_value[i] during the fit (callers may set it).
 *  - destroy(m): frees ctx and the model itself (kalman_model_free calls it).
 *
 * Required signatures from sarima.c / ets.c / auto.c (implemented by their owner):
 *
 *    kalman_model *kalman_sarima_create(const kalman_sarima_spec *spec, kalman_error *err);
 *    kalman_model *kalman_ets_create(const kalman_ets_spec *spec, kalman_error *err);
 *    int kalman_auto(const double *y, size_t n, const kalman_auto_opts *opts,
 *                    kalman_auto_result *out, kalman_error *err);
 */

typedef struct kalman_model kalman_model;
struct kalman_fit_opts;
struct kalman_fit_result;
struct kalman_model {
    char spec[128];               /* canonical spec, e.g. "local_level", "sarima(0,1,1)(0,1,1)[12]" */
    int nparams;
    char names[KALMAN_MAX_PARAMS][48];
    int is_variance[KALMAN_MAX_PARAMS];
    int fixed[KALMAN_MAX_PARAMS];
    double fixed_value[KALMAN_MAX_PARAMS];
    int concentrate_ok;
    int m, r;
    void *ctx;
    int (*build)(void *ctx, const double *params, kalman_ssm *ssm, kalman_workspace *ws,
                 kalman_error *err);
    void (*transform)(void *ctx, const double *unconstrained, double *constrained);
    void (*untransform)(void *ctx, const double *constrained, double *unconstrained);
    int (*start)(void *ctx, const double *y, size_t n, double *params, kalman_error *err);
    void (*destroy)(kalman_model *model);
    /* Optional specialised estimator with kalman_fit's contract (NULL for most models):
     * SARIMA sets kalman_sarima_fit, which maximizes the same exact likelihood through the
     * differenced series and Chandrasekhar recursions when no value is missing. kalman_fit
     * should delegate to it when set; it falls back to the generic path itself. */
    int (*fit)(const kalman_model *model, const double *y, size_t n,
               const struct kalman_fit_opts *opts, struct kalman_fit_result *res,
               kalman_error *err);
};

void kalman_model_free(kalman_model *model);

/* ---- maximum likelihood --------------------------------------------------------------- */

typedef struct kalman_fit_opts {
    int max_iter;      /* per optimizer run; 0: 500 */
    double tol;        /* gradient-norm tolerance on the unconstrained scale; 0: 1e-6 */
    int restarts;      /* extra runs from perturbed starts; <0: none, 0: default (2) */
    int no_concentrate;/* 1: never concentrate the scale out */
    const double *start; /* optional constrained starting values (nparams) */
} kalman_fit_opts;

typedef struct kalman_fit_result {
    int nparams;
    double params[KALMAN_MAX_PARAMS];  /* constrained, admissible, finite */
    double loglik;
    double aic, aicc, bic;   /* statsmodels' MLEResults: -2 ll + 2 k, + k log(n_eff),
                                -2 ll + 2 k n_eff / (n_eff - k - 1) */
    int converged;
    int iterations;          /* optimizer iterations, all runs */
    long nobs;               /* observations (missing excluded) */
    long ndiffuse;           /* diffuse steps (statsmodels' nobs_diffuse) */
    long nfree;              /* k = statsmodels' df_model: free parameters + diffuse states */
    long nobs_eff;           /* n_eff = statsmodels' nobs_effective: series length (missing
                                included; exact diffuse steps are NOT excluded) */
} kalman_fit_result;

/* Maximum likelihood estimation of model on y[0..n) (NaN = missing): GSL BFGS2 over the
 * unconstrained parameters with a Nelder-Mead fallback and a few restarts. Never returns
 * a NaN or non-admissible parameter; KALMAN_ETOOSHORT when y has too few observations. */
int kalman_fit(const kalman_model *model, const double *y, size_t n,
               const kalman_fit_opts *opts, kalman_fit_result *res, kalman_error *err);

/* Log-likelihood of y at constrained params and its gradient score[nparams] with respect
 * to the constrained parameters: analytic (D&K 7.3.3, disturbance smoother, exact
 * diffuse) for is_variance parameters, central differences for the others. */
int kalman_model_score(const kalman_model *model, const double *params, const double *y,
                       size_t n, double *loglik, double *score, kalman_error *err);

/* Fills aic, aicc, bic from loglik, nfree and nobs_eff (statsmodels' conventions). */
void kalman_fit_criteria(kalman_fit_result *res);

/* ---- structural models (structural.c) -------------------------------------------------- */

/* An unobserved components model as statsmodels' UnobservedComponents builds it:
 * trend part (level [+ slope]), seasonal (dummy of period `seasonal`, or trigonometric
 * with `harmonics` harmonics), cycle, irregular. State order: level, trend, seasonal,
 * cycle. Parameter order: sigma2.irregular, sigma2.level, sigma2.trend, sigma2.seasonal
 * (or sigma2.freq_seasonal_<s>(<k>)), sigma2.cycle, frequency.cycle, damping.cycle. */
typedef struct kalman_structural_spec {
    int level;               /* 1: level component */
    int stochastic_level;    /* 1: level disturbance (sigma2.level) */
    int trend;               /* 1: slope component (needs level) */
    int stochastic_trend;    /* 1: slope disturbance (sigma2.trend) */
    int seasonal;            /* period s >= 2, 0: none */
    int harmonics;           /* 0: dummy seasonal; k >= 1: trigonometric with k harmonics */
    int stochastic_seasonal; /* 1: seasonal disturbance */
    int cycle;               /* 1: stochastic cycle (damped, frequency estimated) */
    int stochastic_cycle;    /* 1: cycle disturbance */
    int damped_cycle;        /* 1: damping estimated */
    int irregular;           /* 1: observation noise (sigma2.irregular) */
} kalman_structural_spec;

/* Named specs: "local_level", "local_linear_trend", "smooth_trend", "random_walk",
 * "bsm" (local linear trend + dummy seasonal of period season + irregular). */
int kalman_structural_named(const char *name, int season, kalman_structural_spec *out,
                            kalman_error *err);
kalman_model *kalman_structural_create(const kalman_structural_spec *spec, kalman_error *err);

/* ---- SARIMA (sarima.c) / ETS (ets.c) / automatic selection (auto.c) --------------------- */

/* SARIMA(p,d,q)(P,D,Q)[s] as statsmodels' SARIMAX builds it (state-space differencing,
 * exact diffuse for the integrated states, stationary init for the ARMA part). */
typedef struct kalman_sarima_spec {
    int p, d, q;
    int P, D, Q, s;
    int constant;     /* 1: include a constant (statsmodels trend='c', "intercept"): the
                         intercept of the differenced series' ARMA, a drift when d+D == 1 */
} kalman_sarima_spec;
kalman_model *kalman_sarima_create(const kalman_sarima_spec *spec, kalman_error *err);
/* Parses the text after "sarima": "(p,d,q)", "(p,d,q)(P,D,Q)[s]" or "(p,d,q)(P,D,Q)" (s from
 * season), optionally followed by "+c" (alias ",c", "+intercept", "+drift" when d+D == 1). */
int kalman_sarima_parse(const char *args, int season, kalman_sarima_spec *out,
                        kalman_error *err);
/* Canonical text: "sarima(0,1,1)(0,1,1)[12]", "sarima(1,0,1)+c". */
void kalman_sarima_format(const kalman_sarima_spec *spec, char *buf, size_t len);
/* kalman_fit for a SARIMA model (its model->fit): the same exact likelihood, maximized on
 * the differenced series with O(r) Chandrasekhar steps when no differenced value is
 * missing, else the generic kalman_fit. aic/aicc/bic count k = free parameters (sigma2
 * included) and n_eff = n - d - s*D, as SARIMAX's default and R's arima. */
int kalman_sarima_fit(const kalman_model *model, const double *y, size_t n,
                      const kalman_fit_opts *opts, kalman_fit_result *res, kalman_error *err);
/* The exact log-likelihood at constrained params by the fast path (y without gaps after
 * differencing; KALMAN_EUNSUPPORTED otherwise). Equals kalman_loglik on the built system. */
int kalman_sarima_loglik(const kalman_model *model, const double *y, size_t n,
                         const double *params, double *loglik, kalman_error *err);

/* Additive-error ETS (statsmodels' ETSModel): error 'A'; trend 'N' or 'A' (damped
 * optional); seasonal 'N' or 'A' with period. */
typedef struct kalman_ets_spec {
    char error;       /* 'A' */
    char trend;       /* 'N', 'A' */
    int damped;
    char seasonal;    /* 'N', 'A' */
    int period;
} kalman_ets_spec;
kalman_model *kalman_ets_create(const kalman_ets_spec *spec, kalman_error *err);
/* Parses the text after "ets": "(A,N,N)", "(A,A,N)", "(A,Ad,N)", "(A,N,A)", "(A,A,A)",
 * "(A,Ad,A)", optionally followed by "[m]" (else season is the period). */
int kalman_ets_parse(const char *args, int season, kalman_ets_spec *out, kalman_error *err);
/* Canonical text: "ets(A,Ad,N)", "ets(A,A,A)[12]". */
void kalman_ets_format(const kalman_ets_spec *spec, char *buf, size_t len);
/* kalman_fit for an ETS model (its model->fit): the initial states are concentrated out
 * by least squares, the 1-4 smoothing parameters found by Nelder-Mead from a grid, so the
 * optimum over the initial states is exact. k = smoothing + free initial states + sigma2
 * (R's count), n_eff = observations. */
int kalman_ets_fit(const kalman_model *model, const double *y, size_t n,
                   const kalman_fit_opts *opts, kalman_fit_result *res, kalman_error *err);

/* Automatic model selection over the Kalman family: AICc within classes of comparable
 * likelihoods, a one-step validation score across them (kalman/auto.c, README.md). */
typedef struct kalman_auto_opts {
    int season;       /* season length, 1 or 0: non-seasonal */
    int stepwise;     /* 0 or 1: auto.arima-style stepwise search; -1: the full grid
                         p, q <= 3, P, Q <= 1 (see kalman/auto.c) */
    int max_order;    /* bound on p+q+P+Q; 0: default */
    unsigned families;/* bitmask of KALMAN_AUTO_*; 0: all */
} kalman_auto_opts;
enum { KALMAN_AUTO_STRUCTURAL = 1u, KALMAN_AUTO_SARIMA = 2u, KALMAN_AUTO_ETS = 4u };

typedef struct kalman_auto_result {
    kalman_model *model;      /* the winner (owned by the caller: kalman_model_free) */
    kalman_fit_result fit;    /* its fit */
    char spec[128];           /* its canonical spec */
    int ncandidates;          /* models tried */
} kalman_auto_result;
int kalman_auto(const double *y, size_t n, const kalman_auto_opts *opts,
                kalman_auto_result *out, kalman_error *err);
/* A model from its canonical spec text (what kalman_model.spec holds): "sarima(...)",
 * "ets(...)", "local_level", "local_linear_trend", "smooth_trend", "bsm(season=S)";
 * season fills in a seasonal period the text leaves out. NULL with err set otherwise. */
kalman_model *kalman_model_from_spec(const char *spec, int season, kalman_error *err);

#endif

# Multilevel imputation with mice, written by recipe_compiler from the plan for
#   lpo ~ iqv*sex + cm(iqv)*den + sex*den + (1 | sch)
# options: interactions = 'all_pairwise', centering = 'cluster', random_slopes =
#   'include'
# flavor: miceadds
#
# R names of the plan variables:
#   R name           plan name
#   sch              sch
#   lpo              lpo
#   iqv              iqv
#   sex              sex
#   den              den
#   cm_iqv           cm(iqv)
#   cwc_iqv          cwc(iqv)
#   cwc_iqv.sex      cwc(iqv):sex
#   cm_iqv.den       cm(iqv):den
#   sex.den          sex:den
#   cwc_iqv.den      cwc(iqv):den
#   cm_sex           cm(sex)
#   cm_sex.den       cm(sex):den
#   cm_lpo           cm(lpo)
#   cwc_lpo          cwc(lpo)
#   cwc_lpo.sex      cwc(lpo):sex
#   cm_lpo.den       cm(lpo):den
#   cwc_lpo.den      cwc(lpo):den
#   cwc_lpo.cwc_iqv  cwc(lpo):cwc(iqv)

library(mice)
library(miceadds)

# Load your data as `d` first: a data.frame with the measured columns
#   sch, lpo, iqv, sex, den (missing values as NA),
# e.g. d <- read.csv("data.csv").
d <- d[, c("sch", "lpo", "iqv", "sex", "den")]

# derived variables start empty; mice recomputes them from their parents
d <- data.frame(d, cm_iqv = NA, cwc_iqv = NA, cwc_iqv.sex = NA, cm_iqv.den = NA,
  sex.den = NA, cwc_iqv.den = NA, cm_sex = NA, cm_sex.den = NA, cm_lpo = NA,
  cwc_lpo = NA, cwc_lpo.sex = NA, cm_lpo.den = NA, cwc_lpo.den = NA,
  cwc_lpo.cwc_iqv = NA)

# imputation methods
meth <- make.method(d)
meth[c("lpo", "iqv", "sex")] <- "2l.pmm"
meth["den"] <- "2lonly.pmm"

# predictor matrix: -2 cluster variable; 1 fixed effect; 2 fixed + random
#   effect; 3 fixed effect + cluster mean; 4 fixed effect + cluster mean +
#   random slope
pred <- make.predictorMatrix(d)
pred[,] <- 0
pred["lpo", c("sch", "iqv", "sex", "den", "cwc_iqv.sex", "cm_iqv.den",
  "sex.den", "cwc_iqv.den", "cm_sex.den")] <- c(-2, 3, 3, 1, 1, 1, 1, 1, 1)
pred["iqv", c("sch", "lpo", "sex", "den", "sex.den", "cm_sex.den",
  "cwc_lpo.sex", "cm_lpo.den", "cwc_lpo.den")] <- c(-2, 3, 3, 1, 1, 1, 1, 1, 1)
pred["sex", c("sch", "lpo", "iqv", "den", "cm_iqv.den", "cwc_iqv.den",
  "cm_lpo.den", "cwc_lpo.den", "cwc_lpo.cwc_iqv")] <-
  c(-2, 3, 3, 1, 1, 1, 1, 1, 1)
pred["den", c("sch", "lpo", "iqv", "sex", "cwc_iqv.sex", "cwc_lpo.sex",
  "cwc_lpo.cwc_iqv")] <- c(-2, 1, 1, 1, 1, 1, 1)

# derived variables: cluster means and passive terms
meth["cm_iqv"] <- "2l.groupmean"
pred["cm_iqv", c("sch", "iqv")] <- c(-2, 1)
meth["cwc_iqv"] <- "~ I(iqv - cm_iqv)"
meth["cwc_iqv.sex"] <- "~ I(cwc_iqv * sex)"
meth["cm_iqv.den"] <- "~ I(cm_iqv * den)"
meth["sex.den"] <- "~ I(sex * den)"
meth["cwc_iqv.den"] <- "~ I(cwc_iqv * den)"
meth["cm_sex"] <- "2l.groupmean"
pred["cm_sex", c("sch", "sex")] <- c(-2, 1)
meth["cm_sex.den"] <- "~ I(cm_sex * den)"
meth["cm_lpo"] <- "2l.groupmean"
pred["cm_lpo", c("sch", "lpo")] <- c(-2, 1)
meth["cwc_lpo"] <- "~ I(lpo - cm_lpo)"
meth["cwc_lpo.sex"] <- "~ I(cwc_lpo * sex)"
meth["cm_lpo.den"] <- "~ I(cm_lpo * den)"
meth["cwc_lpo.den"] <- "~ I(cwc_lpo * den)"
meth["cwc_lpo.cwc_iqv"] <- "~ I(cwc_lpo * cwc_iqv)"

visit <- c("lpo", "cm_lpo", "cwc_lpo", "cwc_lpo.sex", "cm_lpo.den",
  "cwc_lpo.den", "cwc_lpo.cwc_iqv", "iqv", "cm_iqv", "cwc_iqv", "cwc_iqv.sex",
  "cm_iqv.den", "cwc_iqv.den", "cwc_lpo.cwc_iqv", "sex", "cwc_iqv.sex",
  "sex.den", "cm_sex", "cm_sex.den", "cwc_lpo.sex", "den", "cm_iqv.den",
  "sex.den", "cwc_iqv.den", "cm_sex.den", "cm_lpo.den", "cwc_lpo.den")

# allow.na: keep the 2l.groupmean columns, which start empty
imp <- mice(d, pred = pred, meth = meth, visit = visit, m = 10, maxit = 10,
  seed = 188, print = FALSE, allow.na = TRUE)

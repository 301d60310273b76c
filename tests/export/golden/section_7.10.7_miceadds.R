# Multilevel imputation with mice, written by recipe_compiler from the plan for
#   lpo ~ iqv*ses + cm(iqv)*cm(ses) + iqv*cm(iqv) + iqv*cm(ses) + ses*cm(iqv) + ses*cm(ses) + (1 + ses + iqv | sch)
# options: interactions = 'implied', centering = 'none', random_slopes =
#   'means_only'
# flavor: miceadds
#
# R names of the plan variables:
#   R name         plan name
#   sch            sch
#   lpo            lpo
#   iqv            iqv
#   ses            ses
#   iqv.ses        iqv:ses
#   cm_iqv         cm(iqv)
#   cm_ses         cm(ses)
#   cm_iqv.cm_ses  cm(iqv):cm(ses)
#   iqv.cm_iqv     iqv:cm(iqv)
#   iqv.cm_ses     iqv:cm(ses)
#   cm_iqv.ses     cm(iqv):ses
#   ses.cm_ses     ses:cm(ses)
#   lpo.ses        lpo:ses
#   cm_lpo         cm(lpo)
#   cm_lpo.cm_ses  cm(lpo):cm(ses)
#   lpo.cm_lpo     lpo:cm(lpo)
#   lpo.cm_ses     lpo:cm(ses)
#   cm_lpo.ses     cm(lpo):ses
#   lpo.iqv        lpo:iqv
#   cm_lpo.cm_iqv  cm(lpo):cm(iqv)
#   cm_lpo.iqv     cm(lpo):iqv
#   lpo.cm_iqv     lpo:cm(iqv)

library(mice)
library(miceadds)

# Load your data as `d` first: a data.frame with the measured columns
#   sch, lpo, iqv, ses (missing values as NA),
# e.g. d <- read.csv("data.csv").
d <- d[, c("sch", "lpo", "iqv", "ses")]

# derived variables start empty; mice recomputes them from their parents
d <- data.frame(d, iqv.ses = NA, cm_iqv = NA, cm_ses = NA, cm_iqv.cm_ses = NA,
  iqv.cm_iqv = NA, iqv.cm_ses = NA, cm_iqv.ses = NA, ses.cm_ses = NA,
  lpo.ses = NA, cm_lpo = NA, cm_lpo.cm_ses = NA, lpo.cm_lpo = NA,
  lpo.cm_ses = NA, cm_lpo.ses = NA, lpo.iqv = NA, cm_lpo.cm_iqv = NA,
  cm_lpo.iqv = NA, lpo.cm_iqv = NA)

# imputation methods
meth <- make.method(d)
meth[c("lpo", "iqv", "ses")] <- "2l.pmm"

# predictor matrix: -2 cluster variable; 1 fixed effect; 2 fixed + random
#   effect; 3 fixed effect + cluster mean; 4 fixed effect + cluster mean +
#   random slope
pred <- make.predictorMatrix(d)
pred[,] <- 0
pred["lpo", c("sch", "iqv", "ses", "iqv.ses", "cm_iqv.cm_ses", "iqv.cm_iqv",
  "iqv.cm_ses", "cm_iqv.ses", "ses.cm_ses")] <- c(-2, 3, 3, 1, 1, 1, 1, 1, 1)
pred["iqv", c("sch", "lpo", "ses", "ses.cm_ses", "lpo.ses", "cm_lpo.cm_ses",
  "lpo.cm_lpo", "lpo.cm_ses", "cm_lpo.ses")] <- c(-2, 3, 3, 1, 1, 1, 1, 1, 1)
pred["ses", c("sch", "lpo", "iqv", "iqv.cm_iqv", "lpo.cm_lpo", "lpo.iqv",
  "cm_lpo.cm_iqv", "cm_lpo.iqv", "lpo.cm_iqv")] <- c(-2, 3, 3, 1, 1, 1, 1, 1, 1)

# derived variables: cluster means and passive terms
meth["iqv.ses"] <- "~ I(iqv * ses)"
meth["cm_iqv"] <- "2l.groupmean"
pred["cm_iqv", c("sch", "iqv")] <- c(-2, 1)
meth["cm_ses"] <- "2l.groupmean"
pred["cm_ses", c("sch", "ses")] <- c(-2, 1)
meth["cm_iqv.cm_ses"] <- "~ I(cm_iqv * cm_ses)"
meth["iqv.cm_iqv"] <- "~ I(iqv * cm_iqv)"
meth["iqv.cm_ses"] <- "~ I(iqv * cm_ses)"
meth["cm_iqv.ses"] <- "~ I(cm_iqv * ses)"
meth["ses.cm_ses"] <- "~ I(ses * cm_ses)"
meth["lpo.ses"] <- "~ I(lpo * ses)"
meth["cm_lpo"] <- "2l.groupmean"
pred["cm_lpo", c("sch", "lpo")] <- c(-2, 1)
meth["cm_lpo.cm_ses"] <- "~ I(cm_lpo * cm_ses)"
meth["lpo.cm_lpo"] <- "~ I(lpo * cm_lpo)"
meth["lpo.cm_ses"] <- "~ I(lpo * cm_ses)"
meth["cm_lpo.ses"] <- "~ I(cm_lpo * ses)"
meth["lpo.iqv"] <- "~ I(lpo * iqv)"
meth["cm_lpo.cm_iqv"] <- "~ I(cm_lpo * cm_iqv)"
meth["cm_lpo.iqv"] <- "~ I(cm_lpo * iqv)"
meth["lpo.cm_iqv"] <- "~ I(lpo * cm_iqv)"

visit <- c("lpo", "lpo.ses", "cm_lpo", "cm_lpo.cm_ses", "lpo.cm_lpo",
  "lpo.cm_ses", "cm_lpo.ses", "lpo.iqv", "cm_lpo.cm_iqv", "cm_lpo.iqv",
  "lpo.cm_iqv", "iqv", "iqv.ses", "cm_iqv", "cm_iqv.cm_ses", "iqv.cm_iqv",
  "iqv.cm_ses", "cm_iqv.ses", "lpo.iqv", "cm_lpo.cm_iqv", "cm_lpo.iqv",
  "lpo.cm_iqv", "ses", "iqv.ses", "cm_ses", "cm_iqv.cm_ses", "iqv.cm_ses",
  "cm_iqv.ses", "ses.cm_ses", "lpo.ses", "cm_lpo.cm_ses", "lpo.cm_ses",
  "cm_lpo.ses")

# allow.na: keep the 2l.groupmean columns, which start empty
imp <- mice(d, pred = pred, meth = meth, visit = visit, m = 10, maxit = 10,
  seed = 211, print = FALSE, allow.na = TRUE)

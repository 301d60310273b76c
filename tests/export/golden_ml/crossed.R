# Multilevel imputation with mice and miceadds' ml.lmer, written by recipe_compiler from the plan for
#   y ~ x + a + (1 | rater) + (1 | item)
# options: interactions = 'implied', centering = 'none', random_slopes =
#   'include'
# flavor: miceadds
# methods that differ from the plan's:
#   y: ml.pmm -> ml.lmer (lme4's lmer with a random intercept per grouping
#     factor; model = "pmm")
#   x: ml.norm -> ml.lmer (lme4's lmer with a random intercept per grouping
#     factor; model = "continuous")
# grouping factors (crossed): rater, item
# what differs from the plan's sampler: ml.lmer draws the fixed effects from
#   their sampling distribution and the random effects from their conditional
#   distribution given lme4's estimates of the variance components, which are
#   not drawn (the plan's sampler draws them too); its predictive mean matching
#   draws from ml.lmer's default of 3 donors (rc.impute's default is 5; pass
#   donors = 5 to mice() for the same); the random effects of the crossed
#   factors are drawn by 10 Gibbs sweeps (iter_re) where the plan's sampler
#   makes one per iteration
#
# R names of the plan variables:
#   R name      plan name
#   rater       rater
#   item        item
#   y           y
#   x           x
#   a           a
#   cm_x_rater  cm(x, rater)
#   cm_x_item   cm(x, item)
#   cm_y_rater  cm(y, rater)
#   cm_y_item   cm(y, item)

library(mice)
library(miceadds)

# Load your data as `d` first: a data.frame with the measured columns
#   rater, item, y, x, a (missing values as NA),
# e.g. d <- read.csv("data.csv").
d <- d[, c("rater", "item", "y", "x", "a")]

# grouping factors as integer cluster ids 1, 2, ...: ml.lmer averages ids when
# it aggregates rows to a higher level, and 2l.groupmean matches them as numbers
d$rater <- as.integer(factor(d$rater))
d$item <- as.integer(factor(d$item))

# derived variables start empty; mice recomputes them from their parents
d <- data.frame(d, cm_x_rater = NA, cm_x_item = NA, cm_y_rater = NA,
  cm_y_item = NA)

# imputation methods
meth <- make.method(d)
meth[c("y", "x")] <- "ml.lmer"

# predictor matrix: 1 a fixed effect; -2 the cluster of 2l.groupmean and of the
#   two-level-only methods. ml.lmer reads the code-1 predictors of its row only:
#   its grouping factors (the plan's code -2) are in levels_id and its random
#   slopes (code 2) in random_slopes below
pred <- make.predictorMatrix(d)
pred[,] <- 0
pred["y", c("x", "a", "cm_x_rater", "cm_x_item")] <- c(1, 1, 1, 1)
pred["x", c("y", "a", "cm_y_rater", "cm_y_item")] <- c(1, 1, 1, 1)

# derived variables: cluster means and passive terms
meth["cm_x_rater"] <- "2l.groupmean"
pred["cm_x_rater", c("rater", "x")] <- c(-2, 1)
meth["cm_x_item"] <- "2l.groupmean"
pred["cm_x_item", c("item", "x")] <- c(-2, 1)
meth["cm_y_rater"] <- "2l.groupmean"
pred["cm_y_rater", c("rater", "y")] <- c(-2, 1)
meth["cm_y_item"] <- "2l.groupmean"
pred["cm_y_item", c("item", "y")] <- c(-2, 1)

visit <- c("y", "cm_y_rater", "cm_y_item", "x", "cm_x_rater", "cm_x_item")

# settings of each ml.lmer target: levels_id its grouping factors (a random
# intercept each); variables_levels the grouping it is constant within (empty:
# level 1); model pmm (predictive mean matching) or continuous (normal draws)
levels_id <- list(y = c("rater", "item"), x = c("rater", "item"))
variables_levels <- c(y = "", x = "")
model <- list(y = "pmm", x = "continuous")
# iter_re: Gibbs sweeps over the random effects of the crossed factors
iter_re <- list(y = 10, x = 10)

# allow.na: keep the 2l.groupmean columns, which start empty
imp <- mice(d, pred = pred, meth = meth, visit = visit, m = 5, maxit = 10,
  seed = 2024, levels_id = levels_id, variables_levels = variables_levels,
  model = model, iter_re = iter_re, aggregate_automatically = FALSE,
  print = FALSE, allow.na = TRUE)

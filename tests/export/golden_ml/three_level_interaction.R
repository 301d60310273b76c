# Multilevel imputation with mice and miceadds' ml.lmer, written by recipe_compiler from the plan for
#   y ~ x + w + z + cm(x, school) + (1 + x | school:class) + (1 | school)
# options: interactions = 'implied', centering = 'none', random_slopes =
#   'include'
# flavor: miceadds
# methods that differ from the plan's:
#   y, w: ml.pmm -> ml.lmer (lme4's lmer with a random intercept per grouping
#     factor; model = "pmm")
#   x: ml.norm -> ml.lmer (lme4's lmer with a random intercept per grouping
#     factor; model = "continuous")
#   z: 3lonly.pmm -> 2lonly.pmm (mice's method for a target constant within the
#     clusters of school: one row per cluster, predictors averaged over it, as
#     the plan does)
# grouping factors (nested, innermost first): school:class, school
# what differs from the plan's sampler: ml.lmer draws the fixed effects from
#   their sampling distribution and the random effects from their conditional
#   distribution given lme4's estimates of the variance components, which are
#   not drawn (the plan's sampler draws them too); its predictive mean matching
#   draws from ml.lmer's default of 3 donors (rc.impute's default is 5; pass
#   donors = 5 to mice() for the same)
#
# R names of the plan variables:
#   R name              plan name
#   school_class        school:class (ids built in R by interaction())
#   school              school
#   y                   y
#   x                   x
#   w                   w
#   z                   z
#   cm_x_school_class   cm(x, school:class)
#   cm_x_school         cm(x, school)
#   cm_y_school_class   cm(y, school:class)
#   cm_y_school         cm(y, school)
#   cwc_x_school_class  cwc(x, school:class)
#   class               class (data column of a grouping factor)

library(mice)
library(miceadds)

# Load your data as `d` first: a data.frame with the measured columns
#   school, class, y, x, w, z (missing values as NA),
# e.g. d <- read.csv("data.csv").
d <- d[, c("school", "class", "y", "x", "w", "z")]

# grouping factors as integer cluster ids 1, 2, ...: ml.lmer averages ids when
# it aggregates rows to a higher level, and 2l.groupmean matches them as numbers
d$school_class <- as.integer(interaction(d$school, d$class, drop = TRUE))
d$school <- as.integer(factor(d$school))

# derived variables start empty; mice recomputes them from their parents
d <- data.frame(d, cm_x_school_class = NA, cm_x_school = NA,
  cm_y_school_class = NA, cm_y_school = NA, cwc_x_school_class = NA)

# imputation methods
meth <- make.method(d)
meth[c("y", "x", "w")] <- "ml.lmer"
meth["z"] <- "2lonly.pmm"

# predictor matrix: 1 a fixed effect; -2 the cluster of 2l.groupmean and of the
#   two-level-only methods. ml.lmer reads the code-1 predictors of its row only:
#   its grouping factors (the plan's code -2) are in levels_id and its random
#   slopes (code 2) in random_slopes below
pred <- make.predictorMatrix(d)
pred[,] <- 0
pred["y", c("x", "w", "z", "cm_x_school_class", "cm_x_school")] <-
  c(1, 1, 1, 1, 1)
pred["x", c("y", "w", "z", "cm_y_school_class", "cm_y_school")] <-
  c(1, 1, 1, 1, 1)
pred["w", c("y", "x", "z", "cm_x_school", "cm_y_school")] <- c(1, 1, 1, 1, 1)
pred["z", c("school", "y", "x", "w")] <- c(-2, 1, 1, 1)

# derived variables: cluster means and passive terms
meth["cm_x_school_class"] <- "2l.groupmean"
pred["cm_x_school_class", c("school_class", "x")] <- c(-2, 1)
meth["cm_x_school"] <- "2l.groupmean"
pred["cm_x_school", c("school", "x")] <- c(-2, 1)
meth["cm_y_school_class"] <- "2l.groupmean"
pred["cm_y_school_class", c("school_class", "y")] <- c(-2, 1)
meth["cm_y_school"] <- "2l.groupmean"
pred["cm_y_school", c("school", "y")] <- c(-2, 1)
meth["cwc_x_school_class"] <- "~ I(x - cm_x_school_class)"

visit <- c("y", "cm_y_school_class", "cm_y_school", "x", "cm_x_school_class",
  "cm_x_school", "cwc_x_school_class", "w", "z")

# settings of each ml.lmer target: levels_id its grouping factors (a random
# intercept each); variables_levels the grouping it is constant within (empty:
# level 1); model pmm (predictive mean matching) or continuous (normal draws)
levels_id <- list(y = c("school_class", "school"),
  x = c("school_class", "school"), w = "school")
variables_levels <- c(y = "", x = "", w = "school_class")
model <- list(y = "pmm", x = "continuous", w = "pmm")
# random_slopes: the predictors with a random slope (the plan's code 2)
random_slopes <- list(y = list(school_class = "x"))

# allow.na: keep the 2l.groupmean columns, which start empty
imp <- mice(d, pred = pred, meth = meth, visit = visit, m = 5, maxit = 10,
  seed = 2024, levels_id = levels_id, variables_levels = variables_levels,
  model = model, random_slopes = random_slopes, aggregate_automatically = FALSE,
  print = FALSE, allow.na = TRUE)

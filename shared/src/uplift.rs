//! Did a campaign work: the difference between the conversion rates of its treated and its
//! control (holdout) group, with a confidence interval and a test of "no difference".
//!
//! - The interval of the absolute lift (treated rate − control rate) is Newcombe's hybrid
//!   score interval (R. G. Newcombe, "Interval estimation for the difference between
//!   independent proportions: comparison of eleven methods", *Statistics in Medicine* 17,
//!   1998, method 10): each rate's Wilson score interval (without continuity correction),
//!   combined as `d − √((p₁ − l₁)² + (u₂ − p₂)²)` and `d + √((u₁ − p₁)² + (p₂ − l₂)²)`. It
//!   stays inside [−1, 1], is defined at 0 % and 100 %, and keeps close to its nominal
//!   coverage in small groups, where the simple Wald interval does not.
//! - The p-value is the two-sided pooled two-proportion z-test: `z = (p₁ − p₂) /
//!   √(p̄(1 − p̄)(1/n₁ + 1/n₂))` with `p̄` the pooled rate, `p = 2·(1 − Φ(|z|))`. It is
//!   undefined when both groups converted none or all (the pooled variance is 0).
//!
//! These are the definitions of `statsmodels`' `confint_proportions_2indep(…,
//! method="newcomb")` and `proportions_ztest` (the default, pooled variance); the tests
//! compare with values that library computed (`tests/fixtures/uplift_reference.json`, written
//! by `tests/scripts/uplift_reference.py`). The normal quantiles and tail come from `statrs`.

use serde::Serialize;
use statrs::distribution::{ContinuousCDF, Normal};

/// How sure an interval is: the share of intervals computed this way that cover the true
/// lift (two-sided).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Confidence {
    /// 90 %.
    P90,
    /// 95 % (the default).
    #[default]
    P95,
    /// 99 %.
    P99,
}

impl Confidence {
    /// The level as a fraction: 0.90, 0.95 or 0.99.
    #[must_use]
    pub fn level(self) -> f64 {
        match self {
            Self::P90 => 0.90,
            Self::P95 => 0.95,
            Self::P99 => 0.99,
        }
    }

    /// The level for `0.90`, `0.95` or `0.99` as written in a request; `None` for anything
    /// else.
    #[must_use]
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "0.90" | "0.9" => Some(Self::P90),
            "0.95" => Some(Self::P95),
            "0.99" => Some(Self::P99),
            _ => None,
        }
    }

    /// The standard normal quantile `z` with `P(|Z| ≤ z)` equal to the level (1.6449, 1.9600,
    /// 2.5758).
    #[must_use]
    pub fn z(self) -> f64 {
        standard_normal().inverse_cdf(1.0 - (1.0 - self.level()) / 2.0)
    }
}

fn standard_normal() -> Normal {
    Normal::standard()
}

/// One group of a campaign: how many customers it holds and how many of them converted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Group {
    /// Customers in the group (n).
    pub customers: i64,
    /// Of them, customers who converted (0 ≤ converted ≤ customers).
    pub converted: i64,
}

impl Group {
    /// The conversion rate `converted / customers`; `None` for an empty group.
    #[must_use]
    pub fn rate(self) -> Option<f64> {
        (self.customers > 0).then(|| self.converted as f64 / self.customers as f64)
    }

    /// The Wilson score interval of the rate at quantile `z` (E. B. Wilson, 1927), without
    /// continuity correction; `None` for an empty group.
    #[must_use]
    pub fn wilson(self, z: f64) -> Option<(f64, f64)> {
        let p = self.rate()?;
        let n = self.customers as f64;
        let z2 = z * z;
        let denominator = 1.0 + z2 / n;
        let centre = (p + z2 / (2.0 * n)) / denominator;
        let half = z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / denominator;
        Some((centre - half, centre + half))
    }
}

/// The lift of a treated group over its control group.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Lift {
    /// Treated rate − control rate, a fraction (0.012 is 1.2 percentage points).
    pub absolute: f64,
    /// Newcombe's hybrid score interval of `absolute` at the asked confidence, `[low, high]`.
    pub interval: [f64; 2],
    /// `absolute` divided by the control rate (0.5 is 50 % more conversions than without the
    /// campaign); null when the control group converted none.
    pub relative: Option<f64>,
    /// Two-sided p-value of the pooled two-proportion z-test of "the campaign changed
    /// nothing"; null when both groups converted none or all (the test is undefined).
    pub p_value: Option<f64>,
    /// Conversions the campaign caused: `absolute` × treated customers.
    pub incremental_conversions: f64,
    /// `interval` × treated customers.
    pub incremental_interval: [f64; 2],
}

/// The lift of `treated` over `control` at `confidence`; `None` when either group is empty
/// (no interval exists).
#[must_use]
pub fn lift(treated: Group, control: Group, confidence: Confidence) -> Option<Lift> {
    let z = confidence.z();
    let (p1, p2) = (treated.rate()?, control.rate()?);
    let ((l1, u1), (l2, u2)) = (treated.wilson(z)?, control.wilson(z)?);
    let absolute = p1 - p2;
    let low = absolute - ((p1 - l1).powi(2) + (u2 - p2).powi(2)).sqrt();
    let high = absolute + ((u1 - p1).powi(2) + (p2 - l2).powi(2)).sqrt();
    let n1 = treated.customers as f64;
    Some(Lift {
        absolute,
        interval: [low, high],
        relative: (p2 > 0.0).then(|| absolute / p2),
        p_value: p_value(treated, control),
        incremental_conversions: absolute * n1,
        incremental_interval: [low * n1, high * n1],
    })
}

/// The two-sided p-value of the pooled two-proportion z-test (see the module); `None` when a
/// group is empty or the pooled rate is 0 or 1.
#[must_use]
pub fn p_value(treated: Group, control: Group) -> Option<f64> {
    let (p1, p2) = (treated.rate()?, control.rate()?);
    let (n1, n2) = (treated.customers as f64, control.customers as f64);
    let pooled = (treated.converted + control.converted) as f64 / (n1 + n2);
    let variance = pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2);
    if variance <= 0.0 {
        return None;
    }
    let z = (p1 - p2) / variance.sqrt();
    Some(2.0 * standard_normal().sf(z.abs()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_levels_quantiles_are_the_textbook_ones() {
        assert!((Confidence::P90.z() - 1.644_853_626_951_472_2).abs() < 1e-12);
        assert!((Confidence::P95.z() - 1.959_963_984_540_054).abs() < 1e-12);
        assert!((Confidence::P99.z() - 2.575_829_303_548_900_4).abs() < 1e-12);
        assert_eq!(Confidence::parse("0.9"), Some(Confidence::P90));
        assert_eq!(Confidence::parse("0.5"), None);
    }

    #[test]
    fn an_empty_group_has_no_lift() {
        let some = Group {
            customers: 10,
            converted: 1,
        };
        let none = Group {
            customers: 0,
            converted: 0,
        };
        assert!(lift(some, none, Confidence::P95).is_none());
        assert!(lift(none, some, Confidence::P95).is_none());
    }

    #[test]
    fn no_conversion_anywhere_has_an_interval_but_no_test() {
        let zero = Group {
            customers: 50,
            converted: 0,
        };
        let lift = lift(zero, zero, Confidence::P95).expect("both groups hold customers");
        assert_eq!(lift.absolute, 0.0);
        assert!(lift.interval[0] < 0.0 && lift.interval[1] > 0.0);
        assert_eq!(lift.p_value, None);
        assert_eq!(lift.relative, None);
    }

    /// statsmodels' values for 40 tables at each level (`tests/scripts/uplift_reference.py`):
    /// the interval's ends and the p-value agree to 1e-9.
    #[test]
    fn the_lift_matches_statsmodels() {
        let reference: serde_json::Value =
            serde_json::from_str(include_str!("../../tests/fixtures/uplift_reference.json"))
                .expect("the fixture is JSON");
        let group = |value: &serde_json::Value| Group {
            customers: value["customers"].as_i64().expect("customers"),
            converted: value["converted"].as_i64().expect("converted"),
        };
        let cases = reference["cases"].as_array().expect("cases");
        assert!(cases.len() >= 60, "{} cases", cases.len());
        for case in cases {
            let (treated, control) = (group(&case["treated"]), group(&case["control"]));
            let confidence = Confidence::parse(case["confidence"].as_str().expect("level"))
                .expect("a known level");
            let lift = lift(treated, control, confidence).expect("both groups hold customers");
            let close = |ours: f64, theirs: &serde_json::Value| {
                let theirs = theirs.as_f64().expect("a number");
                assert!(
                    (ours - theirs).abs() <= 1e-9,
                    "{case}: ours {ours}, statsmodels {theirs}"
                );
            };
            close(lift.absolute, &case["absolute"]);
            close(lift.interval[0], &case["interval"][0]);
            close(lift.interval[1], &case["interval"][1]);
            match (lift.p_value, &case["p_value"]) {
                (None, serde_json::Value::Null) => {}
                (Some(ours), theirs) => close(ours, theirs),
                (None, theirs) => panic!("{case}: no p-value, statsmodels {theirs}"),
            }
        }
    }
}

//! A campaign's writable content and the rule it must satisfy (checked on create and
//! update), and the rules a campaign's reads and activation check: a complete audience,
//! deliveries still in the database.

use chrono::NaiveDate;
use serde_json::Value;

use super::Campaign;
use crate::domain::ProcessingStatus;
use crate::error::ApiError;

/// Longest campaign name, in characters.
pub const MAX_NAME_CHARS: usize = 200;

/// Days after a campaign's end during which conversions still count, unless it says
/// otherwise.
pub const DEFAULT_CONVERSION_WINDOW_DAYS: i32 = 30;

/// The largest holdout, in basis points (50 %): at least as many customers are treated as
/// held out.
const MAX_HOLDOUT_BASIS_POINTS: i32 = 5_000;

/// `holdout_percent` as written in a request (a number from 0 to 50 with at most two
/// decimals) in basis points (hundredths of a percent).
///
/// # Errors
/// [`ApiError::Unprocessable`] on `holdout_percent` for anything else.
pub fn holdout_basis_points(percent: f64) -> Result<i32, ApiError> {
    let scaled = percent * 100.0;
    let basis_points = scaled.round();
    if !(0.0..=f64::from(MAX_HOLDOUT_BASIS_POINTS)).contains(&basis_points)
        || (scaled - basis_points).abs() > 1e-6
    {
        return Err(ApiError::invalid_field(
            "holdout_percent",
            "must be a number from 0 to 50 with at most two decimals",
        ));
    }
    // In range and whole: the conversion is exact.
    #[allow(clippy::cast_possible_truncation)]
    Ok(basis_points as i32)
}

impl CampaignContent {
    /// 422 unless the content is acceptable: a name of 1 to [`MAX_NAME_CHARS`] characters
    /// (not only spaces), a description of at most
    /// [`crate::http::MAX_COMMENT_CHARS`], criteria the language parses, `start_date`
    /// not after `end_date`, a holdout of 0 to 50 % and a conversion window of 0 to 365
    /// days.
    ///
    /// # Errors
    /// [`ApiError::Unprocessable`] naming the field.
    pub fn check(&self) -> Result<(), ApiError> {
        let name_chars = self.name.trim().chars().count();
        if name_chars == 0 || self.name.chars().count() > MAX_NAME_CHARS {
            return Err(ApiError::invalid_field(
                "name",
                format!("must be 1 to {MAX_NAME_CHARS} characters"),
            ));
        }
        crate::http::check_length(
            "description",
            self.description.as_deref(),
            crate::http::MAX_COMMENT_CHARS,
        )?;
        crate::criteria::Criteria::from_request(&self.selection_criteria)?;
        if self.start_date > self.end_date {
            return Err(ApiError::invalid_field(
                "end_date",
                "must not be before start_date",
            ));
        }
        if !(0..=MAX_HOLDOUT_BASIS_POINTS).contains(&self.holdout_basis_points) {
            return Err(ApiError::invalid_field(
                "holdout_percent",
                "must be a number from 0 to 50 with at most two decimals",
            ));
        }
        if !(0..=365).contains(&self.conversion_window_days) {
            return Err(ApiError::invalid_field(
                "conversion_window_days",
                "must be a whole number of days from 0 to 365",
            ));
        }
        Ok(())
    }
}

/// The writable content of a campaign.
#[derive(Debug, Clone, PartialEq)]
pub struct CampaignContent {
    /// Name.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// Validated selection criteria.
    pub selection_criteria: Value,
    /// First day.
    pub start_date: NaiveDate,
    /// Last day.
    pub end_date: NaiveDate,
    /// The holdout's share in basis points (0 to 5,000: 0 to 50 %).
    pub holdout_basis_points: i32,
    /// Days after the end during which conversions count (0 to 365).
    pub conversion_window_days: i32,
}

impl Campaign {
    /// 409 once the campaign's deliveries left for its archive (`deleting` or `archived`):
    /// its customer list would be partial or empty, so the answer points at the archive.
    ///
    /// # Errors
    /// [`ApiError::Conflict`] naming the archive object.
    pub fn ensure_deliveries_present(&self) -> Result<(), ApiError> {
        match &self.archive {
            Some(archive)
                if archive.state != crate::db::archives::ArchiveState::Exported.as_str() =>
            {
                Err(ApiError::Conflict(format!(
                    "campaign {}'s {} deliveries are archived at {}; its summary still \
                     answers, and an operator brings them back with `offerctl archive \
                     restore {}`",
                    self.id, archive.rows, archive.location, self.id
                )))
            }
            _ => Ok(()),
        }
    }

    /// Whether the campaign ever released a delivery to providers (`first_released_at`,
    /// V018): a durable fact, kept when archiving removes its deliveries and the ledger's
    /// prune its contacts.
    #[must_use]
    pub fn ever_released(&self) -> bool {
        self.first_released_at.is_some()
    }

    /// 409 unless the campaign's audience is complete (its processing is `done`): a partly
    /// selected audience is never listed, counted or activated.
    ///
    /// # Errors
    /// [`ApiError::Conflict`] with the processing's progress.
    pub fn ensure_audience_complete(&self) -> Result<(), ApiError> {
        if self.processing_status == ProcessingStatus::Done {
            return Ok(());
        }
        let progress = if self.ranges_total > 0 {
            format!(
                ", {} of {} ranges selected",
                self.ranges_done, self.ranges_total
            )
        } else {
            String::new()
        };
        Err(ApiError::Conflict(format!(
            "campaign {}'s audience is not complete (processing_status {}{progress}); it can be \
             listed and activated once processing_status is done",
            self.id, self.processing_status
        )))
    }
}

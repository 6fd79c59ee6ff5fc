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

impl CampaignContent {
    /// 422 unless the content is acceptable: a name of 1 to [`MAX_NAME_CHARS`] characters
    /// (not only spaces), a description of at most
    /// [`crate::http::MAX_COMMENT_CHARS`], criteria the language parses, and `start_date`
    /// not after `end_date`.
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

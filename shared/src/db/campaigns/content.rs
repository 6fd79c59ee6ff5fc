//! A campaign's writable content and the rule it must satisfy, checked on create and update.

use chrono::NaiveDate;
use serde_json::Value;

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

//! S3 access: a client configured from the environment, objects read as a blocking
//! [`std::io::Read`] stream (for the CSV and gzip readers on a blocking thread), and objects
//! written in parts as they are produced (multipart upload).
//!
//! The client honours the AWS SDK's standard settings (`AWS_REGION`, credentials,
//! `AWS_ENDPOINT_URL` and `AWS_ENDPOINT_URL_S3`); when an endpoint is set (an S3-compatible
//! server such as the moto emulator of the tests) it addresses buckets path-style
//! (`http://host/bucket/key`), which such servers expect.

use std::fmt;

use aws_sdk_s3::Client;
use aws_sdk_s3::config::ResponseChecksumValidation;
use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumMode, ChecksumType};

mod upload;
pub use upload::{Completed, PART_BYTES, Upload, checksum_matches, stored_checksum};

/// An S3 client from the environment: path-style addressing when `AWS_ENDPOINT_URL_S3` or
/// `AWS_ENDPOINT_URL` is set.
///
/// Responses are checked against S3's checksums only where [`open`] asks for it (the SDK's
/// `ResponseChecksumValidation::WhenRequired`): by default the SDK tries every response and
/// logs a warning for each object uploaded in parts, whose checksum it cannot check.
pub async fn client_from_env() -> Client {
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let custom_endpoint =
        shared::config::S3Config::from_lookup(shared::config::env).custom_endpoint;
    Client::from_conf(configure(
        aws_sdk_s3::config::Builder::from(&config),
        custom_endpoint,
    ))
}

/// The platform's settings on an S3 client's configuration: path-style addressing for a
/// custom endpoint, and responses checked against S3's checksums only where [`open`] asks.
#[must_use]
pub fn configure(
    builder: aws_sdk_s3::config::Builder,
    custom_endpoint: bool,
) -> aws_sdk_s3::Config {
    builder
        .force_path_style(custom_endpoint)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
        .build()
}

/// How the bytes of an object read by [`open`] are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Integrity {
    /// S3 holds a checksum of the whole object (a single-part upload's, or a multipart
    /// upload's `FULL_OBJECT` checksum): the SDK checks the bytes read against it, and a
    /// mismatch fails the read.
    Checked,
    /// S3 holds per-part checksums only (a multipart upload's `COMPOSITE` checksum, shown as
    /// `…-N`): they cannot be checked without the parts' boundaries, which a reader of the
    /// whole object does not have. The read is still pinned to the version and ETag.
    PerPart,
    /// S3 holds no checksum for the object (uploaded without one, or an emulator).
    Unavailable,
}

impl Integrity {
    /// Its name in results: `checked`, `per_part`, `unavailable`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Checked => "checked",
            Self::PerPart => "per_part",
            Self::Unavailable => "unavailable",
        }
    }

    /// From a HEAD's checksum headers (asked for with `ChecksumMode::Enabled`).
    fn of(head: &aws_sdk_s3::operation::head_object::HeadObjectOutput) -> Self {
        let checksums = [
            head.checksum_crc64_nvme(),
            head.checksum_crc32(),
            head.checksum_crc32_c(),
            head.checksum_sha1(),
            head.checksum_sha256(),
        ];
        let Some(checksum) = checksums.into_iter().flatten().next() else {
            return Self::Unavailable;
        };
        // A multipart upload's checksum is per part (the checksum of the parts' checksums,
        // shown `…-N`) unless S3 says it is of the full object. Its ETag (`…-N` too) tells a
        // multipart upload even where the checksum's own suffix or type is missing (some
        // S3-compatible servers leave them out).
        let suffixed = |value: &str| {
            value
                .trim_matches('"')
                .rsplit_once('-')
                .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        };
        let per_part = match head.checksum_type() {
            Some(ChecksumType::FullObject) => false,
            Some(ChecksumType::Composite) => true,
            _ => suffixed(checksum) || head.e_tag().is_some_and(suffixed),
        };
        if per_part {
            Self::PerPart
        } else {
            Self::Checked
        }
    }
}

/// An object's place: bucket and key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The bucket's name.
    pub bucket: String,
    /// The object's key.
    pub key: String,
}

impl Location {
    /// Parses `s3://bucket/key`.
    ///
    /// # Errors
    /// A message saying what the address should look like.
    pub fn parse(address: &str) -> Result<Self, String> {
        let rest = address
            .strip_prefix("s3://")
            .ok_or_else(|| format!("{address:?} is not an s3://bucket/key address"))?;
        match rest.split_once('/') {
            Some((bucket, key)) if !bucket.is_empty() && !key.is_empty() => Ok(Self {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
            }),
            _ => Err(format!(
                "{address:?} names no bucket and key (s3://bucket/key)"
            )),
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.key)
    }
}

/// An S3 request failed; the message is the SDK's, with the HTTP status when there was one.
#[derive(Debug, thiserror::Error)]
#[error("S3 {operation} of {location}: {message}")]
pub struct S3Error {
    /// The operation (`GetObject`, …).
    pub operation: &'static str,
    /// The object.
    pub location: String,
    /// The HTTP status S3 answered, if it answered.
    pub status: Option<u16>,
    /// What went wrong.
    pub message: String,
}

impl S3Error {
    pub(crate) fn new<E, R>(
        operation: &'static str,
        location: &Location,
        err: &SdkError<E, R>,
    ) -> Self
    where
        E: std::error::Error + 'static,
        R: fmt::Debug + HasStatus,
    {
        let status = err.raw_response().map(HasStatus::status);
        Self {
            operation,
            location: location.to_string(),
            status,
            message: aws_sdk_s3::error::DisplayErrorContext(err).to_string(),
        }
    }
}

/// The HTTP status of a raw SDK response.
pub trait HasStatus {
    /// The status code.
    fn status(&self) -> u16;
}

impl HasStatus for aws_sdk_s3::config::http::HttpResponse {
    fn status(&self) -> u16 {
        self.status().as_u16()
    }
}

/// One version of an object as read: its ETag, version id (versioned buckets) and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectVersion {
    /// The ETag, without quotes.
    pub etag: String,
    /// The version id; empty for an unversioned bucket.
    pub version_id: String,
    /// Size in bytes.
    pub size: u64,
    /// How its bytes are checked when [`open`] reads them ([`Integrity::Unavailable`] from
    /// [`head`], which reads none).
    pub integrity: Integrity,
}

impl ObjectVersion {
    /// From the headers S3 answers a GET or HEAD with (ETag quoted, length signed).
    fn of(etag: Option<&str>, version_id: Option<&str>, length: Option<i64>) -> Self {
        Self {
            etag: etag.unwrap_or_default().trim_matches('"').to_owned(),
            version_id: version_id.unwrap_or_default().to_owned(),
            size: length.and_then(|n| u64::try_from(n).ok()).unwrap_or(0),
            integrity: Integrity::Unavailable,
        }
    }
}

/// Opens an object for reading, as a blocking reader to use on a blocking thread
/// (`tokio::task::spawn_blocking`). `version_id` and `etag`, when given, pin the version
/// read: S3 answers 412 if the object changed since (see [`S3Error::status`]).
///
/// A HEAD first asks S3 for the object's checksum: where it is one of the whole object, the
/// GET asks the SDK to check the bytes against it as they are read (a mismatch fails the
/// read); where it is per part or absent, nothing can be checked and the version's
/// [`Integrity`] says so (the caller reports it once, not the SDK per response).
///
/// # Errors
/// [`S3Error`] if S3 refused or could not be reached.
pub async fn open(
    client: &Client,
    location: &Location,
    version_id: Option<&str>,
    etag: Option<&str>,
) -> Result<(ObjectVersion, impl std::io::Read + Send + 'static), S3Error> {
    let version_id = version_id.filter(|v| !v.is_empty()).map(str::to_owned);
    let if_match = etag.map(|e| format!("\"{}\"", e.trim_matches('"')));
    let head = client
        .head_object()
        .bucket(&location.bucket)
        .key(&location.key)
        .set_version_id(version_id.clone())
        .set_if_match(if_match.clone())
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .map_err(|e| S3Error::new("HeadObject", location, &e))?;
    let integrity = Integrity::of(&head);
    let output = client
        .get_object()
        .bucket(&location.bucket)
        .key(&location.key)
        .set_version_id(version_id)
        .set_if_match(if_match)
        .set_checksum_mode((integrity == Integrity::Checked).then_some(ChecksumMode::Enabled))
        .send()
        .await
        .map_err(|e| S3Error::new("GetObject", location, &e))?;
    let mut version =
        ObjectVersion::of(output.e_tag(), output.version_id(), output.content_length());
    version.integrity = integrity;
    let reader = tokio_util::io::SyncIoBridge::new(output.body.into_async_read());
    Ok((version, reader))
}

/// Opens bytes `start..end` of an object (pinned, as [`open`], to `version_id` and `etag`
/// when given) as a blocking reader, with an S3 range GET; an empty range reads nothing and
/// asks S3 nothing. Ranges are not checked against S3's checksums, which cover whole
/// objects or whole upload parts; the pin guarantees the version.
///
/// # Errors
/// [`S3Error`] if S3 refused (412: the object changed) or could not be reached.
pub async fn open_range(
    client: &Client,
    location: &Location,
    version_id: Option<&str>,
    etag: Option<&str>,
    start: u64,
    end: u64,
) -> Result<Box<dyn std::io::Read + Send + 'static>, S3Error> {
    if start >= end {
        return Ok(Box::new(std::io::empty()));
    }
    let output = client
        .get_object()
        .bucket(&location.bucket)
        .key(&location.key)
        .set_version_id(version_id.filter(|v| !v.is_empty()).map(str::to_owned))
        .set_if_match(etag.map(|e| format!("\"{}\"", e.trim_matches('"'))))
        .range(format!("bytes={start}-{}", end - 1))
        .send()
        .await
        .map_err(|e| S3Error::new("GetObject", location, &e))?;
    Ok(Box::new(tokio_util::io::SyncIoBridge::new(
        output.body.into_async_read(),
    )))
}

/// Deletes an object (its current version).
///
/// # Errors
/// [`S3Error`].
pub async fn delete(client: &Client, location: &Location) -> Result<(), S3Error> {
    client
        .delete_object()
        .bucket(&location.bucket)
        .key(&location.key)
        .send()
        .await
        .map_err(|e| S3Error::new("DeleteObject", location, &e))?;
    Ok(())
}

/// The current version of an object (HEAD).
///
/// # Errors
/// [`S3Error`] (status 404 when there is no such object).
pub async fn head(client: &Client, location: &Location) -> Result<ObjectVersion, S3Error> {
    let output = client
        .head_object()
        .bucket(&location.bucket)
        .key(&location.key)
        .send()
        .await
        .map_err(|e| S3Error::new("HeadObject", location, &e))?;
    Ok(ObjectVersion::of(
        output.e_tag(),
        output.version_id(),
        output.content_length(),
    ))
}

/// The keys under `prefix` (every page).
///
/// # Errors
/// [`S3Error`].
pub async fn list(client: &Client, bucket: &str, prefix: &str) -> Result<Vec<String>, S3Error> {
    let mut keys = Vec::new();
    let mut pages = client
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .into_paginator()
        .send();
    let location = Location {
        bucket: bucket.to_owned(),
        key: prefix.to_owned(),
    };
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| S3Error::new("ListObjectsV2", &location, &e))?;
        keys.extend(
            page.contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_owned)),
        );
    }
    Ok(keys)
}

/// Writes a small object whole.
///
/// # Errors
/// [`S3Error`].
pub async fn put(
    client: &Client,
    location: &Location,
    body: Vec<u8>,
    content_type: &str,
) -> Result<(), S3Error> {
    client
        .put_object()
        .bucket(&location.bucket)
        .key(&location.key)
        .content_type(content_type)
        .body(ByteStream::from(body))
        .send()
        .await
        .map_err(|e| S3Error::new("PutObject", location, &e))?;
    Ok(())
}

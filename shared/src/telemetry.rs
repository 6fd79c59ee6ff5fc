//! Tracing set-up: JSON lines on AWS Lambda (where CloudWatch indexes them), human-readable
//! lines locally. The filter comes from `RUST_LOG` (default `info`).

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber with the `info` default; see [`init_with_default`].
pub fn init() {
    init_with_default("info");
}

/// Installs the global subscriber once (later calls are ignored, so tests may call it
/// freely), filtering by `RUST_LOG` or else `default_filter`. Logs go to stderr.
///
/// JSON output is chosen when `AWS_LAMBDA_FUNCTION_NAME` is set (the Lambda runtime sets it).
pub fn init_with_default(default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let on_lambda = crate::config::on_lambda();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _already_set = if on_lambda {
        builder
            .json()
            .with_current_span(false)
            .with_ansi(false)
            .without_time()
            .try_init()
    } else {
        builder.compact().try_init()
    };
}
